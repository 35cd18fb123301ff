"""Prometheus metrics of one served model, named only from ``catalog``.

All series live in one registry per app. Label children are bound once, so
the request path pays for a few increments, not for label lookups. Per-row
histograms (prediction value, confidence) are filled with one vectorized
``np.searchsorted`` per request instead of one ``observe`` per row; the batch
sizes of the requests a model call answered, and the HTTP series of the requests
that end in one event-loop pass, are added with one write per series
(``BulkHistogram``, ``HttpMetrics``). Drift gauges are computed by a collector
when /metrics is scraped.

With several workers (``workers.py``) prometheus_client keeps every series in
files that the scrape sums; each gauge says how its workers combine
(``multiprocess_mode``, ignored in one process), and the per-row histograms
write into a prometheus_client Histogram (``SharedVectorHistogram``).
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelops_service import catalog
from modelops_service.artifact import Prediction
from modelops_service.card import ModelCard
from modelops_service.monitor import DriftMonitor

INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
DEFAULT_VALUE_BUCKETS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0)
# HTTP latency buckets (prometheus-fastapi-instrumentator's default is 0.1, 0.5, 1: too
# coarse for a p95 of a millisecond service).
HTTP_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_CHILDREN_LIMIT = 4096


def _counter(m: catalog.Metric, registry: CollectorRegistry) -> Counter:
    # prometheus_client appends _total itself; the catalog spells the exposed name.
    return Counter(m.name.removesuffix("_total"), m.help, m.labels, registry=registry)


def _gauge(
    m: catalog.Metric,
    registry: CollectorRegistry,
    multiprocess_mode: Literal["livesum", "livemin", "max"],
) -> Gauge:
    return Gauge(m.name, m.help, m.labels, registry=registry, multiprocess_mode=multiprocess_mode)


def _histogram(
    m: catalog.Metric, registry: CollectorRegistry, buckets: Sequence[float]
) -> Histogram:
    return Histogram(m.name, m.help, m.labels, registry=registry, buckets=buckets)


class HttpMetrics:
    """prometheus-fastapi-instrumentator's default HTTP metrics (same names and meaning)
    and its in-progress gauge, with ``model`` and ``version`` labels on every series.
    ``middleware.RequestTelemetry`` records every request here.

    ``metrics.default(custom_labels=...)`` would also add an unlabeled
    ``http_request_duration_highr_seconds``; per-version analysis cannot use it, so it
    is left out.

    Requests that overlap are added up in memory and written once per event-loop pass
    (``flush``, scheduled by the first change in a pass): the requests a batch answers
    end in the same pass and then cost one write per series, not nine writes each.
    With several workers every write is a locked write into a memory-mapped file, and
    the nine cost a sixth of a single-row request's CPU. A request's change is in the
    registry from the next pass on, before this process reads any later request (a
    scrape included); another worker's scrape sees it once this worker's pass ends.
    A request alone in flight (one client, a quiet service) shares a pass with no
    other, and is written at once by each series' own call.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        model: str,
        version: str,
        buckets: Sequence[float] = HTTP_LATENCY_BUCKETS,
    ) -> None:
        self.model, self.version = model, version
        self._requests = _counter(catalog.HTTP_REQUESTS, registry)
        self._latency = _histogram(catalog.HTTP_REQUEST_DURATION, registry, buckets)
        m = catalog.HTTP_REQUEST_SIZE
        self._request_size = Summary(m.name, m.help, m.labels, registry=registry)
        m = catalog.HTTP_RESPONSE_SIZE
        self._response_size = Summary(m.name, m.help, m.labels, registry=registry)
        # The pod's requests in flight: the sum over the live workers.
        self._in_progress = _gauge(catalog.HTTP_REQUESTS_INPROGRESS, registry, "livesum")
        # Label children bound once per key, a bounded number of keys (handler names
        # come from the route table, plus "none").
        self._children: dict[tuple[str, str, str], tuple] = {}
        self._gauges: dict[tuple[str, str], Gauge] = {}
        # Since the last flush: requests ended per (handler, method, status), and the
        # change of requests in flight per (handler, method).
        self._ended: dict[tuple[str, str, str], _Ended] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._active = 0  # requests in flight in this process
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def started(self, handler: str, method: str) -> None:
        """A request began: one more in flight."""
        self._active += 1
        if self._active == 1:  # alone: written at once
            self._gauge(handler, method).inc()
            return
        key = (handler, method)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        self._write_soon()

    def observe(
        self,
        handler: str,
        method: str,
        status: str,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        """A request ended (one in flight less); ``status`` grouped as the instrumentator
        does (``2xx``)."""
        self._active -= 1
        key = (handler, method, status)
        if not self._active and not self._in_flight and not self._ended:
            # Alone, nothing pending: written at once, each series as its own call does.
            # With something pending the way below schedules its flush again, should the
            # loop that was to run it have ended.
            self._gauge(handler, method).dec()
            total, duration, size_in, size_out = self._bound(key)
            total.inc()
            duration.observe(seconds)
            size_in.observe(request_bytes)
            size_out.observe(response_bytes)
            return
        in_flight = (handler, method)
        self._in_flight[in_flight] = self._in_flight.get(in_flight, 0) - 1
        ended = self._ended.get(key)
        if ended is None:
            ended = self._ended[key] = _Ended()
        ended.seconds.append(seconds)
        ended.request_bytes += request_bytes
        ended.response_bytes += response_bytes
        self._write_soon()

    def _write_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write()
            return
        # Scheduled again if the loop it was scheduled on is not this one (a test
        # client's loop that ended first): nothing recorded waits forever.
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what was recorded since the last flush into the series."""
        self._flush_on = None
        self._write()

    def _write(self) -> None:
        # Taken before writing: a write that fails loses its pass, never counts it twice.
        in_flight, ended = self._in_flight, self._ended
        if in_flight:
            self._in_flight = {}
            for (handler, method), change in in_flight.items():
                gauge = self._gauge(handler, method)  # the series exists, at 0, from the first
                if change:
                    gauge.inc(change)
        if ended:
            self._ended = {}
            for key, e in ended.items():
                total, duration, size_in, size_out = self._bound(key)
                count = len(e.seconds)
                total.inc(count)
                duration.observe_each(e.seconds)
                size_in.add(count, e.request_bytes)
                size_out.add(count, e.response_bytes)

    def _gauge(self, handler: str, method: str) -> Gauge:
        gauge = self._gauges.get((handler, method))
        if gauge is None:
            gauge = self._in_progress.labels(handler, method, self.model, self.version)
            if len(self._gauges) < _CHILDREN_LIMIT:
                self._gauges[(handler, method)] = gauge
        return gauge

    def _bound(self, key: tuple[str, str, str]) -> tuple:
        bound = self._children.get(key)
        if bound is None:
            handler, method, status = key
            model, version = self.model, self.version
            bound = (
                self._requests.labels(handler, method, status, model, version),
                BulkHistogram(self._latency.labels(handler, method, model, version)),
                BulkSummary(self._request_size.labels(handler, model, version)),
                BulkSummary(self._response_size.labels(handler, model, version)),
            )
            if len(self._children) < _CHILDREN_LIMIT:
                self._children[key] = bound
        return bound


class _Ended:
    """The requests of one (handler, method, status) that ended since the last flush."""

    __slots__ = ("request_bytes", "response_bytes", "seconds")

    def __init__(self) -> None:
        self.seconds: list[float] = []  # each one's latency
        self.request_bytes = 0
        self.response_bytes = 0


class VectorHistogram(Collector):
    """A histogram observed a whole array at a time; exported like any other."""

    def __init__(
        self, metric: catalog.Metric, label_values: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.metric = metric
        self.label_values = list(label_values)
        self.bounds = np.array([*sorted(set(buckets)), np.inf], dtype=np.float64)
        self._counts = np.zeros(len(self.bounds), dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: np.ndarray) -> None:
        # bucket i counts values <= bounds[i]: the first bound >= value
        idx = np.searchsorted(self.bounds, values, side="left")
        counts = np.bincount(idx, minlength=len(self.bounds))
        total = float(np.sum(values))
        with self._lock:
            self._counts += counts
            self._sum += total

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.metric.name, self.metric.help, labels=self.metric.labels)

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative = np.cumsum(self._counts)
            total = self._sum
        family = self._family()
        buckets = [
            ("+Inf" if np.isinf(b) else repr(float(b)), float(c))
            for b, c in zip(self.bounds, cumulative, strict=True)
        ]
        family.add_metric(self.label_values, buckets, sum_value=total)
        yield family


class BulkHistogram:
    """A prometheus_client Histogram child observed many values at a time: one write per
    bucket that moved and one for the sum, where its ``observe`` writes two per value
    (with several workers, each a locked write into a memory-mapped file). With
    ``BulkSummary``, the one place that reaches into a child's values (``_buckets``,
    ``_sum``; prometheus_client is pinned in pyproject.toml, and a test checks both
    against its own ``observe``). ``observe_each`` is plain Python, for short lists (the
    requests of one model call or of one event-loop pass)."""

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._bounds = tuple(child._upper_bounds[:-1])  # its bounds, less +Inf

    def observe(self, value: float) -> None:
        """One value, as the child's own ``observe``."""
        self._child.observe(value)

    def observe_each(self, values: Sequence[float]) -> None:
        moved: dict[int, int] = {}
        for value in values:
            # The first bound >= value, as Histogram.observe picks it; past the last, +Inf.
            bucket = bisect.bisect_left(self._bounds, value)
            moved[bucket] = moved.get(bucket, 0) + 1
        self.add(moved.items(), sum(values))

    def add(self, counts: Iterable[tuple[int, float]], total: float) -> None:
        """Add ``count`` observations to each ``bucket`` (its index, +Inf last) of
        ``counts``, and ``total`` to the sum."""
        buckets = self._child._buckets
        for bucket, count in counts:
            buckets[bucket].inc(count)
        self._child._sum.inc(total)


