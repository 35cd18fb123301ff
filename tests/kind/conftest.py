"""Fixtures of the kind-path tests: repo paths, Makefile variables, the kindcheck binary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """A tool from the repo's .cache/bin (make tools) or .venv/bin first, then PATH."""
    for candidate in (ROOT / ".cache" / "bin" / name, Path(sys.executable).parent / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    assert found, f"{name} is missing: make tools / make venv install it"
    return found


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("cwd", ROOT)
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


@pytest.fixture(scope="session")
def make_var() -> Callable[[str], str]:
    """The value make gives a variable of the Makefile (after every assignment)."""
    cache: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in cache:
            rule = "print-%: ; @echo '$($*)'"
            proc = run(["make", "-s", "--no-print-directory", "--eval", rule, f"print-{name}"])
            assert proc.returncode == 0, proc.stderr
            cache[name] = proc.stdout.strip()
        return cache[name]

    return get


@pytest.fixture(scope="session")
def kindcheck() -> Path:
    """hack/kindcheck built with the Go toolchain into .cache/kindcheck (go caches the build)."""
    go = shutil.which("go")
    assert go, "go is needed to build hack/kindcheck (it is a prerequisite of make test)"
    out = ROOT / ".cache" / "kindcheck" / "kindcheck"
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly -buildvcs=false",
    }
    proc = run([go, "build", "-o", str(out), "."], cwd=ROOT / "hack" / "kindcheck", env=env)
    assert proc.returncode == 0, proc.stderr
    return out
