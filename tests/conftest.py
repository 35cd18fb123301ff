"""Repository-wide pytest configuration; each tier keeps its own fixtures."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# The test rig: session fixture `cluster` (a real control plane with KWOK nodes)
# and `namespace` (a fresh namespace per test). See tests/rig/.
pytest_plugins = ["tests.rig.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    # The pinned tools of `make tools` win over whatever else is on PATH, so a
    # bare `pytest` runs against the same helm, kubectl and promtool as `make test`.
    tool_dirs = [REPO_ROOT / ".cache" / "bin", REPO_ROOT / ".venv" / "bin"]
    os.environ["PATH"] = os.pathsep.join([*map(str, tool_dirs), os.environ.get("PATH", "")])
