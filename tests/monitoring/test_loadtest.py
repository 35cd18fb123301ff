"""The traffic generator: scenarios (pure), and real runs against the real service."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from devstack.paths import REPO_ROOT
from devstack.service_process import demo_model_dir, running_service
from loadtest import LoadTestError, run
from loadtest.scenarios import BAD_KINDS, Scenario, load_rows, make_scenario
from modelops_service import catalog

CARD = {
    "name": "toy",
    "version": "1",
    "features": [
        {"name": "a", "min": 0.0, "max": 10.0, "mean": 5.0, "std": 2.0},
        {"name": "b", "min": -1.0, "max": 1.0, "mean": 0.0, "std": 0.5},
    ],
    "reference": {
        "features": {
            "a": {"edges": [2.0, 5.0, 8.0], "fractions": [0.25, 0.25, 0.25, 0.25]},
            "b": {"edges": [0.0], "fractions": [0.5, 0.5]},
        }
    },
    "serving": {"max_instances": 5, "max_body_bytes": 2000},
}


def scenario(name: str, **kw) -> Scenario:
    return make_scenario(name, CARD, rate=10, duration=100, **kw)


# --- pure -------------------------------------------------------------------------------


def test_normal_rows_follow_the_reference_bins() -> None:
    s = scenario("normal")
    values = [s.row()["a"] for _ in range(4000)]
    assert all(0.0 <= v <= 10.0 for v in values)
    below_two = sum(v <= 2.0 for v in values) / len(values)
    assert 0.2 < below_two < 0.3  # the first bin holds a quarter


def test_drift_moves_a_subset_of_features_gradually_then_holds() -> None:
    s = scenario("drift", drift_shift=2.0, drift_ramp=0.5, drift_features=0.5)
    assert s.shift_at(0) == 0
    assert s.shift_at(25) == pytest.approx(1.0)
    assert s.shift_at(50) == s.shift_at(90) == pytest.approx(2.0)
    early = [s.row(0) for _ in range(2000)]
    late = [s.row(90) for _ in range(2000)]
    moved = [f for f in ("a", "b") if abs(mean(late, f) - mean(early, f)) > 0.5]
    assert len(moved) == 1  # half of two features
    feature_std = {"a": 2.0, "b": 0.5}[moved[0]]
    assert mean(late, moved[0]) - mean(early, moved[0]) == pytest.approx(2 * feature_std, rel=0.1)


def test_drift_moves_the_same_features_whatever_the_seed_of_the_rows() -> None:
    """Locust gives each user its own seed: they must all drift the same subset, or the
    drift of a run spreads thin over every feature."""
    features = [
        {"name": f"f{i}", "min": 0.0, "max": 10.0, "mean": 5.0, "std": 1.0} for i in range(8)
    ]
    card = {**CARD, "features": features, "reference": {"features": {}}}

    def moved(seed: int) -> set[str]:
        s = make_scenario("drift", card, rate=10, duration=100, seed=seed, drift_ramp=0.1)
        early = [s.row(0) for _ in range(500)]
        late = [s.row(90) for _ in range(500)]
        return {f["name"] for f in features if mean(late, f["name"]) - mean(early, f["name"]) > 0.5}

    subsets = [moved(seed) for seed in (1, 2, 3)]
    assert len(subsets[0]) == 4
    assert subsets[0] == subsets[1] == subsets[2]


def mean(rows: list[dict], f: str) -> float:
    return sum(r[f] for r in rows) / len(rows)


def test_bad_input_mixes_every_kind_into_normal_traffic() -> None:
    s = scenario("bad-input", bad_fraction=0.5)
    kinds = [s.request().kind for _ in range(400)]
    assert 0.4 < kinds.count("ok") / len(kinds) < 0.6
    # every input-error reason the service counts has a request that provokes it
    assert set(kinds) - {"ok"} == set(catalog.INPUT_ERROR_REASONS)


def test_bad_requests_break_what_their_kind_says() -> None:
    s = scenario("bad-input", bad_fraction=1.0)
    by_kind = {r.kind: r for r in (s.request() for _ in range(len(BAD_KINDS)))}
    with pytest.raises(json.JSONDecodeError):
        json.loads(by_kind["malformed_json"].body)
    assert by_kind["wrong_content_type"].content_type == "text/plain"
    assert len(by_kind["body_too_large"].body) > 2000
    assert len(json.loads(by_kind["too_many_instances"].body)["instances"]) == 6
    assert json.loads(by_kind["empty_batch"].body) == {"instances": []}
    assert "a" not in json.loads(by_kind["missing_field"].body)["instances"][0]
    assert math.isinf(json.loads(by_kind["not_finite"].body)["instances"][0]["a"])


def test_spike_multiplies_the_rate_in_the_middle_of_the_run() -> None:
    s = scenario("spike", spike_factor=4, spike_width=0.2)
    assert [s.rate_at(t) for t in (10, 39, 41, 59, 61, 99)] == [10, 10, 40, 40, 10, 10]


def test_rows_of_real_data_are_drawn_whole(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1.5, "b": 0.25}\n{"a": 7.0, "b": -0.5}\n')
    rows = load_rows(path)
    s = scenario("normal", base_rows=rows)
    assert {tuple(s.row().values()) for _ in range(50)} == {(1.5, 0.25), (7.0, -0.5)}
    with pytest.raises(ValueError, match="fields"):
        scenario("normal", base_rows=({"a": 1.0},))


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("http://10.1.2.3:8080", {}, "not a loopback address"),
        ("http://127.0.0.1:9", {"rate": 0}, "--rate"),
        ("http://127.0.0.1:9", {"duration": 1e6}, "--duration"),
        ("http://127.0.0.1:9", {"clients": 0}, "--clients"),
    ],
)
def test_runs_are_bounded_and_local(url: str, kwargs: dict, message: str) -> None:
    args = {"rate": 10, "duration": 1} | kwargs
    with pytest.raises(LoadTestError, match=message):
        # both are checked before anything is sent (nothing listens on port 9)
        run(url, "normal", args.pop("rate"), args.pop("duration"), progress=None, **args)


# --- against the real service ------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    logs = tmp_path_factory.mktemp("loadtest")
    with running_service(demo_model_dir("wine", "1"), log_dir=logs) as svc:
        yield svc


def input_errors(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    found = re.findall(r'^model_input_errors_total\{[^}]*reason="(\w+)"[^}]*\} (\S+)$', text, re.M)
    return {reason: float(v) for reason, v in found}


def test_cli_bad_input_gets_4xx_counted_by_reason(service) -> None:
    before = input_errors(service.url)
    result = subprocess.run(
        [sys.executable, "-m", "loadtest", "--url", service.url, "--scenario", "bad-input",
         "--rate", "40", "--duration", "3", "--bad-fraction", "0.5", "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["model"] == "wine"
    assert summary["sent"] >= 100
    assert summary["transport_errors"] == 0
    assert summary["5xx"] == 0
    assert summary["4xx"] > 0
    # progress went to stderr once a second
    assert len(re.findall(r"^\[\s*\d+\.\d+s/3s\] sent", result.stderr, re.M)) >= 3
    for kind, codes in summary["by_kind"].items():
        if kind in ("ok", "out_of_range"):  # out_of_range is flagged, not rejected, by default
            assert set(codes) == {"200"}, (kind, codes)
        else:
            assert all(code.startswith("4") for code in codes), (kind, codes)
    after = input_errors(service.url)
    for kind in BAD_KINDS:
        assert after.get(kind, 0) > before.get(kind, 0), f"{kind} not counted"


def test_cli_summary_reports_rate_and_latency(service) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtest", "--url", service.url, "--scenario", "spike",
         "--rate", "20", "--duration", "3", "--quiet"],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "scenario spike against" in result.stdout
    sent = int(re.search(r"sent\s+(\d+)", result.stdout).group(1))
    assert 60 < sent < 60 * 4  # more than the base rate, less than all-spike
    assert re.search(r"latency\s+p50 [\d.]+ ms, p95 [\d.]+ ms", result.stdout)


class SlowModel(BaseHTTPRequestHandler):
    """A service that answers every prediction a second late (its card at once)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.answer(json.dumps(CARD).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(1.0)
        self.answer(b'{"predictions": [1]}')


def test_the_rate_sent_is_over_the_schedule_not_the_wait_for_the_last_answers() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowModel)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        summary = run(
            f"http://127.0.0.1:{server.server_port}", "normal", rate=20, duration=2, progress=None
        )
    finally:
        server.shutdown()
    assert summary.completed == summary.sent
    assert 15 <= summary.achieved_rate <= 25, summary.format()
    assert summary.elapsed_s >= summary.sending_s + 0.9  # the last answers, a second later


