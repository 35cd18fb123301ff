"""The seam between request handling and the model call.

Handlers validate a request into a feature matrix, ``await predictor.predict(x)``,
and get that request's rows back. ``InlinePredictor`` makes one model call per
request. A batching predictor (gather the rows of concurrent requests into
one call within a small time and size budget, then hand each request its own
slice) fits behind the same two methods without touching the handlers: the
model call, its timing and its failure handling all live here.
"""

from __future__ import annotations

import time
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
