"""The files several workers share: drift windows read as one, the metrics directory's
preparation, the bookkeeping of dead workers and the pod's process_* series (in-process,
real files, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, ProcessCollector

from modelops_service.window import PodWindow, SlidingWindow, window_path
from modelops_service.workers import (
    MULTIPROC_ENV,
    PodProcessCollector,
    mark_dead_workers,
    shared_metrics_dir,
)


def rows(start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.arange(start, start + n, dtype=float)
    return np.repeat(values[:, None], 2, axis=1), values


def dead_pid() -> int:
    """A pid no process has: one above the kernel's largest."""
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_the_pod_window_reads_every_worker_window(tmp_path: Path) -> None:
    first = SlidingWindow(2, 3, path=window_path(tmp_path, 101))
    second = SlidingWindow(2, 3, path=window_path(tmp_path, 102))
    first.append(*rows(0, 5))  # wraps: keeps 2, 3, 4
    second.append(*rows(10, 2))

    features, signal, appended = PodWindow(tmp_path, 2, 3).snapshot()

    assert sorted(signal.tolist()) == [2.0, 3.0, 4.0, 10.0, 11.0]
    assert np.array_equal(features[:, 1], signal)
    assert appended == 7
    assert PodWindow(tmp_path, 2, 3).appended == 7
    assert len(PodWindow(tmp_path, 2, 3)) == 5


def test_an_empty_pod_window(tmp_path: Path) -> None:
    features, signal, appended = PodWindow(tmp_path, 2, 3).snapshot()

    assert (features.shape, signal.shape, appended) == ((0, 2), (0,), 0)


def test_the_entry_point_empties_a_given_directory_and_leaves_it(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    (shared / "old").mkdir(parents=True)
    (shared / "counter_7.db").write_bytes(b"x")
    env = {MULTIPROC_ENV: str(shared)}

    with shared_metrics_dir(env) as path:
        assert path == shared
        assert list(shared.iterdir()) == []
        (shared / "counter_8.db").write_bytes(b"x")
    assert [p.name for p in shared.iterdir()] == ["counter_8.db"]


def test_the_entry_point_exports_a_directory_of_its_own_and_removes_it() -> None:
    fresh: dict[str, str] = {}
    with shared_metrics_dir(fresh) as made:
        assert fresh[MULTIPROC_ENV] == str(made)
        assert made.is_dir()
        (made / "counter_8.db").write_bytes(b"x")
    assert not made.exists()


def test_a_dead_worker_loses_its_live_gauges_and_drift_rows_but_not_its_counts(
    tmp_path: Path,
) -> None:
    gone = dead_pid()
    for name in (f"gauge_livesum_{gone}.db", f"counter_{gone}.db", "gauge_livesum_1.db"):
        (tmp_path / name).write_bytes(b"")
    SlidingWindow(2, 3, path=window_path(tmp_path, gone)).append(*rows(0, 1))
    SlidingWindow(2, 3, path=window_path(tmp_path, 1)).append(*rows(0, 1))  # pid 1 lives

    mark_dead_workers(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{gone}.db",
        "drift_window_1.bin",
        "gauge_livesum_1.db",
    ]


def process_values(collector: object) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    return {s.name: s.value for m in registry.collect() for s in m.samples}


def test_the_pods_process_series_combine_the_supervisor_and_its_live_workers(
    tmp_path: Path,
) -> None:
    burn = "sum(range(3_000_000)); print(flush=True); import time; time.sleep(60)"
    workers = [
        subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE) for _ in range(2)
    ]
    for w in workers:
        assert w.stdout is not None
        w.stdout.readline()  # it has spent some CPU
    try:
        for w in workers:
            (tmp_path / f"counter_{w.pid}.db").write_bytes(b"")
        (tmp_path / f"histogram_{dead_pid()}.db").write_bytes(b"")  # a worker gone
        pod = PodProcessCollector(tmp_path, supervisor=os.getpid())
        assert pod.pids() == [os.getpid(), *sorted(w.pid for w in workers)]

        def each() -> list[dict[str, float]]:
            return [
                process_values(ProcessCollector(pid=lambda p=p: p, registry=None))
                for p in pod.pids()
            ]

        before = each()
        combined = process_values(pod)
        after = each()
    finally:
        for w in workers:
            w.kill()
            w.wait()

    cpu = "process_cpu_seconds_total"
    assert sum(v[cpu] for v in before) <= combined[cpu] <= sum(v[cpu] for v in after)
    assert combined[cpu] > max(v[cpu] for v in after)  # more than any one of them
    rss = "process_resident_memory_bytes"
    assert combined[rss] > max(v[rss] for v in after)
    assert combined["process_open_fds"] > max(v["process_open_fds"] for v in after)
    start = "process_start_time_seconds"
    assert combined[start] == min(v[start] for v in before)  # this test's own process
    assert combined["process_max_fds"] == min(v["process_max_fds"] for v in before)
