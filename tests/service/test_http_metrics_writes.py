"""telemetry.HttpMetrics adds up the requests of one event-loop pass and writes them once.

After every pass its registry holds exactly what prometheus_client's own calls, one set
per request (the instrumentator's way), would have written; requests that overlap cost
one write per series; a request alone in flight is written at once.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from modelops_service import catalog
from modelops_service.telemetry import HTTP_LATENCY_BUCKETS, HttpMetrics
from tests.support.metrics_text import registry_samples

MODEL = ("wine", "1")


class Request(NamedTuple):
    handler: str
    method: str
    status: str
    seconds: float
    request_bytes: int
    response_bytes: int
    starts: int  # the pass it starts in
    lasts: int  # passes until it ends (0: it ends in the pass it started in)

    @property
    def ends(self) -> int:
        return self.starts + self.lasts


def reference(requests: list[Request], after_pass: int) -> CollectorRegistry:
    """The series after ``after_pass`` as per-request prometheus_client calls write them."""
    registry = CollectorRegistry()
    m = catalog.HTTP_REQUESTS
    total = Counter(m.name.removesuffix("_total"), m.help, m.labels, registry=registry)
    m = catalog.HTTP_REQUEST_DURATION
    duration = Histogram(m.name, m.help, m.labels, registry=registry, buckets=HTTP_LATENCY_BUCKETS)
    m = catalog.HTTP_REQUEST_SIZE
    size_in = Summary(m.name, m.help, m.labels, registry=registry)
    m = catalog.HTTP_RESPONSE_SIZE
    size_out = Summary(m.name, m.help, m.labels, registry=registry)
    m = catalog.HTTP_REQUESTS_INPROGRESS
    in_progress = Gauge(m.name, m.help, m.labels, registry=registry)
    for r in requests:
        if r.starts > after_pass:
            continue
        in_progress.labels(r.handler, r.method, *MODEL).inc()
        if r.ends > after_pass:
            continue
        in_progress.labels(r.handler, r.method, *MODEL).dec()
        total.labels(r.handler, r.method, r.status, *MODEL).inc()
        duration.labels(r.handler, r.method, *MODEL).observe(r.seconds)
        size_in.labels(r.handler, *MODEL).observe(r.request_bytes)
        size_out.labels(r.handler, *MODEL).observe(r.response_bytes)
    return registry


def assert_same(ours: CollectorRegistry, expected: CollectorRegistry) -> None:
    got, want = registry_samples(ours), registry_samples(expected)
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key[0].endswith("_sum"):  # added in another order: the last bits may differ
            assert math.isclose(got[key], value, rel_tol=1e-9), key
        else:
            assert got[key] == value, key


HEALTHZ = {"handler": "/healthz", "method": "GET", "model": "wine", "version": "1"}


def fresh() -> tuple[CollectorRegistry, HttpMetrics]:
    registry = CollectorRegistry()
    return registry, HttpMetrics(registry, *MODEL)


# Every bucket bound and the float just past it, where a wrong comparison shows.
_EDGES = [x for b in HTTP_LATENCY_BUCKETS for x in (b, math.nextafter(b, math.inf))]
requests = st.lists(
    st.builds(
        Request,
        handler=st.sampled_from(["/v1/predict", "/healthz", "none"]),
        method=st.sampled_from(["GET", "POST"]),
        status=st.sampled_from(["2xx", "4xx", "5xx"]),
        seconds=st.one_of(st.sampled_from(_EDGES), st.floats(0.0, 10.0)),
        request_bytes=st.integers(0, 10**6),
        response_bytes=st.integers(0, 10**6),
        starts=st.integers(0, 3),
        lasts=st.integers(0, 3),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_after_every_pass_the_series_are_what_a_write_per_request_gives(
    requests: list[Request],
) -> None:
    registry, metrics = fresh()

    async def passes() -> None:
        for p in range(max((r.ends for r in requests), default=0) + 1):
            for r in requests:
                if r.starts == p:
                    metrics.started(r.handler, r.method)
            for r in requests:
                if r.ends == p:
                    metrics.observe(
                        r.handler, r.method, r.status, r.seconds, r.request_bytes, r.response_bytes
                    )
            await asyncio.sleep(0)  # the pass ends
            assert_same(registry, reference(requests, p))

    asyncio.run(passes())


def test_requests_that_overlap_cost_one_write_per_series_after_their_pass() -> None:
    registry, metrics = fresh()
    labels = {"handler": "/v1/predict", "method": "POST", "model": "wine", "version": "1"}
    count = "http_request_duration_seconds_count"

    async def scenario() -> None:
        metrics.started("/v1/predict", "POST")
        metrics.observe("/v1/predict", "POST", "2xx", 0.001, 10, 20)  # alone: written
        duration_sum = registry.get_sample_value("http_request_duration_seconds_sum", labels)
        assert duration_sum == pytest.approx(0.001)
        writes = []
        child = metrics._bound(("/v1/predict", "POST", "2xx"))[1]._child  # the Histogram
        inc = child._sum.inc
        child._sum.inc = lambda amount: (writes.append(amount), inc(amount))

        for _ in range(11):  # one goes on after the pass
            metrics.started("/v1/predict", "POST")
        for _ in range(10):
            metrics.observe("/v1/predict", "POST", "2xx", 0.002, 10, 20)
        assert registry.get_sample_value(count, labels) == 1  # not yet: the pass goes on
        await asyncio.sleep(0)
        assert registry.get_sample_value(count, labels) == 11
        assert writes == [pytest.approx(0.02)]
        assert registry.get_sample_value("http_requests_inprogress", labels) == 1

    asyncio.run(scenario())


def test_a_request_alone_in_flight_is_written_at_once() -> None:
    registry, metrics = fresh()
    labels = HEALTHZ

    async def scenario() -> None:
        metrics.started("/healthz", "GET")
        assert registry.get_sample_value("http_requests_inprogress", labels) == 1
        metrics.observe("/healthz", "GET", "2xx", 0.0001, 0, 15)
        assert registry.get_sample_value("http_requests_inprogress", labels) == 0
        sizes = {"handler": "/healthz", "model": "wine", "version": "1"}  # no method label
        assert registry.get_sample_value("http_response_size_bytes_sum", sizes) == 15

    asyncio.run(scenario())


def last_pass_of_a_loop(step: Callable[[], None]) -> None:
    """Run ``step`` in the one pass of a loop that then stops: a flush it scheduled never
    runs there (a test client's loop that ended first)."""
    loop = asyncio.new_event_loop()

    def step_then_stop() -> None:
        step()
        loop.stop()

    loop.call_soon(step_then_stop)
    loop.run_forever()
    loop.close()


def then_in_a_new_loop(step: Callable[[], None]) -> None:
    """Run ``step`` in a new loop, and let its pass end."""

    async def one_pass() -> None:
        step()
        await asyncio.sleep(0)

    asyncio.run(one_pass())


def test_what_a_loop_that_stopped_left_unwritten_is_written_on_the_next() -> None:
    registry, metrics = fresh()
    total = {**HEALTHZ, "status": "2xx"}

    def two_requests() -> None:
        metrics.started("/healthz", "GET")  # alone: written
        metrics.started("/healthz", "GET")  # overlaps: written when the pass ends

    last_pass_of_a_loop(two_requests)
    assert registry.get_sample_value("http_requests_inprogress", HEALTHZ) == 1
    then_in_a_new_loop(lambda: metrics.observe("/healthz", "GET", "2xx", 0.0001, 0, 15))
    assert registry.get_sample_value("http_requests_inprogress", HEALTHZ) == 1
    assert registry.get_sample_value("http_requests_total", total) == 1


def test_a_lone_request_that_ends_after_a_loop_stopped_writes_what_that_loop_left() -> None:
    registry, metrics = fresh()
    total = {**HEALTHZ, "status": "2xx"}

    def two_requests_one_ends() -> None:
        metrics.started("/healthz", "GET")  # alone: written
        metrics.started("/healthz", "GET")
        metrics.observe("/healthz", "GET", "2xx", 0.0001, 0, 15)  # its flush never runs

    last_pass_of_a_loop(two_requests_one_ends)
    then_in_a_new_loop(lambda: metrics.observe("/healthz", "GET", "2xx", 0.0001, 0, 15))
    assert registry.get_sample_value("http_requests_inprogress", HEALTHZ) == 0
    assert registry.get_sample_value("http_requests_total", total) == 2