class BulkSummary:
    """A prometheus_client Summary child observed many values at a time: two writes for
    ``count`` values that add up to ``total`` (``BulkHistogram`` says why)."""

    def __init__(self, child: Summary) -> None:
        self._child = child

    def observe(self, value: float) -> None:
        """One value, as the child's own ``observe``."""
        self._child.observe(value)

    def add(self, count: int, total: float) -> None:
        self._child._count.inc(count)
        self._child._sum.inc(total)


class SharedVectorHistogram:
    """``VectorHistogram`` for several workers: the same bucket counts, added into a
    prometheus_client Histogram child (``BulkHistogram``), whose per-bucket values
    multiprocess mode keeps in files and sums over workers on scrape."""

    def __init__(
        self,
        metric: catalog.Metric,
        label_values: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = sorted(set(buckets))
        self.bounds = np.array([*bounds, np.inf], dtype=np.float64)
        self._bulk = BulkHistogram(_histogram(metric, registry, bounds).labels(*label_values))

    def observe_many(self, values: np.ndarray) -> None:
        idx = np.searchsorted(self.bounds, values, side="left")
        counts = np.bincount(idx, minlength=len(self.bounds))
        moved = np.flatnonzero(counts)
        counted = zip(moved.tolist(), counts[moved].tolist(), strict=True)
        self._bulk.add(counted, float(np.sum(values)))


class DriftCollector(Collector):
    """Drift gauges, computed from the sliding window at scrape time."""

    def __init__(self, monitor: DriftMonitor, model: str, version: str) -> None:
        self.monitor = monitor
        self.labels = [model, version]

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                catalog.FEATURE_DRIFT.name,
                catalog.FEATURE_DRIFT.help,
                labels=catalog.FEATURE_DRIFT.labels,
            ),
            GaugeMetricFamily(
                catalog.PREDICTION_DRIFT.name,
                catalog.PREDICTION_DRIFT.help,
                labels=catalog.PREDICTION_DRIFT.labels,
            ),
            GaugeMetricFamily(
                catalog.DRIFT_WINDOW_ROWS.name,
                catalog.DRIFT_WINDOW_ROWS.help,
                labels=catalog.DRIFT_WINDOW_ROWS.labels,
            ),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        features, prediction, rows = self._families()
        report = self.monitor.report()
        rows.add_metric(self.labels, report.window_rows)
        # No score until the window holds drift_min_rows rows: a score from a handful
        # of rows would be noise, and 0 would claim "no drift" without evidence.
        if report.ready and report.prediction is not None:
            for name, s in report.features.items():
                features.add_metric([*self.labels, name, "psi"], s.psi)
                features.add_metric([*self.labels, name, "ks"], s.ks)
            prediction.add_metric([*self.labels, "psi"], report.prediction.psi)
            prediction.add_metric([*self.labels, "ks"], report.prediction.ks)
        yield features
        yield prediction
        yield rows


