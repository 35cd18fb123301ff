"""Driving the load and watching the servers meanwhile: wrk runs and their results, CPU time
and resident memory of a server's process tree (from /proc), and the /metrics scraper."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bench.open_loop import parse_output as parse_open_loop_output
from bench.servers import BENCH, pin

WRK_SCRIPT = BENCH / "wrk_post.lua"
T = TypeVar("T")
RESULT_PREFIX = "BENCH_JSON "  # the line bench/wrk_post.lua prints when wrk is done


# --------------------------------------------------------------------------- load generator


def wrk(
    url: str, body_file: Path, connections: int, seconds: float, cpu: int | None
) -> dict[str, Any]:
    """One closed-loop wrk run of ``seconds`` POSTing ``body_file`` over ``connections``."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    env = dict(os.environ, BENCH_BODY_FILE=str(body_file))
    return _generate("wrk", command, cpu, seconds, parse_wrk_output, env=env)


def open_loop(
    url: str,
    body_file: Path,
    rate: float,
    seconds: float,
    connections: int,
    cpu: int | None,
) -> dict[str, Any]:
    """One open-loop run (bench/open_loop.py, its own process on the load generator's CPU,
    like wrk): ``body_file`` POSTed at ``rate`` per second for ``seconds``."""
    command = [
        sys.executable, "-m", "bench.open_loop", "--url", url, "--body-file", str(body_file),
        "--rate", f"{rate:.3f}", "--seconds", f"{seconds:g}", "--connections", str(connections),
    ]  # fmt: skip
    return _generate("open loop", command, cpu, seconds, parse_open_loop_output, cwd=BENCH.parent)


def measure_open_loop_run(
    pid: int,
    url: str,
    body_file: Path,
    rate: float,
    seconds: float,
    connections: int,
    cpus: tuple[int | None, int | None],
) -> dict[str, Any]:
    """One open-loop run (``cpus``: the server's and the generator's) with the server's CPU
    per request and share of its core, the generator's share of its own, and what neither
    of them used of those cores: other processes of the shared machine, whose bursts are
    the likeliest cause of an outlying tail."""
    server_cpu, load_cpu = cpus
    before = (cpu_seconds(pid), children_cpu_seconds(), cores_busy_seconds(), time.monotonic())
    result = open_loop(url, body_file, rate, seconds, connections, load_cpu)
    after = (cpu_seconds(pid), children_cpu_seconds(), cores_busy_seconds(), time.monotonic())
    server, generator, wall = after[0] - before[0], after[1] - before[1], after[3] - before[3]
    result["cpu_ms_per_req"] = server * 1000 / result["requests"] if result["requests"] else None
    result["core_share"] = server / wall
    result["generator_core_share"] = generator / wall
    for name, cpu, own in (("server", server_cpu, server), ("generator", load_cpu, generator)):
        if cpu is not None:
            busy = after[2].get(cpu, 0.0) - before[2].get(cpu, 0.0)
            result[f"others_on_{name}_core"] = max(0.0, busy - own) / wall
    return result


def _generate(
    what: str,
    command: list[str],
    cpu: int | None,
    seconds: float,
    parse: Callable[[str], dict[str, Any] | None],
    **popen: Any,
) -> dict[str, Any]:
    """Run a load generator pinned to ``cpu``; its parsed result, or why there is none."""
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        preexec_fn=pin(cpu),
        timeout=seconds + 60,
        check=False,
        **popen,
    )
    result = parse(done.stdout)
    if result is None:
        raise RuntimeError(f"{what} gave no result (exit {done.returncode}): {done.stderr.strip()}")
    return result


def parse_wrk_output(stdout: str) -> dict[str, Any] | None:
    """The result line of bench/wrk_post.lua, with requests/s and the error count added;
    None when wrk printed none."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line.removeprefix(RESULT_PREFIX))
            seconds_run = result["duration_us"] / 1e6
            result["rps"] = result["requests"] / seconds_run if seconds_run else 0.0
            result["error_count"] = sum(result["errors"].values())
            return result
    return None


def with_cpu(result: dict[str, Any], cpu_used: float) -> dict[str, Any]:
    """A wrk result with the server's CPU seconds spent during it, per request (moves far
    less with background load than req/s) and as a share of one core."""
    result["server_cpu_s"] = cpu_used
    result["cpu_ms_per_req"] = cpu_used * 1000 / result["requests"] if result["requests"] else None
    result["core_share"] = cpu_used / (result["duration_us"] / 1e6)
    return result


def measure(
    pid: int, url: str, body_file: Path, connections: int, seconds: float, cpu: int | None
) -> tuple[dict[str, Any], list[float]]:
    """One measurement: the wrk result with the server's CPU time, and RSS samples in MiB."""
    cpu_before = cpu_seconds(pid)
    with RssSampler(pid) as sampler:
        result = wrk(url, body_file, connections, seconds, cpu)
    return with_cpu(result, cpu_seconds(pid) - cpu_before), sampler.samples


def schedule(
    reps: int, row_counts: list[int], concurrencies: list[int], servers: list[T]
) -> Iterator[tuple[int, int, int, T]]:
    """The measurements in order, as (rep, rows, concurrency, server): every server in turn
    per cell, so that background load on a shared machine falls on all of them alike, in an
    order rotated each repetition, so that no server always goes first."""
    for rep in range(reps):
        turn = rep % len(servers)
        for n in row_counts:
            for c in concurrencies:
                for server in servers[turn:] + servers[:turn]:
                    yield rep, n, c, server


def progress_line(
    done: int, n_cells: int, rep: int, reps: int, n: int, c: int, key: str, result: dict, eta: float
) -> str:
    errors = f" ERRORS {result['errors']}" if result["error_count"] else ""
    return (
        f"[{done:3d}/{n_cells}] rep {rep + 1}/{reps} rows={n:<3d} "
        f"c={c:<3d} {key:<14s} {result['rps']:8.0f} req/s  "
        f"p50 {result['latency_us']['p50'] / 1000:7.2f} ms  "
        f"p99 {result['latency_us']['p99'] / 1000:7.2f} ms  "
        f"cpu {result['cpu_ms_per_req'] or 0:5.2f} ms/req "
        f"({result['core_share']:4.0%} of a core){errors}  "
        f"(ETA {eta / 60:4.1f} min)"
    )


# --------------------------------------------------------------------------- /proc


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


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's finished children (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cores_busy_seconds(stat: str | None = None) -> dict[int, float]:
    """Seconds each CPU has been busy since boot (every state of /proc/stat but idle and
    iowait), by CPU number."""
    if stat is None:
        stat = Path("/proc/stat").read_text()
    busy = {}
    for line in stat.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            busy[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return busy


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


class Scraper:
    """GETs ``urls`` (each server's /metrics) at a fixed interval, as Prometheus would: our
    drift scores are computed on scrape, so a run without scrapes would leave that work out.
    ``urls`` may be replaced while it runs (``make bench`` scrapes only the server it
    measures: the servers share one core, so a neighbour's scrape would be CPU taken from
    the measured one). ``seconds``: the wall time of each scrape that answered."""

    def __init__(self, urls: list[str], interval: float):
        self.urls = urls
        self.interval = interval
        self.scrapes = 0
        self.failures = 0
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for url in list(self.urls):
                try:
                    started = time.perf_counter()
                    with urllib.request.urlopen(url, timeout=10) as answer:
                        answer.read()
                    self.seconds.append(time.perf_counter() - started)
                    self.scrapes += 1
                except (OSError, urllib.error.URLError):
                    self.failures += 1

    def __enter__(self) -> Scraper:
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
