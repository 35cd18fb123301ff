"""Drift over the sliding window, end to end: in-distribution traffic keeps the
scores low, shifted traffic pushes them over the alerting threshold.

Numbers: the window holds 500 rows. 500 rows drawn from the wine data set
keep every feature's PSI under 0.1 (the usual "no shift" bound; measured about
0.05). 500 rows with every feature moved up by one training standard
deviation push every feature's PSI over 0.25 (the usual "major shift" bound,
above the canary analysis' default maxDriftScore 0.2; measured above 1.0) and
its KS statistic over 0.25.
"""

from __future__ import annotations

import httpx
import numpy as np
from sklearn.datasets import load_wine

from devstack.service_process import ServiceProcess
from modelops_service.card import read_card
from tests.support.metrics_text import scrape

WINDOW = 500
LOW_PSI = 0.1
HIGH_PSI = 0.25
HIGH_KS = 0.25


def send(client: httpx.Client, rows: np.ndarray) -> None:
    for chunk in np.array_split(rows, 4):
        resp = client.post("/v1/predict", json={"instances": chunk.tolist()})
        assert resp.status_code == 200, resp.text


def feature_psi(metrics, method: str = "psi") -> dict[str, float]:
    return {
        s.labels["feature"]: s.value
        for s in metrics.series("model_feature_drift_score")
        if s.labels["method"] == method
    }


def test_in_distribution_stays_low_and_shifted_goes_high(wine: ServiceProcess) -> None:
    card = read_card(wine.model_dir)
    data = load_wine().data
    rng = np.random.default_rng(7)
    labels = {"model": "wine", "version": "1"}

    with httpx.Client(base_url=wine.url, timeout=30) as client:
        send(client, data[rng.integers(0, len(data), WINDOW)])
        calm = scrape(client)
        calm_report = client.get("/v1/drift").json()

        std = np.array([f.std for f in card.features])
        send(client, data[rng.integers(0, len(data), WINDOW)] + std)
        shifted = scrape(client)
        shifted_report = client.get("/v1/drift").json()

    assert calm.value("model_drift_window_rows", **labels) == WINDOW
    calm_psi = feature_psi(calm)
    assert set(calm_psi) == set(card.feature_names)
    assert max(calm_psi.values()) < LOW_PSI, calm_psi
    assert calm.value("model_prediction_drift_score", method="psi", **labels) < LOW_PSI
    assert calm_report["status"] == "ok"
    assert calm_report["max_feature_psi"] < LOW_PSI

    shifted_psi = feature_psi(shifted)
    assert min(shifted_psi.values()) > HIGH_PSI, shifted_psi
    assert min(feature_psi(shifted, "ks").values()) > HIGH_KS
    assert shifted_report["max_feature_psi"] > HIGH_PSI
    # the endpoint and the gauges report the same computation
    for name, scores in shifted_report["features"].items():
        assert abs(scores["psi"] - shifted_psi[name]) < 1e-9