def test_cli_refuses_an_unreachable_service() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtest", "--url", "http://127.0.0.1:9", "--duration", "1"],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot reach the model service" in result.stderr


def test_locustfile_runs_headless_against_the_service(service) -> None:
    before = input_errors(service.url)
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtest/locustfile.py", "--headless",
         "--host", service.url, "-u", "4", "-r", "4", "-t", "10s", "--scenario", "bad-input",
         "--user-rate", "5", "--only-summary"],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # the first table of the summary: "   Aggregated    <requests>    <failures>(<pct>) | ..."
    requests, failures = map(
        int, re.search(r"^\s+Aggregated\s+(\d+)\s+(\d+)\(", output, re.M).groups()
    )
    assert requests > 20
    assert failures == 0  # 4xx for bad input is the right answer
    assert "/v1/predict [malformed_json]" in output
    assert sum(input_errors(service.url).values()) > sum(before.values())


def established_to(port: int) -> int:
    """TCP connections this machine holds open to a loopback ``port`` (the server's ends)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


@pytest.mark.parametrize("clients", [1, 8])
def test_the_clients_take_turns_each_on_its_own_connection(service, clients) -> None:
    """A Service picks a pod per connection: eight clients reach eight pods' worth of
    connections at 40 requests/s, where one client's requests share one connection. No more
    requests in flight than clients (--concurrency = clients): a client whose requests
    overlap opens another connection, as any HTTP/1.1 pool does (a stall of the server on a
    loaded machine once put one client on eight at the default concurrency)."""
    port = int(service.url.rsplit(":", 1)[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest", "--url", service.url, "--rate", "40",
         "--duration", "4", "--clients", str(clients), "--concurrency", str(clients),
         "--quiet"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = 0
    try:
        while proc.poll() is None:
            seen = max(seen, established_to(port))
            time.sleep(0.2)
    finally:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # one client: one connection; eight: each its own (a late answer may open a ninth)
    assert seen == 1 if clients == 1 else seen >= clients
