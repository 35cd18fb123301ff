"""Where the dev stack finds things: the repository, the tools of `make tools`, the pins."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = REPO_ROOT / ".cache" / "bin"
CRD_DIR = REPO_ROOT / ".cache" / "crds"
# upstream's example/rbac manifests of prometheus-operator (make tools copies them)
PROMETHEUS_OPERATOR_MANIFESTS = REPO_ROOT / ".cache" / "prometheus-operator"
# upstream's examples/standard manifests of kube-state-metrics (make tools copies them)
KUBE_STATE_METRICS_MANIFESTS = REPO_ROOT / ".cache" / "kube-state-metrics"
RUN_ROOT = REPO_ROOT / ".run"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
VERSIONS_FILE = REPO_ROOT / "hack" / "versions.env"
MODELS_ROOT = REPO_ROOT / "models"
MODELDEPLOYMENT_CRD = REPO_ROOT / "manifests" / "crd" / "modeldeployments.modelops.io.yaml"
SERVICE_CHART = REPO_ROOT / "charts" / "model-service"
OPERATOR_CHART = REPO_ROOT / "charts" / "model-operator"
RULES = REPO_ROOT / "alerts" / "modelops.rules.yaml"


class DevstackError(RuntimeError):
    """A part of the dev stack could not start, or a tool it needs is missing."""


def versions() -> dict[str, str]:
    """The pins of hack/versions.env."""
    pins = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            pins[key.strip()] = value.strip()
    return pins


def tool_path() -> str:
    """PATH with the rig's tools and the venv first, as the Makefile sets it."""
    return os.pathsep.join([str(TOOLS_BIN), str(VENV_BIN), os.environ.get("PATH", "")])


def find_tool(*names: str) -> Path:
    """The first of ``names`` in .cache/bin (make tools), the venv or PATH, once a build of it
    still running in the background has ended (``await_build``); DevstackError if none is
    (a missing tool is an install step not run, never a reason to skip)."""
    for name in names:
        found = shutil.which(name, path=tool_path()) or await_build(TOOLS_BIN / name)
        if found:
            return Path(found)
    raise DevstackError(f"none of {names} in {TOOLS_BIN} or on PATH: run `make tools`")


def await_build(link: Path) -> str | None:
    """The tool behind ``link`` once its build has ended, if ``link`` points into a cache
    entry that a build left running by `make tools` (MODELOPS_TOOLS_DETACH=1) is still
    making: that build holds ENTRY.lock until it ends. None when there is no such build, or
    when it failed (its log is ENTRY.log)."""
    if not link.is_symlink() or link.exists():
        return None
    entry = Path(os.readlink(link)).parent
    lock = entry.with_name(entry.name + ".lock")
    if not lock.exists():
        return None
    with lock.open() as held:
        try:
            fcntl.flock(held, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for the {link.name} build (log: {entry}.log)", file=sys.stderr)
            fcntl.flock(held, fcntl.LOCK_SH)
    if link.exists():
        return str(link)
    raise DevstackError(f"the {link.name} build of `make tools` failed: see {entry}.log")
