"""Benchmark the model service against Seldon MLServer, KServe and a bare FastAPI floor.

One run starts every server on the same model.joblib (one worker each, pinned to one core),
drives each with the same load generator (wrk, pinned to the other core) at several
concurrencies with single-row and 100-row payloads, interleaving the servers cell by cell so
that background load on a shared machine falls on all of them alike. It prints a table
(requests/s, rows/s, p50, p99), the ratios of ours against each peer, the verdicts of the
performance goals in DESIGN.md and the service's resident memory under load, and writes the
raw results (JSON) and a plot (PNG) under bench-results/.

Run it through `make bench` (which installs the peers first); `make bench BENCH_ARGS=--help`
lists the knobs. Runs in the project's .venv; the peers run in their own venvs under
.cache/bench/ (bench/requirements-*.txt), the plot in .cache/bench/report-venv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from devstack.processes import free_port

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
CACHE = REPO / ".cache" / "bench"
PEERS = ("mlserver", "kserve")
ALL_SERVERS = ("ours", "mlserver", "kserve", "floor")
LABELS = {
    "ours": "modelops (ours)",
    "mlserver": "MLServer",
    "kserve": "KServe",
    "floor": "FastAPI floor",
}
# DESIGN.md, "Performance goals".
GOAL_CONCURRENCY = 16
GOAL_SINGLE_ROW_SPEEDUP = 2.5
GOAL_BATCH_ROWS_SPEEDUP = 1.5


# --------------------------------------------------------------------------- model and payloads


@dataclass
class Model:
    name: str
    version: str
    directory: Path
    joblib_file: Path
    sha256: str | None
    feature_names: list[str]
    estimator: Any
    rows: np.ndarray  # in-distribution rows to send

    @property
    def is_classifier(self) -> bool:
        return hasattr(self.estimator, "classes_")


def load_model(directory: Path) -> Model:
    card = json.loads((directory / "model.json").read_text())
    estimator = joblib.load(directory / "model.joblib")
    name = str(card.get("name") or directory.parent.name)
    version = str(card.get("version") or directory.name)
    feature_names = _feature_names(card, estimator)
    return Model(
        name=name,
        version=version,
        directory=directory,
        joblib_file=directory / "model.joblib",
        sha256=card.get("sha256"),
        feature_names=feature_names,
        estimator=estimator,
        rows=_sample_rows(directory.parent.name, card, len(feature_names)),
    )


def _feature_names(card: dict, estimator: Any) -> list[str]:
    features = card.get("features") or card.get("feature_schema") or []
    if isinstance(features, dict):
        features = features.get("fields") or features.get("features") or list(features)
    names = [f["name"] if isinstance(f, dict) else str(f) for f in features]
    if not names:
        names = [f"x{i}" for i in range(int(estimator.n_features_in_))]
    return names


def _sample_rows(dataset: str, card: dict, n_features: int) -> np.ndarray:
    """Real rows of the data set the demo model was trained on (shipped inside scikit-learn)."""
    from sklearn import datasets

    loader = getattr(datasets, f"load_{dataset}", None)
    if loader is not None:
        data = loader().data
        if data.shape[1] == n_features:
            return np.ascontiguousarray(data[:100], dtype=np.float64)
    # Unknown data set: uniform rows inside the training ranges of the model card.
    rng = np.random.default_rng(0)
    lows, highs = [], []
    for f in card.get("features") or []:
        lows.append(float(f.get("min", 0.0)))
        highs.append(float(f.get("max", 1.0)))
    if len(lows) != n_features:
        lows, highs = [0.0] * n_features, [1.0] * n_features
    return rng.uniform(lows, highs, size=(100, n_features))


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    key: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    ready_url: str
    predict_url: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[Any], list]
    log: Path
    env_overrides: tuple[str, ...] = ()
    metrics_url: str | None = None  # scraped during the run, as Prometheus would
    proc: subprocess.Popen | None = None
    idle_rss_mib: float | None = None
    notes: list[str] = field(default_factory=list)


def _predictions(body: Any) -> list:
    """Predictions out of a v1-style answer, whatever the shape of each item."""
    items = body["predictions"] if isinstance(body, dict) else body
    out = []
    for item in items:
        if isinstance(item, dict):
            for key in ("prediction", "label", "class", "value", "predicted"):
                if key in item:
                    item = item[key]
                    break
        out.append(item)
    return out


def _oip_predictions(body: Any) -> list:
    return list(body["outputs"][0]["data"])


def build_servers(
    model: Model, run_dir: Path, wanted: list[str], variants: dict[str, dict[str, str]]
) -> list[Server]:
    servers = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")}
    n_features = len(model.feature_names)

    def ours(key: str, overrides: dict[str, str]) -> Server:
        port = free_port()
        env = dict(base_env, MODELOPS_MODEL_DIR=str(model.directory))
        if model.sha256:
            env["MODELOPS_MODEL_SHA256"] = model.sha256
        overrides = dict(overrides)
        # BENCH_INSTANCES=list sends positional rows ({"instances": [[...]]}, the body KServe
        # gets) instead of objects keyed by feature name; it is not passed to the server.
        positional = overrides.pop("BENCH_INSTANCES", "dict") == "list"
        env.update(overrides)
        names = model.feature_names

        def encode(rows: np.ndarray) -> bytes:
            if positional:
                return json.dumps({"instances": rows.tolist()}).encode()
            instances = [dict(zip(names, map(float, r), strict=True)) for r in rows]
            return json.dumps({"instances": instances}).encode()

        return Server(
            key=key,
            command=[
                str(REPO / ".venv/bin/python"),
                "-m",
                "modelops_service",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=REPO,
            ready_url=f"http://127.0.0.1:{port}/readyz",
            predict_url=f"http://127.0.0.1:{port}/v1/predict",
            metrics_url=f"http://127.0.0.1:{port}/metrics",
            encode=encode,
            decode=_predictions,
            log=run_dir / f"{key.replace(':', '-')}.log",
            env_overrides=tuple(overrides),
            notes=["instances as positional lists" if positional else "instances as objects"],
        )

    if "ours" in wanted:
        servers.append(ours("ours", {}))
    # Variants of ours with other settings (or another PYTHONPATH), measured in the same run.
    for name, overrides in variants.items():
        servers.append(ours(f"ours:{name}", overrides))

    if "mlserver" in wanted:
        http, grpc, metrics = free_port(), free_port(), free_port()
        repo_dir = run_dir / "mlserver"
        (repo_dir / model.name).mkdir(parents=True, exist_ok=True)
        # One process like the others: inference in the server process (parallel_workers=0);
        # everything else is MLServer's default.
        (repo_dir / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": http,
                    "grpc_port": grpc,
                    "metrics_port": metrics,
                    "parallel_workers": 0,
                }
            )
        )
        (repo_dir / model.name / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": model.name,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": str(model.joblib_file), "version": model.version},
                }
            )
        )
        servers.append(
            Server(
                key="mlserver",
                command=[str(CACHE / "mlserver-venv/bin/mlserver"), "start", str(repo_dir)],
                env=dict(base_env),
                cwd=repo_dir,
                ready_url=f"http://127.0.0.1:{http}/v2/models/{model.name}/ready",
                predict_url=f"http://127.0.0.1:{http}/v2/models/{model.name}/infer",
                metrics_url=f"http://127.0.0.1:{metrics}/metrics",
                encode=lambda rows: json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "input-0",
                                "shape": [len(rows), n_features],
                                "datatype": "FP64",
                                "data": rows.ravel().tolist(),
                            }
                        ]
                    }
                ).encode(),
                decode=_oip_predictions,
                log=run_dir / "mlserver.log",
            )
        )

    if "kserve" in wanted:
        http = free_port()
        servers.append(
            Server(
                key="kserve",
                command=[
                    str(CACHE / "kserve-venv/bin/python"),
                    str(BENCH / "peers/kserve_model.py"),
                    "--model_name",
                    model.name,
                    "--model_file",
                    str(model.joblib_file),
                    "--http_port",
                    str(http),
                    "--workers",
                    "1",
                    "--enable_grpc",
                    "false",
                ],
                env=dict(base_env),
                cwd=run_dir,
                ready_url=f"http://127.0.0.1:{http}/v1/models/{model.name}",
                predict_url=f"http://127.0.0.1:{http}/v1/models/{model.name}:predict",
                metrics_url=f"http://127.0.0.1:{http}/metrics",
                encode=lambda rows: json.dumps({"instances": rows.tolist()}).encode(),
                decode=_predictions,
                log=run_dir / "kserve.log",
            )
        )

    if "floor" in wanted:
        port = free_port()
        servers.append(
            Server(
                key="floor",
                command=[
                    str(REPO / ".venv/bin/python"),
                    "-m",
                    "uvicorn",
                    "floor_app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--no-access-log",
                ],
                env=dict(base_env, BENCH_MODEL_FILE=str(model.joblib_file)),
                cwd=BENCH / "peers",
                ready_url=f"http://127.0.0.1:{port}/docs",
                predict_url=f"http://127.0.0.1:{port}/predict",
                encode=lambda rows: json.dumps({"instances": rows.tolist()}).encode(),
                decode=_predictions,
                log=run_dir / "floor.log",
            )
        )
    return servers


def _pin(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def start(server: Server, cpu: int | None) -> None:
    log = server.log.open("wb")
    server.proc = subprocess.Popen(
        server.command,
        cwd=server.cwd,
        env=server.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_pin(cpu),
        start_new_session=True,
    )


def wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.key} exited with {server.proc.returncode} before it was ready; "
                f"last lines of {server.log}:\n{_tail(server.log)}"
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(server.ready_url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{server.key} not ready after {timeout:.0f}s:\n{_tail(server.log)}")


def stop(server: Server) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    # Each server runs in its own session (start_new_session): signal that group, which
    # holds only the processes this server started.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def check_answers(server: Server, model: Model, bodies: dict[int, bytes]) -> None:
    """Every server must answer what model.predict answers, or its speed means nothing."""
    for n_rows, body in bodies.items():
        try:
            got = server.decode(post(server.predict_url, body))
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace")
            message = f"{server.key}: {n_rows}-row request -> {exc.code}: {detail}"
            raise RuntimeError(message) from exc
        want = model.estimator.predict(model.rows[:n_rows])
        got_arr = np.asarray(got).ravel()
        if model.is_classifier:
            ok = got_arr.shape == want.shape and all(
                str(g) == str(w) for g, w in zip(got_arr, want, strict=True)
            )
        else:
            ok = got_arr.shape == want.shape and np.allclose(
                got_arr.astype(float), want, rtol=1e-6, atol=1e-9
            )
        if not ok:
            raise RuntimeError(
                f"{server.key}: {n_rows}-row answer differs from model.predict: "
                f"got {got_arr[:5]}..., want {want[:5]}..."
            )


# --------------------------------------------------------------------------- memory


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def cpu_seconds(root: int) -> float:
    """User + system CPU time of a server's process tree (all threads), in seconds."""
    ticks = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mib(root: int) -> float:
    total_kib = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kib / 1024


