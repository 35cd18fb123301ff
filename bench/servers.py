"""The servers under benchmark: ours (and its --variant copies), MLServer, KServe, the
FastAPI floor and the raw ASGI echo (the server's share of the stack floor). What each
runs, how its requests are encoded and its answers decoded, and how it starts (pinned to a
CPU, in its own session) and stops (the whole process group: the peers fork workers)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.model import Model, answers_match
from devstack.paths import REPO_ROOT as REPO
from devstack.paths import VENV_BIN
from devstack.processes import free_port, http_status

BENCH = REPO / "bench"
CACHE = REPO / ".cache" / "bench"
PEERS = ("mlserver", "kserve")
ALL_SERVERS = ("ours", "workers2", "mlserver", "kserve", "floor", "echo")
# Issue 21 goal 4: ours with two worker processes (on the same pinned core as every server),
# a variant of ours named after its key in ALL_SERVERS.
WORKERS_VARIANT = ("workers2", {"MODELOPS_WORKERS": "2"})
ECHO_ANSWERS = "echo-answers.json"  # in the run directory: bench/peers/echo_app.py reads it


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


def v1_predictions(body: Any) -> list:
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


def oip_predictions(body: Any) -> list:
    return list(body["outputs"][0]["data"])


def positional_rows(rows: np.ndarray) -> bytes:
    """A v1 body of positional rows, ``{"instances": [[...], ...]}``."""
    return json.dumps({"instances": rows.tolist()}).encode()


def keyed_rows(names: list[str]) -> Callable[[np.ndarray], bytes]:
    """An encoder of v1 bodies whose rows are objects keyed by feature name."""

    def encode(rows: np.ndarray) -> bytes:
        instances = [dict(zip(names, map(float, r), strict=True)) for r in rows]
        return json.dumps({"instances": instances}).encode()

    return encode


def oip_tensor(n_features: int) -> Callable[[np.ndarray], bytes]:
    """An encoder of Open Inference Protocol bodies: the rows as one FP64 tensor."""

    def encode(rows: np.ndarray) -> bytes:
        tensor = {
            "name": "input-0",
            "shape": [len(rows), n_features],
            "datatype": "FP64",
            "data": rows.ravel().tolist(),
        }
        return json.dumps({"inputs": [tensor]}).encode()

    return encode


def build_servers(
    model: Model, run_dir: Path, wanted: list[str], variants: dict[str, dict[str, str]]
) -> list[Server]:
    """The wanted servers in report order: ours, its variants (other settings or another
    PYTHONPATH, measured in the same run), the peers, the floor."""
    base_env = environment_without_settings()
    servers = [ours(model, run_dir, base_env, "ours", {})] if "ours" in wanted else []
    name, overrides = WORKERS_VARIANT
    if name in wanted:
        variants = {name: overrides, **variants}
    servers += [
        ours(model, run_dir, base_env, f"ours:{name}", overrides)
        for name, overrides in variants.items()
    ]
    if "echo" in wanted and "ours" not in wanted:
        raise SystemExit("the echo server answers ours' answers: run it with ours")
    peers = {"mlserver": mlserver, "kserve": kserve, "floor": floor, "echo": echo}
    servers += [build(model, run_dir, base_env) for key, build in peers.items() if key in wanted]
    return servers


def check_installed(servers: list[Server]) -> None:
    """Exit with one line when a server's program is missing (a peer's venv not built)."""
    missing = [s.command[0] for s in servers if not Path(s.command[0]).exists()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing: run `make bench-setup` (the peers' venvs)")


def environment_without_settings() -> dict[str, str]:
    """This process's environment less any MODELOPS_* setting: what every server starts
    from, so that a setting of the shell running the bench never reaches one of them."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")}


