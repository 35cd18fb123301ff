"""Readiness follows the warm-up prediction (in process, no HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from modelops_service.card import read_card
from modelops_service.service import ModelService
from modelops_service.settings import Settings


def service(model_dir: Path) -> ModelService:
    settings = Settings(model_dir=model_dir)
    return ModelService(settings, read_card(model_dir), CollectorRegistry())


def test_ready_after_a_warm_up_prediction_that_stays_out_of_the_window(model_root: Path) -> None:
    svc = service(model_root / "wine" / "1")
    assert not svc.ready
    svc.load()
    asyncio.run(svc.warm_up())
    assert svc.ready
    assert svc.registry.get_sample_value("model_ready", {"model": "wine", "version": "1"}) == 1
    assert len(svc.window) == 0
    assert (
        svc.registry.get_sample_value(
            "model_predictions_total", {"model": "wine", "version": "1", "outcome": "ok"}
        )
        == 0
    )
    assert (
        svc.registry.get_sample_value(
            "model_inference_duration_seconds_count", {"model": "wine", "version": "1"}
        )
        == 1
    )


def test_a_failing_warm_up_leaves_the_model_not_ready(model_root: Path, caplog) -> None:
    svc = service(model_root / "diabetes" / "1")
    svc.load()

    def broken(features):
        raise RuntimeError("boom")

    svc.model.infer = broken
    asyncio.run(svc.warm_up())
    assert not svc.ready
    assert "warm-up prediction failed" in caplog.text
