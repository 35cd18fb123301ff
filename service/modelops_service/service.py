"""The served model: state shared by the handlers, built once per app.

Holds the card, the validation schema, the metrics, the drift window and
(after the lifespan loaded it) the model and its predictor. Handlers call
``predict``/``rejected``; everything that has to happen for every answered
or refused request happens here, in one place.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from pathlib import Path

import anyio.to_thread
import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from threadpoolctl import threadpool_limits

from modelops_service.artifact import LoadedModel, Prediction, load_model
from modelops_service.card import ModelCard
from modelops_service.monitor import DriftMonitor
from modelops_service.predictor import (
    BatchingPredictor,
    InlinePredictor,
    Predictor,
    QueueTimeoutError,
)
from modelops_service.settings import GC_GEN0_THRESHOLD, Settings
from modelops_service.telemetry import ModelTelemetry
from modelops_service.validation import Batch, FeatureSchema, InputError
from modelops_service.window import PodWindow, SlidingWindow, window_path

log = logging.getLogger("modelops_service")


class PredictionError(Exception):
    """The model failed on valid input: a server error (500), counted as outcome=error."""


class PredictionTimeoutError(PredictionError):
    """The request waited longer than MODELOPS_BATCH_TIMEOUT_MS for the model: 503,
    counted as outcome=error."""

    def __init__(self, message: str, timeout_seconds: float) -> None:
        super().__init__(message)
        self.timeout_seconds = timeout_seconds


def freeze_startup_objects() -> None:
    """Keep full garbage collections short: the p99 tail under load.

    After start-up the heap holds a few hundred thousand long-lived objects (FastAPI,
    pydantic, scikit-learn, the model) that a full (generation 2) collection scans
    every time: 50-80 ms on the one event loop thread, about once a second under
    load, since the objects of requests in flight keep being promoted. Collected once
    and frozen (moved to the permanent generation, never scanned), they cost nothing;
    a higher young-generation threshold means fewer collections of the objects of
    requests in flight (cyclic garbage still goes, a few thousand allocations later).
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(GC_GEN0_THRESHOLD, gc.get_threshold()[0]), gen1, gen2)