class Scraper:
    """GETs every server's /metrics at a fixed interval, as Prometheus would: our drift
    scores are computed on scrape, so a run without scrapes would leave that work out."""

    def __init__(self, servers: list[Server], interval: float):
        self.urls = [s.metrics_url for s in servers if s.metrics_url]
        self.interval = interval
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for url in self.urls:
                try:
                    with urllib.request.urlopen(url, timeout=10) as answer:
                        answer.read()
                    self.scrapes += 1
                except (OSError, urllib.error.URLError):
                    self.failures += 1

    def __enter__(self) -> Scraper:
        if self.interval > 0 and self.urls:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class RssSampler:
    """Samples the resident memory of a server's process tree while a load runs."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.pid, self.interval = pid, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_mib(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- load generator


def wrk(
    url: str, body_file: Path, connections: int, seconds: float, cpu: int | None
) -> dict[str, Any]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "wrk_post.lua"),
        url,
    ]
    env = dict(os.environ, BENCH_BODY_FILE=str(body_file))
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_pin(cpu),
        timeout=seconds + 60,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result = json.loads(line.removeprefix("BENCH_JSON "))
            seconds_run = result["duration_us"] / 1e6
            result["rps"] = result["requests"] / seconds_run if seconds_run else 0.0
            result["error_count"] = sum(result["errors"].values())
            return result
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {done.stderr.strip()}")


# --------------------------------------------------------------------------- the run


@dataclass
class Cell:
    server: str
    rows: int
    concurrency: int
    reps: list[dict[str, Any]] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.reps)

    def median_latency_ms(self, pct: str) -> float:
        return statistics.median(r["latency_us"][pct] for r in self.reps) / 1000

    def _median_of(self, key: str) -> float | None:
        values = [r[key] for r in self.reps if r.get(key) is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict[str, Any]:
        rps = self.median("rps")
        return {
            "server": self.server,
            "rows": self.rows,
            "concurrency": self.concurrency,
            "rps": rps,
            "rows_per_s": rps * self.rows,
            "p50_ms": self.median_latency_ms("p50"),
            "p99_ms": self.median_latency_ms("p99"),
            "cpu_ms_per_req": self._median_of("cpu_ms_per_req"),
            "core_share": self._median_of("core_share"),
            "errors": sum(r["error_count"] for r in self.reps),
            "rss_mib_max": max(self.rss_mib) if self.rss_mib else None,
            "reps": self.reps,
        }


def cpus(args: argparse.Namespace) -> tuple[int | None, int | None]:
    if args.no_pin:
        return None, None
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return available[0], available[1]


def run(args: argparse.Namespace) -> int:
    model = load_model(Path(args.model).resolve())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out).resolve()
    run_dir = out_dir / f"run-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    server_cpu, load_cpu = cpus(args)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    row_counts = [int(r) for r in args.rows.split(",")]
    if any(n > len(model.rows) for n in row_counts):
        raise SystemExit(f"at most {len(model.rows)} rows per request")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: run `make bench-setup` (installs the Debian package)")

    servers = build_servers(model, run_dir, wanted, parse_variants(args.variant))
    n_cells = len(servers) * len(concurrencies) * len(row_counts) * args.reps
    per_cell = args.duration + args.warmup + 0.5
    print(
        f">> model {model.name}/{model.version} ({type(model.estimator).__name__}, "
        f"{len(model.feature_names)} features) from {model.directory}",
        flush=True,
    )
    print(
        f">> servers {', '.join(s.key for s in servers)} on CPU {server_cpu}, wrk on CPU "
        f"{load_cpu}; {n_cells} measurements of {args.duration:g}s (+{args.warmup:g}s warm-up) "
        f"= about {n_cells * per_cell / 60:.1f} min",
        flush=True,
    )
    cells: dict[tuple[str, int, int], Cell] = {}
    try:
        for server in servers:
            start(server, server_cpu)
        for server in servers:
            wait_ready(server, args.start_timeout)
            assert server.proc is not None
            server.idle_rss_mib = rss_mib(server.proc.pid)
            print(f">> {server.key} ready (idle RSS {server.idle_rss_mib:.0f} MiB)", flush=True)

        bodies: dict[str, dict[int, Path]] = {}
        for server in servers:
            raw = {n: server.encode(model.rows[:n]) for n in row_counts}
            check_answers(server, model, raw)
            bodies[server.key] = {}
            for n, body in raw.items():
                path = run_dir / f"{server.key.replace(':', '-')}-{n}.json"
                path.write_bytes(body)
                bodies[server.key][n] = path
        print(">> every server answers what model.predict answers", flush=True)
        for server in servers:  # the first scrape pays one-time costs: not in a measurement
            if server.metrics_url:
                with urllib.request.urlopen(server.metrics_url, timeout=30) as answer:
                    answer.read()

        print(f">> warm-up: {args.initial_warmup:g}s per server and payload", flush=True)
        for server in servers:
            for n in row_counts:
                wrk(server.predict_url, bodies[server.key][n], 16, args.initial_warmup, load_cpu)

        scraper = Scraper(servers, args.scrape_interval)
        with scraper:
            done, started = 0, time.monotonic()
            for rep in range(args.reps):
                for n in row_counts:
                    for c in concurrencies:
                        # Rotate the order each repetition: no server always goes first.
                        order = servers[rep % len(servers) :] + servers[: rep % len(servers)]
                        for server in order:
                            assert server.proc is not None
                            if server.proc.poll() is not None:
                                raise RuntimeError(f"{server.key} died:\n{_tail(server.log)}")
                            body = bodies[server.key][n]
                            if args.warmup > 0:
                                wrk(server.predict_url, body, c, args.warmup, load_cpu)
                            # wrk hangs up with c requests in flight; measuring at once would
                            # count the server finishing those, and the new connections
                            # arriving meanwhile (p99 of 100 rows x 64 clients: 40 ms with a
                            # pause, 170-200 ms without, for the same server).
                            time.sleep(args.settle)
                            cpu_before = cpu_seconds(server.proc.pid)
                            with RssSampler(server.proc.pid) as sampler:
                                result = wrk(server.predict_url, body, c, args.duration, load_cpu)
                            cpu_used = cpu_seconds(server.proc.pid) - cpu_before
                            # CPU per request moves far less with background load than req/s.
                            result["server_cpu_s"] = cpu_used
                            result["cpu_ms_per_req"] = (
                                cpu_used * 1000 / result["requests"] if result["requests"] else None
                            )
                            result["core_share"] = cpu_used / (result["duration_us"] / 1e6)
                            cell = cells.setdefault((server.key, n, c), Cell(server.key, n, c))
                            cell.reps.append(result)
                            cell.rss_mib.extend(sampler.samples)
                            done += 1
                            elapsed = time.monotonic() - started
                            eta = elapsed / done * (n_cells - done)
                            errors = f" ERRORS {result['errors']}" if result["error_count"] else ""
                            print(
                                f"[{done:3d}/{n_cells}] rep {rep + 1}/{args.reps} rows={n:<3d} "
                                f"c={c:<3d} {server.key:<14s} {result['rps']:8.0f} req/s  "
                                f"p50 {result['latency_us']['p50'] / 1000:7.2f} ms  "
                                f"p99 {result['latency_us']['p99'] / 1000:7.2f} ms  "
                                f"cpu {result['cpu_ms_per_req'] or 0:5.2f} ms/req "
                                f"({result['core_share']:4.0%} of a core){errors}  "
                                f"(ETA {eta / 60:4.1f} min)",
                                flush=True,
                            )
        for server in servers:
            assert server.proc is not None
            server.notes.append(f"RSS after the run {rss_mib(server.proc.pid):.0f} MiB")
    finally:
        for server in servers:
            stop(server)

    report = {
        "started": stamp,
        "command": " ".join(sys.argv),
        "host": {
            "cpus": os.cpu_count(),
            "loadavg_end": os.getloadavg(),
            "python": platform.python_version(),
            "server_cpu": server_cpu,
            "load_cpu": load_cpu,
        },
        "model": {
            "name": model.name,
            "version": model.version,
            "dir": str(model.directory),
            "estimator": type(model.estimator).__name__,
        },
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "reps": args.reps,
            "concurrency": concurrencies,
            "rows": row_counts,
            "load_generator": "wrk -t1 (closed loop), bench/wrk_post.lua",
            "scrape_interval_s": args.scrape_interval,
            "settle_s": args.settle,
            "scrapes": scraper.scrapes,
            "scrape_failures": scraper.failures,
        },
        "servers": {
            s.key: {
                "label": label(s.key),
                "env": {k: s.env[k] for k in s.env_overrides},
                "command": s.command,
                "url": s.predict_url,
                "idle_rss_mib": s.idle_rss_mib,
                "notes": s.notes,
            }
            for s in servers
        },
        "results": [cell.summary() for cell in cells.values()],
    }
    text = render_report(report)
    print(text)
    (run_dir / "report.txt").write_text(text)
    results_json = out_dir / f"bench-{stamp}.json"
    results_json.write_text(json.dumps(report, indent=1))
    plot_png = out_dir / f"bench-{stamp}.png"
    plot(results_json, plot_png)
    for src, name in ((results_json, "latest.json"), (plot_png, "latest.png")):
        if src.exists():
            shutil.copyfile(src, out_dir / name)
    print(f">> raw results {results_json}\n>> plot        {plot_png}\n>> logs        {run_dir}")
    return 0


def plot(results_json: Path, png: Path) -> None:
    python = CACHE / "report-venv/bin/python"
    if not python.exists():
        print(f">> no plot: {python} missing (make bench-setup)", flush=True)
        return
    subprocess.run([str(python), str(BENCH / "plot.py"), str(results_json), str(png)], check=True)


# --------------------------------------------------------------------------- report


def _index(report: dict) -> dict[tuple[str, int, int], dict]:
    return {(r["server"], r["rows"], r["concurrency"]): r for r in report["results"]}


def _servers(report: dict) -> list[str]:
    """Ours, then its variants (--variant), then the peers and the floor."""
    keys = list(report["servers"])
    variants = [k for k in keys if k.startswith("ours:")]
    return [k for k in ("ours", *variants, *ALL_SERVERS[1:]) if k in keys]


def label(key: str) -> str:
    if key.startswith("ours:"):
        return f"ours [{key.removeprefix('ours:')}]"
    return LABELS[key]


def render_report(report: dict) -> str:
    idx = _index(report)
    servers = _servers(report)
    rows_list = report["settings"]["rows"]
    concurrencies = report["settings"]["concurrency"]
    lines = [
        "",
        f"Benchmark {report['started']}: model {report['model']['name']}/"
        f"{report['model']['version']} ({report['model']['estimator']}), median of "
        f"{report['settings']['reps']} x {report['settings']['duration_s']:g}s, "
        f"{report['settings']['load_generator']}"
        + (
            f", /metrics scraped every {report['settings']['scrape_interval_s']:g}s"
            if report["settings"].get("scrape_interval_s")
            else ""
        ),
        "",
        f"{'rows':>4} {'conc':>4}  {'server':<20} {'req/s':>9} {'rows/s':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'cpu ms/req':>10} {'core':>5} {'RSS MiB':>8}",
    ]
    for n in rows_list:
        for c in concurrencies:
            for s in servers:
                r = idx.get((s, n, c))
                if r is None:
                    continue
                rss = f"{r['rss_mib_max']:.0f}" if r["rss_mib_max"] is not None else "-"
                cpu = r.get("cpu_ms_per_req")
                cpu_text = f"{cpu:.3f}" if cpu is not None else "-"
                share = r.get("core_share")
                share_text = f"{share:.0%}" if share is not None else "-"
                flag = f"  errors={r['errors']}" if r["errors"] else ""
                lines.append(
                    f"{n:>4} {c:>4}  {label(s):<20} {r['rps']:>9.0f} {r['rows_per_s']:>10.0f} "
                    f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {cpu_text:>10} {share_text:>5} "
                    f"{rss:>8}{flag}"
                )
            lines.append("")
    for subject in [s for s in servers if s.startswith("ours")]:
        others = [s for s in servers if not s.startswith("ours")]
        lines.append(
            f"{label(subject)} against each peer: thr = req/s ours/peer (>1 better), "
            "p99 = p99 ours/peer (<1 better),"
        )
        lines.append(
            "cpu = CPU per request peer/ours (>1 better; moves least with background load)"
        )
        lines.append(f"{'':>10}" + "".join(f"  {label(s):^20}" for s in others))
        lines.append(
            f"{'rows':>4} {'conc':>4} "
            + "".join(f"  {'thr':>6} {'p99':>6} {'cpu':>6}" for _ in others)
        )
        for n in rows_list:
            for c in concurrencies:
                ours = idx.get((subject, n, c))
                if ours is None:
                    continue
                parts = []
                for s in others:
                    peer = idx.get((s, n, c))
                    if peer is None or not peer["rps"] or not peer["p99_ms"]:
                        parts.append(f"  {'-':>6} {'-':>6} {'-':>6}")
                        continue
                    thr = ours["rps"] / peer["rps"]
                    p99 = ours["p99_ms"] / peer["p99_ms"]
                    ours_cpu, peer_cpu = ours.get("cpu_ms_per_req"), peer.get("cpu_ms_per_req")
                    cpu = f"{peer_cpu / ours_cpu:6.2f}" if ours_cpu and peer_cpu else f"{'-':>6}"
                    parts.append(f"  {thr:6.2f} {p99:6.2f} {cpu}")
                lines.append(f"{n:>4} {c:>4} " + "".join(parts))
        lines.append("")
        lines.extend(verdicts(report, subject))
        lines.append("")
    lines.append("Resident memory (process tree): idle after start / max under load")
    for s in servers:
        info = report["servers"][s]
        loaded = [
            r["rss_mib_max"] for r in report["results"] if r["server"] == s and r["rss_mib_max"]
        ]
        idle = info["idle_rss_mib"]
        lines.append(
            f"  {label(s):<20} {idle if idle is not None else float('nan'):6.0f} MiB / "
            f"{max(loaded) if loaded else float('nan'):6.0f} MiB"
        )
    return "\n".join(lines)


def verdicts(report: dict, subject: str = "ours") -> list[str]:
    idx = _index(report)
    c = GOAL_CONCURRENCY
    peers = [p for p in PEERS if (p, 1, c) in idx]
    lines = [f"Goals of {label(subject)} (DESIGN.md, Performance goals) at {c} clients:"]
    ours1, ours100 = idx.get((subject, 1, c)), idx.get((subject, 100, c))
    if not peers or ours1 is None:
        return [*lines, "  not evaluated: needs ours and at least one peer at this concurrency"]
    fastest = max(peers, key=lambda p: idx[(p, 1, c)]["rps"])
    best_p99 = min(peers, key=lambda p: idx[(p, 1, c)]["p99_ms"])
    want = GOAL_SINGLE_ROW_SPEEDUP * idx[(fastest, 1, c)]["rps"]
    ok = ours1["rps"] >= want and not ours1["errors"]
    lines.append(
        f"  [{'PASS' if ok else 'FAIL'}] single-row throughput {ours1['rps']:.0f} req/s >= "
        f"{GOAL_SINGLE_ROW_SPEEDUP}x {label(fastest)} ({idx[(fastest, 1, c)]['rps']:.0f}) = "
        f"{want:.0f}  (ratio {ours1['rps'] / idx[(fastest, 1, c)]['rps']:.2f}x)"
    )
    cpu_ours = ours1.get("cpu_ms_per_req")
    cpu_peers = {p: idx[(p, 1, c)].get("cpu_ms_per_req") for p in peers}
    if cpu_ours and all(cpu_peers.values()):
        leanest = min(peers, key=lambda p: cpu_peers[p])
        lines.append(
            f"         cross-check, CPU per request: ours {cpu_ours:.3f} ms, {label(leanest)} "
            f"{cpu_peers[leanest]:.3f} ms: {cpu_peers[leanest] / cpu_ours:.2f}x the requests "
            "per CPU-second"
        )
    limit = idx[(best_p99, 1, c)]["p99_ms"]
    ok = ours1["p99_ms"] <= limit
    lines.append(
        f"  [{'PASS' if ok else 'FAIL'}] single-row p99 {ours1['p99_ms']:.2f} ms <= "
        f"{label(best_p99)}'s {limit:.2f} ms"
    )
    peers100 = [p for p in PEERS if (p, 100, c) in idx]
    if ours100 is not None and peers100:
        fastest100 = max(peers100, key=lambda p: idx[(p, 100, c)]["rows_per_s"])
        peer_rows = idx[(fastest100, 100, c)]["rows_per_s"]
        want = GOAL_BATCH_ROWS_SPEEDUP * peer_rows
        ok = ours100["rows_per_s"] >= want and not ours100["errors"]
        lines.append(
            f"  [{'PASS' if ok else 'FAIL'}] 100-row batches {ours100['rows_per_s']:.0f} rows/s >= "
            f"{GOAL_BATCH_ROWS_SPEEDUP}x {label(fastest100)} ({peer_rows:.0f}) = {want:.0f}  "
            f"(ratio {ours100['rows_per_s'] / peer_rows:.2f}x)"
        )
    return lines


# --------------------------------------------------------------------------- main


def parse_variants(specs: list[list[str]] | None) -> dict[str, dict[str, str]]:
    variants: dict[str, dict[str, str]] = {}
    for name, *assignments in specs or []:
        overrides = {}
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            if not sep:
                raise SystemExit(f"--variant {name}: expected ENV=VALUE, got {assignment!r}")
            overrides[key] = value
        variants[name] = overrides
    return variants


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/wine/1", help="model directory (model.joblib)")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma-separated subset")
    parser.add_argument("--concurrency", help="comma-separated (default 1,4,16,64)")
    parser.add_argument("--rows", default="1,100", help="rows per request, comma-separated")
    parser.add_argument("--reps", type=int, help="repetitions, the median is reported (3)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (4)")
    parser.add_argument("--warmup", type=float, help="warm-up s per measurement (1)")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.5,
        help="pause in s between each warm-up and its measurement (0.5)",
    )
    parser.add_argument("--initial-warmup", type=float, default=2, help="warm-up s at start")
    parser.add_argument("--start-timeout", type=float, default=180, help="seconds to become ready")
    parser.add_argument("--out", default="bench-results", help="output directory (ignored by git)")
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=5,
        help="seconds between GETs of each server's /metrics during the run (0: none)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to CPUs")
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        metavar=("NAME", "ENV=VALUE"),
        help="also run ours with these environment overrides, e.g. --variant nobatch "
        "MODELOPS_BATCH_MAX_ROWS=0 (repeatable; PYTHONPATH=DIR runs other code; "
        "BENCH_INSTANCES=list sends positional rows instead of objects)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repetition of 2s at 1 and 16 clients"
    )
    parser.add_argument(
        "--report", metavar="JSON", help="only print the report (and plot) of an earlier run"
    )
    args = parser.parse_args(argv)
    defaults = {"reps": 3, "duration": 4.0, "warmup": 1.0, "concurrency": "1,4,16,64"}
    if args.quick:
        defaults = {"reps": 1, "duration": 2.0, "warmup": 0.5, "concurrency": "1,16"}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(REPO)
    if args.report:
        report = json.loads(Path(args.report).read_text())
        print(render_report(report))
        plot(Path(args.report), Path(args.report).with_suffix(".png"))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
