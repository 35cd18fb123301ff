"""The repository as the kind-path tests see it: its root, the tools it installs, a command
run from its root."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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
