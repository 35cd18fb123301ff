"""Fixtures of the kind-path tests: Makefile variables, the kindcheck binary."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.repo import ROOT, run


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