def ours_env(model: Model, base_env: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    """Ours' environment: ``base_env``, the model's directory and digest, the overrides."""
    env = dict(base_env, MODELOPS_MODEL_DIR=str(model.directory))
    if model.sha256:
        env["MODELOPS_MODEL_SHA256"] = model.sha256
    env.update(overrides)
    return env


def ours(
    model: Model, run_dir: Path, base_env: dict[str, str], key: str, overrides: dict[str, str]
) -> Server:
    port = free_port()
    overrides = dict(overrides)
    # BENCH_INSTANCES=list sends positional rows ({"instances": [[...]]}, the body KServe
    # gets) instead of objects keyed by feature name; it is not passed to the server.
    positional = overrides.pop("BENCH_INSTANCES", "dict") == "list"
    env = ours_env(model, base_env, overrides)
    return Server(
        key=key,
        command=[
            str(VENV_BIN / "python"),
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
        encode=positional_rows if positional else keyed_rows(model.feature_names),
        decode=v1_predictions,
        log=run_dir / f"{key.replace(':', '-')}.log",
        env_overrides=tuple(overrides),
        notes=["instances as positional lists" if positional else "instances as objects"],
    )


def mlserver(model: Model, run_dir: Path, base_env: dict[str, str]) -> Server:
    http, grpc, metrics = free_port(), free_port(), free_port()
    repo_dir = run_dir / "mlserver"
    (repo_dir / model.name).mkdir(parents=True, exist_ok=True)
    # One process like the others: inference in the server process (parallel_workers=0);
    # everything else is MLServer's default.
    settings = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "parallel_workers": 0,
    }
    (repo_dir / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": model.name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model.joblib_file), "version": model.version},
    }
    (repo_dir / model.name / "model-settings.json").write_text(json.dumps(model_settings))
    return Server(
        key="mlserver",
        command=[str(CACHE / "mlserver-venv/bin/mlserver"), "start", str(repo_dir)],
        env=dict(base_env),
        cwd=repo_dir,
        ready_url=f"http://127.0.0.1:{http}/v2/models/{model.name}/ready",
        predict_url=f"http://127.0.0.1:{http}/v2/models/{model.name}/infer",
        metrics_url=f"http://127.0.0.1:{metrics}/metrics",
        encode=oip_tensor(len(model.feature_names)),
        decode=oip_predictions,
        log=run_dir / "mlserver.log",
    )


def kserve(model: Model, run_dir: Path, base_env: dict[str, str]) -> Server:
    http = free_port()
    return Server(
        key="kserve",
        command=[
            str(CACHE / "kserve-venv/bin/python"),
            str(BENCH / "peers/kserve_model.py"),
            *("--model_name", model.name, "--model_file", str(model.joblib_file)),
            *("--http_port", str(http), "--workers", "1", "--enable_grpc", "false"),
        ],
        env=dict(base_env),
        cwd=run_dir,
        ready_url=f"http://127.0.0.1:{http}/v1/models/{model.name}",
        predict_url=f"http://127.0.0.1:{http}/v1/models/{model.name}:predict",
        metrics_url=f"http://127.0.0.1:{http}/metrics",
        encode=positional_rows,
        decode=v1_predictions,
        log=run_dir / "kserve.log",
    )


def floor(model: Model, run_dir: Path, base_env: dict[str, str]) -> Server:
    port = free_port()
    return Server(
        key="floor",
        command=[
            str(VENV_BIN / "python"),
            *("-m", "uvicorn", "floor_app:app", "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", "1", "--no-access-log"),
        ],
        env=dict(base_env, BENCH_MODEL_FILE=str(model.joblib_file)),
        cwd=BENCH / "peers",
        ready_url=f"http://127.0.0.1:{port}/docs",
        predict_url=f"http://127.0.0.1:{port}/predict",
        encode=positional_rows,
        decode=v1_predictions,
        log=run_dir / "floor.log",
    )


def echo(model: Model, run_dir: Path, base_env: dict[str, str]) -> Server:
    port = free_port()
    return Server(
        key="echo",
        # ours' uvicorn settings (modelops_service.__main__): one worker, uvicorn's default
        # loop and HTTP parser, no access log, no server header
        command=[
            str(VENV_BIN / "python"),
            *("-m", "uvicorn", "echo_app:app", "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", "1", "--no-access-log", "--no-server-header"),
        ],
        env=dict(base_env, BENCH_ANSWERS_FILE=str(run_dir / ECHO_ANSWERS)),
        cwd=BENCH / "peers",
        ready_url=f"http://127.0.0.1:{port}/readyz",
        predict_url=f"http://127.0.0.1:{port}/v1/predict",
        encode=keyed_rows(model.feature_names),
        decode=v1_predictions,
        log=run_dir / "echo.log",
    )


def set_pace(echo: Server, filler_ms: float) -> None:
    """The CPU the echo spends on each request before answering (bench/peers/echo_app.py)."""
    url = echo.ready_url.removesuffix("/readyz") + "/pace"
    request = urllib.request.Request(url, data=str(filler_ms / 1000).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        if answer.status != 204:
            raise RuntimeError(f"the echo refused its pace: HTTP {answer.status}")


def pin(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def start(server: Server, cpu: int | None) -> None:
    # Not devstack.processes.spawn: a server is pinned before it execs (the workers it forks
    # inherit the CPU) and stopped as a process group (see stop()).
    with server.log.open("wb") as log:
        server.proc = subprocess.Popen(
            server.command,
            cwd=server.cwd,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=pin(cpu),
            start_new_session=True,
        )


def wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.key} exited with {server.proc.returncode} before it was ready; "
                f"last lines of {server.log}:\n{tail(server.log)}"
            )
        if http_status(server.ready_url) == 200:
            return
        time.sleep(0.3)
    raise RuntimeError(f"{server.key} not ready after {timeout:.0f}s:\n{tail(server.log)}")


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


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read()


def check_answers(server: Server, model: Model, bodies: dict[int, bytes]) -> dict[int, bytes]:
    """Every server must answer what model.predict answers, or its speed means nothing.
    Returns the raw answers, by rows per request."""
    answers = {}
    for n_rows, body in bodies.items():
        try:
            answers[n_rows] = post(server.predict_url, body)
            got = server.decode(json.loads(answers[n_rows]))
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace")
            message = f"{server.key}: {n_rows}-row request -> {exc.code}: {detail}"
            raise RuntimeError(message) from exc
        ok, got_arr, want = answers_match(model, got, n_rows)
        if not ok:
            raise RuntimeError(
                f"{server.key}: {n_rows}-row answer differs from model.predict: "
                f"got {got_arr[:5]}..., want {want[:5]}..."
            )
    return answers
