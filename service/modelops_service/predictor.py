"""The seam between request handling and the model call.

Handlers validate a request into a feature matrix, ``await predictor.predict(x)``,
and get that request's rows back. ``BatchingPredictor`` (the default) gathers
the rows of concurrent requests into one call within a small time and size
budget, then hands each request its own slice; ``InlinePredictor`` makes one
model call per request (MODELOPS_BATCH_MAX_ROWS=0). The model call, its timing
and its failure handling all live here, not in the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from modelops_service.artifact import LoadedModel, Prediction


class Predictor(Protocol):
    async def predict(self, features: np.ndarray) -> Prediction:
        """Predict the (n, n_features) rows of one request; raises if the model fails."""
        ...

    async def aclose(self) -> None:
        """Finish or fail whatever is in flight; called once at shutdown."""
        ...


class InlinePredictor:
    """One model call per request, on the event loop thread.

    For these models a call takes well under a millisecond, less than a hop to
    a worker thread would cost, so it runs inline.
    """

    def __init__(self, model: LoadedModel, on_call: Callable[[float], None]) -> None:
        self.model = model
        self._on_call = on_call  # seconds spent in the model, per call

    async def predict(self, features: np.ndarray) -> Prediction:
        start = time.perf_counter()
        prediction = self.model.infer(features)
        self._on_call(time.perf_counter() - start)
        return prediction

    async def aclose(self) -> None:
        return None


def _rows(prediction: Prediction, start: int, stop: int) -> Prediction:
    """Rows ``start:stop`` of a model call's outputs (views, no copies)."""
    return Prediction(
        predictions=prediction.predictions[start:stop],
        probabilities=(
            None if prediction.probabilities is None else prediction.probabilities[start:stop]
        ),
        confidence=None if prediction.confidence is None else prediction.confidence[start:stop],
        signal=prediction.signal[start:stop],
    )


class BatchingPredictor:
    """Gathers the rows of concurrent requests into one model call.

    One HistGradientBoosting call costs about the same for 1 row as for 100 (it walks
    every tree once per call, in Python), so under concurrency one call per request
    wastes the core. At most one model call runs at a time, on the event loop thread:
    requests that arrive while it runs queue up and all go into the next call (at most
    ``max_rows`` rows; a request larger than that goes alone). An idle predictor calls
    after ``max_delay`` seconds (0: at the next pass of the event loop, so a burst of
    requests that are ready together shares one call and a lone request waits no timer).

    Each request gets exactly its own rows back, by offset. If a shared call raises,
    each of its requests is retried alone, so a request that breaks the model fails by
    itself and never its neighbours. A request that went away (cancelled) before its
    call is dropped from the batch.
    """

    def __init__(
        self,
        model: LoadedModel,
        on_call: Callable[[float], None],
        *,
        max_rows: int,
        max_delay: float = 0.0,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        self.model = model
        self._on_call = on_call  # seconds spent in the model, per call
        self.max_rows = max_rows
        self.max_delay = max_delay
        self._queue: deque[tuple[np.ndarray, asyncio.Future[Prediction]]] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def predict(self, features: np.ndarray) -> Prediction:
        if self._closed:
            raise RuntimeError("the predictor is closed")
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            # Made in the loop that serves (a test client may bring a new loop).
            self._loop = loop
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._run(), name="batching-predictor")
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append((features, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.max_delay)  # 0: one pass, the ready burst joins
            while self._queue:
                batch = self._take()
                if not batch:
                    continue
                try:
                    self._call(batch)
                except Exception as exc:  # a bug here must fail these requests, not hang them
                    for _, future in batch:
                        _settle(future, error=exc)
                await asyncio.sleep(0)  # let answered requests go out before the next

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[Prediction]]]:
        batch: list[tuple[np.ndarray, asyncio.Future[Prediction]]] = []
        rows = 0
        while self._queue:
            features, future = self._queue[0]
            if batch and rows + len(features) > self.max_rows:
                break
            self._queue.popleft()
            if future.done():  # cancelled: the client went away
                continue
            batch.append((features, future))
            rows += len(features)
        return batch

    def _call(self, batch: list[tuple[np.ndarray, asyncio.Future[Prediction]]]) -> None:
        features = batch[0][0] if len(batch) == 1 else np.concatenate([f for f, _ in batch], axis=0)
        start = time.perf_counter()
        try:
            prediction = self.model.infer(features)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
            else:
                for one, future in batch:  # isolate the failure: each request alone
                    self._call([(one, future)])
            return
        self._on_call(time.perf_counter() - start)
        offset = 0
        for one, future in batch:
            _settle(future, result=_rows(prediction, offset, offset + len(one)))
            offset += len(one)

    async def aclose(self) -> None:
        self._closed = True
        if self._worker is not None and self._loop is asyncio.get_running_loop():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._queue:
            _, future = self._queue.popleft()
            _settle(future, error=RuntimeError("the service is shutting down"))


def _settle(
    future: asyncio.Future[Prediction],
    *,
    result: Prediction | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
