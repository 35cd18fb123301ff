"""The seam between request handling and the model call.

Handlers validate a request into a feature matrix, ``await predictor.predict(x)``,
and get that request's rows back. ``BatchingPredictor`` (the default) gathers
the rows of concurrent requests into one call within a small time and size
budget, then hands each request its own slice; ``InlinePredictor`` makes one
model call per request (MODELOPS_BATCH_MAX_ROWS=0). The model call, its timing,
the recording of the rows it answered (``on_rows``: metrics and the drift window,
once per call rather than once per request) and its failure handling all live
here, not in the handlers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol

import numpy as np

from modelops_service.artifact import LoadedModel, Prediction

# Rows a model call answered, its outputs for them and the rows of each request it
# answered: recorded (metrics, drift window) once per call.
RowsCallback = Callable[[np.ndarray, Prediction, list[int]], None]

log = logging.getLogger("modelops_service")
# Event loop passes a batch waits at most for requests still joining (each pass is
# microseconds when nothing else is ready).
_MAX_PASSES = 8


class QueueTimeoutError(Exception):
    """The request waited longer than the timeout for a model call to take it."""

    def __init__(self, waited: float, timeout: float) -> None:
        self.waited = waited
        self.timeout = timeout
        super().__init__(
            f"waited {waited * 1000:.0f} ms for the model, longer than the "
            f"{timeout * 1000:.0f} ms timeout"
        )


class Predictor(Protocol):
    async def predict(self, features: np.ndarray, *, record: bool = True) -> Prediction:
        """Predict the (n, n_features) rows of one request; raises if the model fails.
        ``record``: pass the answered rows to ``on_rows`` (False: the warm-up)."""
        ...

    async def aclose(self) -> None:
        """Finish or fail whatever is in flight; called once at shutdown."""
        ...


class InlinePredictor:
    """One model call per request, on the event loop thread.

    For these models a call takes well under a millisecond, less than a hop to
    a worker thread would cost, so it runs inline.
    """

    def __init__(
        self,
        model: LoadedModel,
        on_call: Callable[[float], None],
        *,
        on_rows: RowsCallback | None = None,
    ) -> None:
        self.model = model
        self._on_call = on_call  # seconds spent in the model, per call
        self._on_rows = on_rows

    async def predict(self, features: np.ndarray, *, record: bool = True) -> Prediction:
        start = time.perf_counter()
        prediction = self.model.infer(features)
        self._on_call(time.perf_counter() - start)
        if record and self._on_rows is not None:
            _record(self._on_rows, features, prediction, [len(features)])
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
    call is dropped from the batch. A request still queued ``timeout`` seconds after it
    arrived (the model is slower than the traffic, or one call took very long) fails
    with ``QueueTimeoutError`` instead of joining a call: under overload the queue sheds the
    requests whose clients have most likely given up, rather than computing answers
    nobody reads while the wait grows for everyone. Only the expired requests fail;
    the others in the queue go on as usual. (The model call runs on the event loop
    thread, so a call that has started is never interrupted.)
    """

    def __init__(
        self,
        model: LoadedModel,
        on_call: Callable[[float], None],
        *,
        max_rows: int,
        max_delay: float = 0.0,
        timeout: float | None = None,
        on_rows: RowsCallback | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (or None: no timeout)")
        self.model = model
        self._on_call = on_call  # seconds spent in the model, per call
        self._on_rows = on_rows
        self.max_rows = max_rows
        self.max_delay = max_delay
        self.timeout = timeout
        self._queue: deque[_Entry] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        # The next look at the queue (None: idle), the queue's length at the last look
        # (None: not looked yet) and the passes it has kept growing.
        self._next: asyncio.Handle | None = None
        self._seen: int | None = None
        self._passes = 0
        self._closed = False

    async def predict(self, features: np.ndarray, *, record: bool = True) -> Prediction:
        if self._closed:
            raise RuntimeError("the predictor is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a test client may bring a new loop
            if self._next is not None:
                self._next.cancel()
            self._loop, self._next, self._passes = loop, None, 0
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append(_Entry(features, future, record, loop.time()))
        if self._next is None:  # idle: a burst of requests ready together joins one call
            self._seen = None  # its passes went back to 0 with the last call
            if self.max_delay > 0:
                self._next = loop.call_later(self.max_delay, self._drain)
            else:
                self._next = loop.call_soon(self._drain)
        return await future

    def _drain(self) -> None:
        """One look at the queue, a plain callback on each pass of the event loop (no task
        to wake): requests that arrive together reach the queue over a few passes (each its
        own task), and a call made on the first would leave the late ones to a call of
        their own. So the first look only counts them; a pass that brings none, a full
        batch or ``_MAX_PASSES`` passes make the call (a full batch at once). After a call
        the next look is a pass later (its answers go out, the next requests join); an
        empty queue there is idle."""
        assert self._loop is not None
        queued = len(self._queue)
        if queued == 0:
            self._next = None
            return
        if queued != self._seen and queued < self.max_rows and self._passes < _MAX_PASSES:
            self._seen, self._passes = queued, self._passes + 1
            self._next = self._loop.call_soon(self._drain)
            return
        batch = self._take()
        if batch:
            try:
                self._call(batch)
            except Exception as exc:  # a bug here must fail these requests, not hang them
                for entry in batch:
                    _settle(entry.future, error=exc)
        self._seen, self._passes = len(self._queue), 0
        self._next = self._loop.call_soon(self._drain)

    def _take(self) -> list[_Entry]:
        batch: list[_Entry] = []
        rows = 0
        timeout = self.timeout
        now = self._loop.time() if (timeout is not None and self._loop is not None) else 0.0
        while self._queue:
            entry = self._queue[0]
            if batch and rows + len(entry.features) > self.max_rows:
                break
            self._queue.popleft()
            if entry.future.done():  # cancelled: the client went away
                continue
            if timeout is not None and now - entry.queued > timeout:
                _settle(entry.future, error=QueueTimeoutError(now - entry.queued, timeout))
                continue
            batch.append(entry)
            rows += len(entry.features)
        return batch

    def _call(self, batch: list[_Entry]) -> None:
        if len(batch) == 1:
            features = batch[0].features
        else:
            features = np.concatenate([entry.features for entry in batch], axis=0)
        start = time.perf_counter()
        try:
            prediction = self.model.infer(features)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, error=exc)
            else:
                for entry in batch:  # isolate the failure: each request alone
                    self._call([entry])
            return
        self._on_call(time.perf_counter() - start)
        offset = 0
        for entry in batch:
            n = len(entry.features)
            _settle(entry.future, result=_rows(prediction, offset, offset + n))
            offset += n
        if self._on_rows is None:
            return
        if all(entry.record for entry in batch):  # the usual case: one call records all
            _record(self._on_rows, features, prediction, [len(e.features) for e in batch])
            return
        offset = 0
        for entry in batch:
            n = len(entry.features)
            if entry.record:
                _record(self._on_rows, entry.features, _rows(prediction, offset, offset + n), [n])
            offset += n

    async def aclose(self) -> None:
        self._closed = True
        if self._next is not None:
            self._next.cancel()
            self._next = None
        while self._queue:
            entry = self._queue.popleft()
            _settle(entry.future, error=RuntimeError("the service is shutting down"))


class _Entry(NamedTuple):
    features: np.ndarray
    future: asyncio.Future[Prediction]
    record: bool
    queued: float  # loop.time() when it arrived


def _record(
    on_rows: RowsCallback, features: np.ndarray, prediction: Prediction, requests: list[int]
) -> None:
    """Record answered rows; a failure here is logged and never fails the requests."""
    try:
        on_rows(features, prediction, requests)
    except Exception:
        log.exception("recording predicted rows failed", extra={"fields": {"rows": len(features)}})


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
