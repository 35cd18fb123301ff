"""Every PromQL expression of the rules and dashboards, and the metric names each one selects.

Parsing uses the parser of Prometheus itself (``promqlnames/``, a 60-line Go program on
``github.com/prometheus/prometheus/promql/parser`` at v0.42.0, the module of the Prometheus
2.42 the tests run), so "it parses" means exactly what the Prometheus that evaluates the
rules accepts; Python PromQL parsers are re-implementations of the grammar that lag behind
it. The binary is built once into .cache/promql-names/<source digest>/ with the local Go
toolchain; modules come through the Go module proxy and are checked against go.sum.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelops_operator import metrics as operator_metrics
from modelops_service import catalog
from tests.support.repo import ROOT

GO_SOURCE = Path(__file__).resolve().parent / "promqlnames"
RULES_FILE = ROOT / "alerts" / "modelops.rules.yaml"
# The one committed copy of the dashboards (written by `make generate`).
DASHBOARDS_DIR = ROOT / "charts" / "model-service" / "files" / "dashboards"

# What a Grafana variable expands to when a query is parsed or run outside Grafana.
GRAFANA_DEFAULTS = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "1h",
    "__range_s": "3600",
}


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it lives."""

    source: str  # file, relative to the repository
    where: str  # rule name, or "panel title [refId]", or "variable name"
    expr: str  # as written (Grafana variables unexpanded)


@dataclass(frozen=True)
class Analysis:
    metrics: tuple[str, ...]
    name_matchers: tuple[str, ...]
    error: str


def promql_names_binary() -> Path:
    """Build (once per source digest) and return the promql-names binary."""
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((GO_SOURCE / name).read_bytes())
    out_dir = ROOT / ".cache" / "promql-names" / digest.hexdigest()[:16]
    binary = out_dir / "promql-names"
    if binary.is_file():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.is_file():
            env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
            # hack/install-tools.sh's flags: a cold run takes the standard library from its cache
            env["GOFLAGS"] = "-mod=readonly -buildvcs=false -gcflags=all=-dwarf=false"
            tmp = out_dir / "promql-names.tmp"
            result = subprocess.run(
                ["go", "build", "-trimpath", "-o", str(tmp), "."],
                cwd=GO_SOURCE,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"building promql-names failed:\n{result.stderr}")
            tmp.replace(binary)
    return binary


def analyse(exprs: Iterable[str]) -> list[Analysis]:
    """Parse each expression with Prometheus' parser; the metric names it selects."""
    exprs = list(exprs)
    result = subprocess.run(
        [str(promql_names_binary())],
        input=json.dumps(exprs),
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        Analysis(tuple(r["metrics"]), tuple(r["nameMatchers"]), r["error"])
        for r in json.loads(result.stdout)
    ]


# --- where the expressions are ----------------------------------------------------------


def rule_queries(path: Path = RULES_FILE) -> list[Query]:
    doc = yaml.safe_load(path.read_text())
    source = str(path.relative_to(ROOT))
    return [
        Query(source, rule.get("alert") or rule["record"], rule["expr"])
        for group in doc["groups"]
        for rule in group["rules"]
    ]


def recorded_names(path: Path = RULES_FILE) -> set[str]:
    doc = yaml.safe_load(path.read_text())
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def _panels(panels: list[dict]) -> Iterable[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.S)


def dashboard_queries(directory: Path = DASHBOARDS_DIR) -> list[Query]:
    """Panel targets and the selectors inside the query variables (label_values(...))."""
    queries = []
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text())
        source = str(path.relative_to(ROOT))
        for panel in _panels(board.get("panels", [])):
            for t in panel.get("targets", []):
                if t.get("expr"):
                    queries.append(Query(source, f"{panel['title']} [{t.get('refId')}]", t["expr"]))
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = _LABEL_VALUES.match(q)
            if match:
                queries.append(Query(source, f"variable {var['name']}", match.group(1)))
    return queries


def expand_grafana(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) as Grafana would.

    ``values`` maps variable names to their expansion; the ``$__*`` built-ins default to
    ``GRAFANA_DEFAULTS`` and any other variable to ``.*`` ("All").
    """
    table = {**GRAFANA_DEFAULTS, **(values or {})}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return table.get(name, ".*")

    return re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]",
        sub,
        expr,
    )


# --- what a query may name --------------------------------------------------------------


def operator_series() -> set[str]:
    """The operator's own metrics (its catalog), for the rollout dashboard's operator row."""
    names = set()
    for name in operator_metrics.OPERATOR_METRIC_NAMES:
        names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def allowed(name: str, catalog_series: frozenset[str] | set[str], extra: set[str]) -> bool:
    """A series of ``catalog_series`` (the service's catalog), a standard series
    (catalog.STANDARD_SERIES and STANDARD_PREFIXES), or one of ``extra``."""
    return (
        name in catalog_series
        or name in catalog.STANDARD_SERIES
        or name.startswith(catalog.STANDARD_PREFIXES)
        or name in extra
    )


def unknown_metrics(
    queries: list[Query],
    analyses: list[Analysis],
    catalog_series: frozenset[str] | set[str],
    extra: set[str],
) -> list[str]:
    """One line per query naming a metric that is not allowed."""
    problems = []
    for q, a in zip(queries, analyses, strict=True):
        bad = [m for m in a.metrics if not allowed(m, catalog_series, extra)]
        if bad:
            problems.append(f"{q.source}: {q.where}: unknown metric(s) {bad}")
    return problems


def needs_cluster(metrics: Iterable[str]) -> bool:
    """Whether a query reads cAdvisor or kube-state-metrics series (none outside a cluster)."""
    return any(m.startswith(("kube_", "container_", "node_")) for m in metrics)


def needs_operator(metrics: Iterable[str]) -> bool:
    return any(m.startswith("modelops_operator_") for m in metrics)
