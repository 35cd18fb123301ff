"""bench/servers.py and bench/model.py: what each server is sent and how its answer is read,
and the check that every server answers what model.predict answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier

from bench.model import Model, answers_match, feature_names_of, sample_rows
from bench.servers import build_servers, check_installed, oip_predictions, v1_predictions


def model(estimator: object, rows: np.ndarray, tmp_path: Path) -> Model:
    return Model(
        name="wine",
        version="1",
        directory=tmp_path,
        joblib_file=tmp_path / "model.joblib",
        sha256="abc",
        feature_names=[f"f{i}" for i in range(rows.shape[1])],
        estimator=estimator,
        rows=rows,
    )


@pytest.fixture
def classifier(tmp_path: Path) -> Model:
    rows = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    return model(DecisionTreeClassifier().fit(rows, ["a", "b", "c"]), rows, tmp_path)


@pytest.mark.parametrize(
    "body",
    [
        {"predictions": [1, 2]},
        [1, 2],
        {"predictions": [{"prediction": 1, "probability": 0.9}, {"label": 2}]},
    ],
)
def test_v1_predictions_whatever_the_item_shape(body: object) -> None:
    assert v1_predictions(body) == [1, 2]


def test_open_inference_predictions_are_the_first_output() -> None:
    body = {"outputs": [{"name": "predict", "data": ["a", "b"]}, {"name": "x", "data": [0]}]}
    assert oip_predictions(body) == ["a", "b"]


def test_feature_names_from_the_card_or_the_estimator() -> None:
    fitted = LinearRegression().fit(np.zeros((3, 3)), [0, 1, 2])
    assert feature_names_of({"features": [{"name": "a"}, {"name": "b"}]}, fitted) == ["a", "b"]
    assert feature_names_of({"feature_schema": {"fields": ["u", "v"]}}, fitted) == ["u", "v"]
    assert feature_names_of({}, fitted) == ["x0", "x1", "x2"]


def test_sample_rows_are_real_rows_of_a_known_data_set() -> None:
    from sklearn.datasets import load_wine

    rows = sample_rows("wine", {}, 13)
    assert rows.shape == (100, 13)
    assert np.array_equal(rows, load_wine().data[:100])


def test_sample_rows_of_an_unknown_data_set_stay_in_the_card_ranges() -> None:
    card = {"features": [{"min": 5.0, "max": 6.0}, {"min": -1.0, "max": 0.0}]}
    rows = sample_rows("no_such_dataset", card, 2)
    assert rows.shape == (100, 2)
    assert np.all(rows.min(axis=0) >= [5.0, -1.0])
    assert np.all(rows.max(axis=0) <= [6.0, 0.0])


def test_answers_match_labels_as_text(classifier: Model) -> None:
    assert answers_match(classifier, ["a", "b"], 2)[0]
    assert not answers_match(classifier, ["a", "c"], 2)[0]
    assert not answers_match(classifier, ["a"], 2)[0]


def test_answers_match_numbers_within_tolerance(tmp_path: Path) -> None:
    rows = np.array([[0.0], [1.0], [2.0]])
    regressor = model(LinearRegression().fit(rows, [1.0, 3.0, 5.0]), rows, tmp_path)
    assert answers_match(regressor, [1.0 + 1e-12, 3.0, 5.0], 3)[0]
    assert not answers_match(regressor, [1.0, 3.1, 5.0], 3)[0]


def test_build_servers_with_a_variant(classifier: Model, tmp_path: Path) -> None:
    variants = {"pos": {"BENCH_INSTANCES": "list", "MODELOPS_BATCH_MAX_ROWS": "0"}}
    servers = build_servers(classifier, tmp_path, ["ours", "mlserver", "kserve", "floor"], variants)
    by_key = {s.key: s for s in servers}
    assert list(by_key) == ["ours", "ours:pos", "mlserver", "kserve", "floor"]
    rows = classifier.rows[:2]

    ours, variant = by_key["ours"], by_key["ours:pos"]
    assert ours.predict_url.endswith("/v1/predict")
    assert ours.env["MODELOPS_MODEL_DIR"] == str(tmp_path)
    assert ours.env["MODELOPS_MODEL_SHA256"] == "abc"
    assert json.loads(ours.encode(rows)) == {
        "instances": [{"f0": 0.0, "f1": 1.0}, {"f0": 1.0, "f1": 0.0}]
    }
    # BENCH_INSTANCES changes what is sent and never reaches the server.
    assert json.loads(variant.encode(rows)) == {"instances": [[0.0, 1.0], [1.0, 0.0]]}
    assert variant.env_overrides == ("MODELOPS_BATCH_MAX_ROWS",)
    assert "BENCH_INSTANCES" not in variant.env
    assert variant.log.name == "ours-pos.log"

    tensor = json.loads(by_key["mlserver"].encode(rows))["inputs"][0]
    assert tensor["shape"] == [2, 2]
    assert tensor["data"] == [0.0, 1.0, 1.0, 0.0]
    settings = json.loads((tmp_path / "mlserver" / "settings.json").read_text())
    assert settings["parallel_workers"] == 0
    assert by_key["kserve"].predict_url.endswith("/v1/models/wine:predict")
    assert by_key["floor"].metrics_url is None  # the floor has no /metrics to scrape
    assert len({s.predict_url for s in servers}) == len(servers)  # a port each


def test_build_servers_runs_ours_with_two_workers_as_a_variant(
    classifier: Model, tmp_path: Path
) -> None:
    servers = build_servers(classifier, tmp_path, ["ours", "workers2"], {})

    assert [s.key for s in servers] == ["ours", "ours:workers2"]
    assert servers[1].env["MODELOPS_WORKERS"] == "2"
    assert "MODELOPS_WORKERS" not in servers[0].env


def test_a_missing_peer_venv_says_to_run_bench_setup(classifier: Model, tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bench.servers.CACHE", tmp_path / "nowhere")
        servers = build_servers(classifier, tmp_path, ["ours", "mlserver", "kserve"], {})
    check_installed(servers[:1])  # ours runs from the project's .venv
    with pytest.raises(SystemExit) as exit_info:
        check_installed(servers)
    message = str(exit_info.value)
    assert "make bench-setup" in message
    assert "\n" not in message
    assert "mlserver-venv/bin/mlserver" in message
    assert "kserve-venv/bin/python" in message
