"""Two workers in one service (MODELOPS_WORKERS=2): one scrape adds up both."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from devstack.service_process import start_service
from modelops_service import catalog
from modelops_service.card import read_card
from tests.support.metrics_text import Scrape

REQUESTS = 60  # a round
ROUNDS = 5  # at most, until both workers have answered (5 rounds stay inside the drift window)


def _rows(model_dir: Path) -> dict:
    card = read_card(model_dir)
    return {"instances": [{f.name: f.mean for f in card.features}]}


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, from /proc."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _answered_per_file(directory: Path) -> list[float]:
    """Rows each worker counted as predictions{outcome=ok}, one entry per counter file."""
    per_file = []
    for path in sorted(directory.glob("counter_*.db")):
        metrics = MultiProcessCollector.merge([str(path)], accumulate=False)
        per_file.append(
            sum(
                s.value
                for m in metrics
                for s in m.samples
                if s.name == catalog.PREDICTIONS.name and s.labels.get("outcome") == "ok"
            )
        )
    return per_file


@pytest.mark.process
def test_requests_over_two_workers_add_up_on_one_scrape(model_root: Path, tmp_path: Path) -> None:
    model_dir = model_root / "wine" / "1"
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"stale: the entry point empties the directory")
    env = {
        "MODELOPS_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "MODELOPS_DRIFT_MIN_ROWS": "1",
        "MODELOPS_DRIFT_REFRESH_SECONDS": "0",
    }
    body = _rows(model_dir)
    with start_service(model_dir, env=env, log_dir=tmp_path) as svc:
        # Both workers up: each one's window file exists once it built its app.
        deadline = time.monotonic() + 60
        while len(list(shared.glob("drift_window_*.bin"))) < 2:
            assert time.monotonic() < deadline, svc.logs()
            time.sleep(0.1)

        def one(_: int) -> int:
            # A connection per request: the kernel hands each accept to either worker.
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                while (resp := client.post("/v1/predict", json=body)).status_code == 503:
                    time.sleep(0.05)  # that worker still warming up
                return resp.status_code

        # The kernel hands each accept to either worker, and on a loaded machine one worker
        # can take a whole round: rounds until both have answered.
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            for _ in range(ROUNDS):
                assert set(pool.map(one, range(REQUESTS))) == {200}
                sent += REQUESTS
                per_worker = _answered_per_file(shared)
                if len([n for n in per_worker if n > 0]) == 2:
                    break
        assert len([n for n in per_worker if n > 0]) == 2, per_worker
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            resp = client.get("/metrics")
        assert resp.status_code == 200
        scrape = Scrape(resp.text)
        labels = {"model": "wine", "version": "1"}
        assert scrape.value(catalog.PREDICTIONS.name, outcome="ok", **labels) == sent
        assert sum(per_worker) == sent
        http = scrape.value(
            catalog.HTTP_REQUESTS.name, handler="/v1/predict", status="2xx", **labels
        )
        assert http >= sent  # plus any 503 of a worker still warming up
        assert scrape.value(catalog.BATCH_SIZE.name + "_count", **labels) == sent
        confidence = scrape.value(catalog.PREDICTION_CONFIDENCE.name + "_count", **labels)
        assert confidence == sent
        # Drift: one report for the pod, over both workers' rows.
        rows = scrape.series(catalog.DRIFT_WINDOW_ROWS.name)
        assert [s.value for s in rows] == [sent]
        prediction = scrape.series(catalog.PREDICTION_DRIFT.name)
        assert sorted(s.labels["method"] for s in prediction) == ["ks", "psi"]
        assert scrape.value(catalog.MODEL_READY.name, **labels) == 1
        assert scrape.value(catalog.HTTP_REQUESTS_INPROGRESS.name, handler="/metrics") >= 1

        # process_*: the supervisor and both workers, whichever worker answers (a scrape
        # per connection: the kernel spreads them), so CPU is one counter that only grows.
        workers = [int(p.stem.rsplit("_", 1)[1]) for p in shared.glob("drift_window_*.bin")]
        pids = [svc.pid, *workers]
        for _ in range(6):
            before = _cpu_seconds(pids)
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                text = client.get("/metrics").text
            after = _cpu_seconds(pids)
            cpu = Scrape(text).value("process_cpu_seconds_total")
            assert before - 1e-6 <= cpu <= after + 1e-6  # sums of ticks in another order
