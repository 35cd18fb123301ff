"""Run the REAL model service as a local process, for tests of any tier.

    from devstack.service_process import running_service, demo_model_dir

    with running_service(demo_model_dir("wine", "1"), log_dir=workdir) as svc:
        httpx.get(f"{svc.url}/metrics")

``start_service`` launches ``python -m modelops_service`` (the production
entry point, under uvicorn) on a free loopback port, with a clean
environment (no MODELOPS_* leaks in from the caller), waits until /readyz
answers 200, and returns a ``ServiceProcess``; ``stop()`` ends it by PID.
Its output (JSON log lines) goes to a file in the caller's ``log_dir``: ``svc.logs()``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.paths import MODELS_ROOT, REPO_ROOT, DevstackError
from devstack.processes import HOST, Process, http_status, on_free_port, spawn

__all__ = [
    "ServiceProcess",
    "ServiceStartError",
    "demo_model_dir",
    "ensure_demo_models",
    "running_service",
    "start_service",
]

DEMO_MODELS = (
    ("wine", "1"), ("wine", "2"), ("wine", "3"),
    ("diabetes", "1"), ("diabetes", "2"), ("diabetes", "3"), ("diabetes", "4"),
)  # fmt: skip
READY_TIMEOUT = 120.0  # a ceiling: importing scikit-learn on a busy 2-core machine is slow


class ServiceStartError(DevstackError):
    """The service exited, or did not become ready in time. The message ends with its log."""


@dataclass
class ServiceProcess:
    """A started service. ``url`` is ``http://127.0.0.1:<port>`` (no trailing slash)."""

    url: str
    port: int
    model_dir: Path
    process: Process = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        assert self.process.log_path is not None
        return self.process.log_path

    @property
    def returncode(self) -> int | None:
        """None while running, else the exit status."""
        return self.process.returncode

    def logs(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self.process.logs()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until GET /readyz is 200. Raises ServiceStartError if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.returncode
            if code is not None:
                raise ServiceStartError(
                    f"service exited with status {code} before it was ready\n{self.logs()}"
                )
            if http_status(f"{self.url}/readyz") == 200:
                return
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"service not ready after {timeout:.0f}s on {self.url}\n{self.logs()}"
                )
            time.sleep(0.05)

    def wait_exit(self, timeout: float = READY_TIMEOUT) -> int:
        """Block until the process exits on its own; its exit status."""
        assert self.process.popen is not None
        return self.process.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL after ``timeout``. Idempotent.

        Returns the exit status: -15 after a clean shutdown (uvicorn finishes it, then
        re-raises the SIGTERM it caught), 2 for a refused artifact or bad settings.
        """
        return self.process.stop(timeout)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_service(
    model_dir: str | os.PathLike,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    *,
    log_dir: str | os.PathLike,
    wait: bool = True,
    timeout: float = READY_TIMEOUT,
) -> ServiceProcess:
    """Start ``python -m modelops_service`` for ``model_dir`` on 127.0.0.1.

    ``port``: None picks a free one (retried if another process grabs it first).
    ``env``: extra MODELOPS_* (or other) variables; the caller's MODELOPS_* are dropped.
    ``log_dir``: where its log goes (the caller's work directory, removed with it).
    ``wait``: block until /readyz is 200 (raising ServiceStartError with the log if the
    process exits or times out); with False, return at once (e.g. to watch it refuse to
    start, or to see /readyz answer 503 first).
    """

    def start_on(free: int) -> ServiceProcess:
        svc = _spawn(Path(model_dir), free, env or {}, log_dir)
        if wait:
            try:
                svc.wait_ready(timeout)
            except ServiceStartError:
                svc.stop()
                raise
        return svc

    return start_on(port) if port is not None else on_free_port(start_on)


@contextlib.contextmanager
def running_service(
    model_dir: str | os.PathLike,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Iterator[ServiceProcess]:
    """``start_service`` as a context manager: stopped on exit, whatever happened."""
    svc = start_service(model_dir, port, env, **kwargs)
    try:
        yield svc
    finally:
        svc.stop()


def _spawn(
    model_dir: Path, port: int, env: Mapping[str, str], log_dir: str | os.PathLike
) -> ServiceProcess:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")}
    child_env.update({"MODELOPS_MODEL_DIR": str(model_dir), "PYTHONUNBUFFERED": "1"})
    child_env.update(env)
    fd, log_path = tempfile.mkstemp(prefix=f"modelops-service-{port}-", suffix=".log", dir=log_dir)
    os.close(fd)
    process = spawn(
        "model-service",
        [sys.executable, "-m", "modelops_service", "--host", HOST, "--port", port],
        Path(log_path),
        env=child_env,
        cwd=REPO_ROOT,
    )
    return ServiceProcess(
        url=f"http://{HOST}:{port}", port=port, model_dir=model_dir, process=process
    )


def ensure_demo_models(root: str | os.PathLike | None = None) -> Path:
    """The demo models directory (default: <repo>/models), trained first if incomplete."""
    root = Path(root) if root is not None else MODELS_ROOT
    if not all((root / n / v / "model.json").is_file() for n, v in DEMO_MODELS):
        subprocess.run(
            [sys.executable, "-m", "modelops_service.train", "--out", str(root)],
            check=True,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
        )
    return root


def demo_model_dir(name: str = "wine", version: str = "1", root: str | None = None) -> Path:
    """``<root>/<name>/<version>`` of the demo models, training them if needed."""
    return ensure_demo_models(root) / name / version