class ModelService:
    def __init__(
        self,
        settings: Settings,
        card: ModelCard,
        registry: CollectorRegistry,
        shared_dir: Path | None = None,
    ) -> None:
        """``registry`` is the one /metrics exposes. ``shared_dir``: one of several
        workers (prometheus_client's multiprocess directory): the metric objects then
        write into files there, which ``registry`` reads for every worker, and so does
        the drift report with the drift windows."""
        self.settings = settings
        self.card = card
        self.registry = registry
        # Where the metric objects register: in multiprocess mode a registry nobody
        # scrapes (the files hold the values).
        self.metrics_registry = registry if shared_dir is None else CollectorRegistry()
        self.is_classifier = card.task == "classification"
        self.output_names: tuple[str, ...] = (
            ("predict", "predict_proba") if self.is_classifier else ("predict",)
        )
        self.schema = FeatureSchema.from_card(
            card,
            tolerance=settings.range_tolerance,
            policy=settings.range_policy,
            max_instances=settings.max_instances,
        )
        self.telemetry = ModelTelemetry(self.metrics_registry, card, shared=shared_dir is not None)
        n_features = len(card.features)
        drift_rows: SlidingWindow | PodWindow
        if shared_dir is None:
            self.window = drift_rows = SlidingWindow(n_features, settings.drift_window)
        else:
            # Each worker keeps its share of the pod's window; the report reads them all.
            capacity = -(-settings.drift_window // settings.workers)
            path = window_path(shared_dir, os.getpid())
            self.window = SlidingWindow(n_features, capacity, path=path)
            drift_rows = PodWindow(shared_dir, n_features, capacity)
        self.drift = DriftMonitor(
            card.reference,
            card.feature_names,
            drift_rows,
            min_rows=settings.drift_min_rows,
            refresh_seconds=settings.drift_refresh_seconds,
        )
        self.telemetry.attach_drift(self.drift, registry)
        self.model: LoadedModel | None = None
        self.predictor: Predictor | None = None
        self.ready = False

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> str:
        return self.card.version

    def load(self) -> None:
        """Verify and unpickle the artifact. Raises ArtifactRejectedError when it is not the
        declared one."""
        s = self.settings
        self.model = load_model(
            s.model_dir, s.model_sha256, name=s.model_name, version=s.model_version
        )
        # This thread's OpenMP pool and the BLAS pool; other threads start from
        # OMP_NUM_THREADS, which the entry point defaults to the same setting.
        threadpool_limits(limits=self.settings.inference_threads)
        if self.settings.batch_max_rows > 0:
            timeout_ms = self.settings.batch_timeout_ms
            self.predictor = BatchingPredictor(
                self.model,
                self.telemetry.inference,
                max_rows=self.settings.batch_max_rows,
                max_delay=self.settings.batch_max_delay_ms / 1000.0,
                timeout=timeout_ms / 1000.0 if timeout_ms > 0 else None,
                on_rows=self._record_rows,
            )
        else:
            self.predictor = InlinePredictor(
                self.model, self.telemetry.inference, on_rows=self._record_rows
            )
        self.telemetry.loaded()
        log.info(
            "model loaded",
            extra={
                "fields": {
                    "model": self.name,
                    "version": self.version,
                    "sha256": self.card.sha256,
                    "model_dir": str(self.settings.model_dir),
                }
            },
        )

    def warm_up_rows(self) -> np.ndarray:
        """One row of training means: a valid input for the warm-up call."""
        return np.array([[f.mean for f in self.card.features]], dtype=np.float64)

    async def prepare(self) -> None:
        """After ``load``, before the server listens: the one-off costs that would
        otherwise stall the event loop under traffic (or stretch the not-ready phase).

        The first sync endpoint (/metrics) imports anyio's asyncio backend and starts its
        worker thread: about 40 ms on the event loop thread. The start-up heap, the
        model included, is collected once and frozen out of full collections."""
        await anyio.to_thread.run_sync(generate_latest, self.registry)
        if self.settings.gc_freeze:
            freeze_startup_objects()

    async def warm_up(self) -> None:
        """One prediction outside the metrics and the drift window, then ready."""
        if self.predictor is None:
            raise RuntimeError("warm_up before load")
        try:
            await self.predictor.predict(self.warm_up_rows(), record=False)
        except Exception:
            # Stay not-ready: the probes keep traffic away and this line says why.
            log.exception("warm-up prediction failed; the model stays not ready")
            return
        if self.settings.readiness_delay_seconds:
            await asyncio.sleep(self.settings.readiness_delay_seconds)
        self.ready = True
        self.telemetry.set_ready(True)
        log.info("model ready", extra={"fields": {"model": self.name, "version": self.version}})

    async def predict(self, batch: Batch) -> Prediction:
        """Predict one request's rows. The predictor records answered rows and requests
        (metrics, drift window) once per model call, through ``_record_rows``."""
        if self.predictor is None:
            raise RuntimeError("predict before load")
        if batch.flagged:
            self.telemetry.input_errors(batch.flagged)
        try:
            prediction = await self.predictor.predict(batch.features)
        except QueueTimeoutError as err:
            # No traceback: the access log line (503) says it, once per request.
            self.telemetry.prediction_failed(len(batch))
            raise PredictionTimeoutError(str(err), err.timeout) from err
        except Exception as err:
            self.telemetry.prediction_failed(len(batch))
            log.exception("prediction failed", extra={"fields": {"rows": len(batch)}})
            raise PredictionError(str(err)) from err
        return prediction

    def _record_rows(
        self, features: np.ndarray, prediction: Prediction, requests: list[int]
    ) -> None:
        """Rows a model call answered, of the requests whose rows ``requests`` counts."""
        self.telemetry.predicted(prediction)
        self.telemetry.request_rows(requests)
        self.window.append(features, prediction.signal)

    def rejected(self, error: InputError) -> None:
        self.telemetry.input_errors(error.reasons)

    async def aclose(self) -> None:
        self.ready = False
        self.telemetry.set_ready(False)
        if self.predictor is not None:
            await self.predictor.aclose()
