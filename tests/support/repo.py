"""The repository as the tests see it: its root, the tools it installs, a command run from
its root. The facts themselves live in devstack.paths, the dev stack's one home for them."""

from __future__ import annotations

import subprocess

from devstack.paths import REPO_ROOT as ROOT
from devstack.paths import find_tool


def tool(name: str) -> str:
    """A tool from the repo's .cache/bin (make tools), its .venv/bin, then PATH; a missing
    tool fails the test (DevstackError: an install step not run, never a reason to skip)."""
    return str(find_tool(name))


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("cwd", ROOT)
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
