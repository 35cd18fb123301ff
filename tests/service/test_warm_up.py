"""Readiness follows the warm-up prediction (in process, no HTTP)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from modelops_service.card import read_card
from modelops_service.service import ModelService
from modelops_service.settings import GC_GEN0_THRESHOLD, Settings


def service(model_dir: Path, **overrides) -> ModelService:
    settings = Settings(model_dir=model_dir, **overrides)
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


@pytest.fixture
def clean_gc():
    """This process's collector as it was (a warm-up freezes the heap and raises a threshold)."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_prepare_freezes_the_start_up_heap_out_of_full_collections(
    model_root: Path, clean_gc
) -> None:
    svc = service(model_root / "wine" / "1")
    svc.load()
    assert gc.get_freeze_count() == 0
    asyncio.run(svc.prepare())
    assert gc.get_freeze_count() > 1000  # the imports and the model, at least
    assert gc.get_threshold()[0] >= GC_GEN0_THRESHOLD


def test_gc_freeze_off_leaves_the_collector_alone(model_root: Path, clean_gc) -> None:
    gc.set_threshold(700, 10, 10)
    svc = service(model_root / "wine" / "1", gc_freeze=False)
    svc.load()
    asyncio.run(svc.prepare())
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)
