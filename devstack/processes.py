"""Local processes of the dev stack: one way to pick a port, start, record and stop them.

- ``free_port()``: a free loopback port (the caller retries if another process takes it).
- ``spawn()``: start a command with its output appended to a log file; a ``Process``.
- ``Process.stop()`` / ``stop_all()``: SIGTERM, then SIGKILL after a grace period, by PID.
- ``Ledger``: a JSON file of the PIDs a run started, each with its start time, so another
  process (``make cluster-down``, the demo's next run) can stop them; a PID reused by an
  unrelated process has another start time and is left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
STOP_GRACE = 15.0


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (tells a reused PID apart); None
    when it has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; only its parent's wait() remains
        return None
    return int(fields[19])


def pid_alive(pid: int, started: int | None = None) -> bool:
    """The process runs (and, given ``started``, is the one that started then)."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status code of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, urllib.error.URLError):
        return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: the kernel kills the child if its parent dies without cleaning up."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass(eq=False)
class Process:
    """A process by PID and start time: started here (``popen`` set) or read from a Ledger."""

    name: str
    pid: int
    started: int | None
    argv: tuple[str, ...] = ()
    log_path: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def returncode(self) -> int | None:
        """None while it runs; its exit status once it ended (if started here)."""
        return self.popen.poll() if self.popen is not None else None

    def alive(self) -> bool:
        if self.popen is not None:  # our child: poll() also reaps it, so no zombie is left
            return self.popen.poll() is None
        # recorded: only while the PID still has its recorded start time
        return self.started is not None and pid_alive(self.pid, self.started)

    def logs(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:]) or f"(nothing in {self.log_path})"

    def send(self, signum: int) -> None:
        """Send ``signum`` while it runs (never to a PID another process has taken since)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def wait(self, timeout: float) -> bool:
        """True once it has ended, False if it still runs after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds. Idempotent. The exit status."""
        stop_all([self], grace)
        return self.returncode

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "start_time": self.started}


def spawn(
    name: str,
    argv: Sequence[Any],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    detach: bool = False,
    die_with_parent: bool = False,
) -> Process:
    """Start ``argv`` with stdin closed and stdout and stderr appended to ``log_path``.

    detach: its own session, so it outlives this process (``make cluster-up``) and a Ctrl-C
    in the terminal reaches only us, who stop it in order. die_with_parent: the kernel
    kills it when we die without cleaning up (a pytest killed mid-session).
    """
    args = tuple(str(a) for a in argv)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=detach,
            preexec_fn=_die_with_parent if die_with_parent and not detach else None,
        )
    return Process(name, popen.pid, start_time(popen.pid), args, log_path, popen)


def stop_all(procs: Iterable[Process], grace: float = STOP_GRACE) -> None:
    """SIGTERM each, then SIGKILL whatever still runs ``grace`` seconds later."""
    procs = list(procs)
    for p in procs:
        p.send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        if not p.wait(max(0.0, deadline - time.monotonic())):
            p.send(signal.SIGKILL)
            p.wait(grace)


@dataclass
class Ledger:
    """The PIDs a run started, in a JSON file (``{"procs": [{name, pid, start_time}]}``).

    Written atomically at each change, so a run killed with SIGKILL still leaves a true
    list behind for ``stop()`` to end."""

    path: Path

    def read(self) -> list[Process]:
        if not self.path.exists():
            return []
        state = json.loads(self.path.read_text())
        return [Process(p["name"], p["pid"], p["start_time"]) for p in state["procs"]]

    def write(self, procs: Iterable[Process], **extra: Any) -> None:
        state = {**extra, "procs": [p.record() for p in procs]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.path)

    def add(self, proc: Process) -> None:
        self.write([*self.read(), proc])

    def running(self) -> bool:
        """Something is recorded and every recorded process still runs."""
        procs = self.read()
        return bool(procs) and all(p.alive() for p in procs)

    def stop(self, order: Sequence[str] = ()) -> list[str]:
        """Stop every recorded process that still runs, newest first, except that the names
        in ``order`` go last, in that order (etcd after its clients). Then drop the file.
        Returns ``name (pid)`` of each one that was running."""
        procs = list(reversed(self.read()))
        stopped = [f"{p.name} ({p.pid})" for p in procs if p.alive()]
        stop_all([p for p in procs if p.name not in order])
        for name in order:
            stop_all([p for p in procs if p.name == name])
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        return stopped
