"""Render the charts with the real helm and read the result as YAML (the render tier).

Tools come from tests.support.repo.tool: a missing tool is an install bug, so it fails
loudly instead of skipping. Helm 3 joins the run when
hack/versions.env pins HELM3_VERSION (the install step then puts `helm3` in .cache/bin),
or when a `helm3` is in .cache/bin.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from devstack.paths import TOOLS_BIN, versions
from tests.support.repo import ROOT, tool

CHARTS = ROOT / "charts"
SERVICE = CHARTS / "model-service"
OPERATOR = CHARTS / "model-operator"
MONITORING_API = "monitoring.coreos.com/v1"


def helm_binaries() -> list[str]:
    """Names of the helm majors the render and install tests run under.

    helm (v4) always; helm3 when versions.env pins HELM3_VERSION (then it must be
    installed) or when a helm3 sits in .cache/bin anyway.
    """
    names = ["helm"]
    if versions().get("HELM3_VERSION") or (TOOLS_BIN / "helm3").exists():
        names.append("helm3")
    return names


def run(args: Sequence[Any], *, env: Mapping[str, str] | None = None, check: bool = False):
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def _isolated_helm_env() -> dict[str, str]:
    home = Path(tempfile.gettempdir()) / "modelops-render-helm"
    return {
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-cluster"),
    }


def helm(*args: Any, binary: str = "helm") -> subprocess.CompletedProcess[str]:
    """Run helm without any cluster (render tier)."""
    return run([tool(binary), *args], env=_isolated_helm_env())


def template_args(
    chart: Path,
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "demo",
    namespace: str = "models",
    api_versions: Iterable[str] = (),
    values_files: Iterable[Path] = (),
    extra: Iterable[str] = (),
    workdir: Path | None = None,
) -> list[str]:
    """Arguments of `helm template`; `values` go through a JSON file in `workdir`."""
    args = ["template", release, str(chart), "--namespace", namespace]
    for f in values_files:
        args += ["--values", str(f)]
    if values:
        path = Path(workdir or tempfile.mkdtemp()) / "values.json"
        path.write_text(json.dumps(values))
        args += ["--values", str(path)]
    for api in api_versions:
        args += ["--api-versions", api]
    return [*args, *extra]


@functools.lru_cache(maxsize=256)
def _template_cached(binary: str, key: str) -> tuple[int, str, str]:
    spec = json.loads(key)
    with tempfile.TemporaryDirectory() as workdir:
        args = template_args(
            Path(spec["chart"]),
            spec["values"],
            release=spec["release"],
            namespace=spec["namespace"],
            api_versions=spec["api_versions"],
            values_files=[Path(p) for p in spec["values_files"]],
            extra=spec["extra"],
            workdir=Path(workdir),
        )
        proc = helm(*args, binary=binary)
    return proc.returncode, proc.stdout, proc.stderr


def template(
    chart: Path,
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "demo",
    namespace: str = "models",
    api_versions: Iterable[str] = (MONITORING_API,),
    values_files: Iterable[Path] = (),
    extra: Iterable[str] = (),
    binary: str = "helm",
    expect_failure: bool = False,
) -> str:
    """`helm template` output (or, with expect_failure, its error text)."""
    key = json.dumps(
        {
            "chart": str(chart),
            "values": values or {},
            "release": release,
            "namespace": namespace,
            "api_versions": list(api_versions),
            "values_files": [str(p) for p in values_files],
            "extra": list(extra),
        },
        sort_keys=True,
    )
    code, out, err = _template_cached(binary, key)
    if expect_failure:
        assert code != 0, f"helm template succeeded but should have failed:\n{out[:2000]}"
        return err
    assert code == 0, f"helm template failed:\n{err}"
    return out


def render(chart: Path, values: Mapping[str, Any] | None = None, **kw: Any) -> list[dict]:
    """The rendered objects (empty documents dropped)."""
    return [d for d in yaml.safe_load_all(template(chart, values, **kw)) if d]


def find(objs: Iterable[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        o for o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: Iterable[dict], kind: str, name: str | None = None) -> dict:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def ci_values(chart: Path) -> list[Path]:
    return sorted((chart / "ci").glob("*-values.yaml"))


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """matchLabels semantics."""
    return all(labels.get(k) == v for k, v in selector.items())


def chart_copy(tmp: Path, chart: Path = SERVICE) -> Path:
    """A throwaway copy of a chart, to render it with fixture rule or dashboard files."""
    dest = tmp / chart.name
    shutil.copytree(chart, dest)
    return dest