class ModelTelemetry:
    """The model metrics of the catalog, bound to this model's labels."""

    def __init__(
        self, registry: CollectorRegistry, card: ModelCard, *, shared: bool = False
    ) -> None:
        """``shared``: several workers (prometheus_client's multiprocess mode)."""
        labels = (card.name, card.version)
        self.labels = labels
        self.registry = registry
        self.task = card.task
        # Every worker loads the same model: any one's 1 says it.
        self._info = _gauge(catalog.MODEL_INFO, registry, "max")
        self._info_values = (*labels, card.task, card.sha256, card.framework)
        # The pod is ready when every live worker is.
        self._ready = _gauge(catalog.MODEL_READY, registry, "livemin").labels(*labels)
        self._ready.set(0)
        predictions = _counter(catalog.PREDICTIONS, registry)
        self._ok = predictions.labels(*labels, "ok")
        self._error = predictions.labels(*labels, "error")
        self._inference = _histogram(catalog.INFERENCE_DURATION, registry, INFERENCE_BUCKETS)
        self._inference = self._inference.labels(*labels)
        batch = _histogram(catalog.BATCH_SIZE, registry, BATCH_BUCKETS).labels(*labels)
        self._batch = BulkHistogram(batch)
        input_errors = _counter(catalog.INPUT_ERRORS, registry)
        self._input_errors = {
            r: input_errors.labels(*labels, r) for r in catalog.INPUT_ERROR_REASONS
        }
        # Both histograms exist so every catalog series exists for every model; a
        # regressor's confidence (and a classifier's value) histogram just stays empty.
        value_buckets = card.prediction_buckets or DEFAULT_VALUE_BUCKETS
        self._value: VectorHistogram | SharedVectorHistogram
        self._confidence: VectorHistogram | SharedVectorHistogram
        if shared:
            self._value = SharedVectorHistogram(
                catalog.PREDICTION_VALUE, labels, value_buckets, registry
            )
            self._confidence = SharedVectorHistogram(
                catalog.PREDICTION_CONFIDENCE, labels, CONFIDENCE_BUCKETS, registry
            )
        else:
            value = VectorHistogram(catalog.PREDICTION_VALUE, labels, value_buckets)
            confidence = VectorHistogram(catalog.PREDICTION_CONFIDENCE, labels, CONFIDENCE_BUCKETS)
            registry.register(value)
            registry.register(confidence)
            self._value, self._confidence = value, confidence
        predicted_class = _counter(catalog.PREDICTED_CLASS, registry)
        classes = card.target.classes or []
        self._classes = [predicted_class.labels(*labels, str(c)) for c in classes]

    def loaded(self) -> None:
        self._info.labels(*self._info_values).set(1)

    def set_ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def inference(self, seconds: float) -> None:
        """One model call (with batching it may serve several requests)."""
        self._inference.observe(seconds)

    def input_errors(self, reasons: frozenset[str]) -> None:
        for reason in reasons:
            self._input_errors[reason].inc()

    def prediction_failed(self, rows: int) -> None:
        self._error.inc(rows)

    def request_rows(self, rows: list[int]) -> None:
        """The requests one model call answered, by their rows."""
        self._batch.observe_each(rows)

    def predicted(self, prediction: Prediction) -> None:
        """Rows answered by one model call (for one request or several)."""
        self._ok.inc(len(prediction))
        if prediction.confidence is not None:
            self._confidence.observe_many(prediction.confidence)
            index = prediction.signal.astype(np.intp)
            for k, count in enumerate(np.bincount(index, minlength=len(self._classes))):
                if count:
                    self._classes[k].inc(int(count))
        else:
            self._value.observe_many(prediction.predictions)

    def attach_drift(self, monitor: DriftMonitor, registry: CollectorRegistry) -> None:
        """Drift gauges on ``registry`` (the scraped one: with several workers, not
        the one whose series live in files)."""
        registry.register(DriftCollector(monitor, *self.labels))
