"""/metrics after traffic: every catalog metric, with the catalog's labels and the
model's name and version on every series."""

from __future__ import annotations

import httpx
import pytest

from devstack.service_process import ServiceProcess
from modelops_service import catalog
from modelops_service.card import read_card
from tests.support.metrics_text import scrape


def send_traffic(client: httpx.Client, svc: ServiceProcess) -> int:
    card = read_card(svc.model_dir)
    inst = {f.name: f.mean for f in card.features}
    for n in (1, 5, 20):
        assert client.post("/v1/predict", json={"instances": [inst] * n}).status_code == 200
    bad = client.post("/v1/predict", json={"instances": []})
    assert bad.status_code == 422
    return 26


@pytest.mark.parametrize("key", ["wine", "diabetes"])
def test_every_catalog_metric_is_exported_with_its_labels(
    key: str, services: dict[str, ServiceProcess]
) -> None:
    svc = services[key]
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        send_traffic(client, svc)
        metrics = scrape(client)

    exported = {s.name for s in metrics.samples}
    expected = {
        series
        for metric in catalog.ALL_METRICS
        for series in metric.series_names
        # a regressor has no classes to count
        if not (key == "diabetes" and metric is catalog.PREDICTED_CLASS)
    }
    missing = expected - exported
    assert not missing, f"catalog series missing from /metrics: {sorted(missing)}"
    if key == "diabetes":
        assert not metrics.series(catalog.PREDICTED_CLASS.name)

    for metric in catalog.ALL_METRICS:
        for series in sorted(set(metric.series_names) & expected):
            samples = metrics.series(series)
            assert samples, series
            for sample in samples:
                names = set(sample.labels) - {"le", "quantile"}
                assert names == set(metric.labels), (series, sample.labels)
                assert sample.labels["model"] == key, sample
                assert sample.labels["version"] == "1", sample


def test_every_exported_model_and_http_series_carries_model_and_version(
    wine: ServiceProcess,
) -> None:
    with httpx.Client(base_url=wine.url, timeout=30) as client:
        metrics = scrape(client)
    ours = [s for s in metrics.samples if s.name.startswith(("model_", "http_"))]
    assert ours
    for sample in ours:
        assert sample.labels.get("model") == "wine", sample
        assert sample.labels.get("version") == "1", sample
        assert any(sample.name in m.series_names for m in catalog.ALL_METRICS), sample.name


def test_traffic_moves_the_counters(wine: ServiceProcess) -> None:
    labels = {"model": "wine", "version": "1"}
    with httpx.Client(base_url=wine.url, timeout=30) as client:
        before = scrape(client)
        rows = send_traffic(client, wine)
        after = scrape(client)

    def delta(name: str, **extra: str) -> float:
        return after.value(name, **labels, **extra) - before.value(name, **labels, **extra)

    def total(name: str, scrape_) -> float:
        return sum(s.value for s in scrape_.series(name))

    assert delta("model_predictions_total", outcome="ok") == rows
    assert delta("model_predictions_total", outcome="error") == 0
    assert delta("model_batch_size_count") == 3
    assert delta("model_batch_size_sum") == rows
    assert delta("model_prediction_confidence_count") == rows
    assert delta("model_inference_duration_seconds_count") == 3
    predicted_class = "model_predicted_class_total"
    assert total(predicted_class, after) - total(predicted_class, before) == rows
    http = {"handler": "/v1/predict", "method": "POST"}
    assert delta("http_requests_total", status="2xx", **http) == 3
    assert delta("http_requests_total", status="4xx", **http) == 1
    assert delta("http_request_duration_seconds_count", **http) == 4
    assert delta("model_input_errors_total", reason="empty_batch") == 1
    assert after.value("model_info", task="classification", **labels) == 1
    assert after.value("model_ready", **labels) == 1
    assert after.value("process_resident_memory_bytes") > 0
