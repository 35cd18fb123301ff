"""bench/profile.py: the component shares of a profile add up, each from its functions."""

from __future__ import annotations

import cProfile
import importlib.util
from pathlib import Path

import pytest

from bench import profile
from bench.report import profile_table

WORK = """
def heavy():
    return sum(i * i for i in range(200_000))

def light():
    return sum(range(1000))

def caller():
    return heavy() + light()
"""


def test_shares_come_from_the_entry_points_and_sum_to_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "pkg" / "work.py"
    source.parent.mkdir()
    source.write_text(WORK)
    spec = importlib.util.spec_from_file_location("work", source)
    assert spec is not None
    assert spec.loader is not None
    work = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(work)
    monkeypatch.setattr(profile, "ENTRY_POINTS", (("heavy part", "pkg/work.py", ("heavy",)),))
    monkeypatch.setattr(profile, "COMPONENTS", ("heavy part", "batch", profile.REST))
    profiler = cProfile.Profile()
    profiler.runcall(work.caller)
    out = tmp_path / "out.prof"
    profiler.dump_stats(out)

    shares = profile.components(out)

    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["heavy part"] > 0.8  # heavy() and the generator it sums
    assert shares["batch"] == 0.0
    assert shares[profile.REST] > 0.0  # caller(), light()


def test_the_profile_table_scales_shares_to_the_measured_cpu() -> None:
    report = {
        "results": [{"server": "ours", "rows": 1, "concurrency": 16, "cpu_ms_per_req": 0.2}],
        "profile": {"1": {"model call": 0.25, profile.REST: 0.75}},
    }
    lines = profile_table(report)
    assert lines[2].split() == ["model", "call", "25.0%", "0.050", "ms"]
    assert profile_table({"results": []})[0].startswith("Profile of ours: not run")
