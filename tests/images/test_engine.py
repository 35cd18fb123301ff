"""hack/docker-engine.sh: idempotent, and it never touches an engine it did not start."""

from __future__ import annotations

import subprocess

import pytest

from devstack.images import REPO_ROOT, engine_answers

pytestmark = pytest.mark.images

SCRIPT = REPO_ROOT / "hack" / "docker-engine.sh"


def engine(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **env},
    )  # fmt: skip


def test_start_is_idempotent() -> None:
    assert engine_answers(), "no Docker engine answers: run `make engine`"
    first, second = engine("start"), engine("start")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "answers" in second.stdout
    assert "starting dockerd" not in second.stdout


def test_an_engine_this_script_did_not_start_is_left_alone(tmp_path) -> None:
    """With another pid directory the running engine is not ours: stop must not touch it."""
    other = {"DOCKERD_DIR": str(tmp_path)}
    status, stop = engine("status", **other), engine("stop", **other)

    assert "not started by this script" in status.stdout
    assert stop.returncode == 0, stop.stderr
    assert "nothing to stop" in stop.stdout
    assert engine_answers()
