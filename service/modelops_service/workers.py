"""Several server processes in one pod (``MODELOPS_WORKERS`` > 1).

prometheus_client's multiprocess mode: every worker writes its series into
memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape, answered by
any worker, reads them all. The entry point prepares the directory before the
workers start (emptied: a restarted pod must not add up the old pod's counts;
one it made itself is removed when they are gone);
each worker, when it starts, marks the workers that died before it (uvicorn
restarts them) so their live gauges and drift rows stop counting. The process_*
series describe the server's processes together (``PodProcessCollector``).
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from modelops_service.window import pid_alive, remove_dead_windows

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID = re.compile(r"_(\d+)\.db$")


def multiproc_dir(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """The directory of the shared metric files, or None in one process."""
    env = os.environ if environ is None else environ
    value = env.get(MULTIPROC_ENV)
    return Path(value) if value else None


@contextlib.contextmanager
def shared_metrics_dir(environ: MutableMapping[str, str] | None = None) -> Iterator[Path]:
    """Around the workers' lifetime: PROMETHEUS_MULTIPROC_DIR (a new temporary directory
    unless set, as the chart sets it to an emptyDir), emptied, exported to them. A
    directory made here is removed on exit; one that was given is left as it is."""
    env = os.environ if environ is None else environ
    path = multiproc_dir(env)
    made = None
    if path is None:
        made = tempfile.TemporaryDirectory(prefix="modelops-metrics-")
        path = Path(made.name)
        env[MULTIPROC_ENV] = str(path)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    try:
        yield path
    finally:
        if made is not None:
            made.cleanup()


def use_fixed_pid_values() -> None:
    """Before any metric is created in a worker: prometheus_client's file-backed values
    without their per-update ``os.getpid()`` (a system call on every increment, there
    to notice a fork). uvicorn spawns its workers, which never fork afterwards, so the
    pid read here stays theirs."""
    from prometheus_client import values

    pid = os.getpid()
    values.ValueClass = values.MultiProcessValue(lambda: pid)


def worker_pids(path: Path) -> set[int]:
    """Every worker that wrote series into ``path``, alive or gone."""
    return {int(m.group(1)) for f in path.glob("*.db") if (m := _PID.search(f.name))}


def mark_dead_workers(path: Path) -> None:
    """Live gauges (``live*`` modes) and drift rows of workers that are gone."""
    from prometheus_client import multiprocess

    for pid in worker_pids(path):
        if not pid_alive(pid):
            multiprocess.mark_process_dead(pid, str(path))
    remove_dead_windows(path)


# How one series of several processes combines into the pod's: CPU, memory and open
# descriptors add up; the server started with its oldest process; each process has the
# same descriptor limit. (Families by their name without a counter's _total.)
_COMBINE: dict[str, Callable[[float, float], float]] = {
    "process_start_time_seconds": min,
    "process_max_fds": min,
}


class PodProcessCollector(Collector):
    """prometheus_client's process_* series of the server's processes together: the
    supervisor (the entry point, which spawned the workers) and every live worker.

    Any worker answers a scrape: its own series would jump from one worker to another
    between scrapes, which rate() reads as counter resets (a CPU panel showed 3.7 cores
    of a 0.2-core pod). Each process is read as prometheus_client reads one.
    """

    def __init__(self, path: Path, supervisor: int) -> None:
        self._path = path
        self._supervisor = supervisor

    def pids(self) -> list[int]:
        return [self._supervisor, *sorted(p for p in worker_pids(self._path) if pid_alive(p))]

    def collect(self) -> Iterator[Metric]:
        pod: dict[str, Metric] = {}
        for pid in self.pids():
            # a process gone since pids() reads nothing: it leaves the sums
            process = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            for family in process.collect():
                if (have := pod.get(family.name)) is None:
                    pod[family.name] = family
                    continue
                combine = _COMBINE.get(family.name, operator.add)
                (mine,), (theirs,) = have.samples, family.samples
                have.samples[0] = mine._replace(value=combine(mine.value, theirs.value))
        yield from pod.values()
