"""The operator's RBAC table in charts/model-operator/README.md, read as data.

The table is the documented contract (API group, resources, verbs, and where in each
mode); the render test compares it with the chart's roles, the rig test with what the
API server lets the operator's ServiceAccount do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.support.charts import OPERATOR

README = OPERATOR / "README.md"
START = "<!-- rbac:start"
END = "<!-- rbac:end -->"

# "Where" cells of the table
ALL_NAMESPACES = "all namespaces"
CLUSTER_SCOPE = "cluster scope"
WATCHED = "each watched namespace"
MONITORING = "each of `rbac.monitoringNamespaces`"
NOWHERE = "none"
WHERE = {ALL_NAMESPACES, CLUSTER_SCOPE, WATCHED, MONITORING, NOWHERE}

Grants = dict[tuple[str, str], frozenset[str]]  # (api group, resource) -> verbs


@dataclass(frozen=True)
class Row:
    group: str  # "" for the core group
    resources: tuple[str, ...]
    verbs: frozenset[str]
    cluster_wide: str
    namespaced: str


def _unquote(cell: str) -> str:
    return cell.strip().strip("`")


def rows() -> list[Row]:
    text = README.read_text()
    assert START in text, f"{README} lacks the RBAC table ({START} ... {END})"
    block = text.split(START, 1)[1].split(END, 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [
        "API group",
        "Resources",
        "Verbs",
        "Cluster-wide mode",
        "Namespace-scoped mode",
    ], header
    out = []
    for line in lines[2:]:
        group, resources, verbs, cluster_wide, namespaced = (
            c.strip() for c in line.strip("|").split("|")
        )
        row = Row(
            group="" if group == "core" else _unquote(group),
            resources=tuple(_unquote(r) for r in resources.split(",")),
            verbs=frozenset(v.strip() for v in verbs.split(",")),
            cluster_wide=cluster_wide,
            namespaced=namespaced,
        )
        assert {row.cluster_wide, row.namespaced} <= WHERE, line
        assert all(re.fullmatch(r"[a-z/]+", r) for r in row.resources), line
        out.append(row)
    return out


def grants(where: str, mode: str) -> Grants:
    """What the table grants in one place; ``mode``: "cluster_wide" or "namespaced"."""
    out: dict[tuple[str, str], set[str]] = {}
    for row in rows():
        if getattr(row, mode) == where:
            for resource in row.resources:
                out.setdefault((row.group, resource), set()).update(row.verbs)
    return {k: frozenset(v) for k, v in out.items()}


def merge(*parts: Grants) -> Grants:
    out: dict[tuple[str, str], set[str]] = {}
    for part in parts:
        for key, verbs in part.items():
            out.setdefault(key, set()).update(verbs)
    return {k: frozenset(v) for k, v in out.items()}


def rule_grants(rules: list[dict]) -> Grants:
    """(group, resource) -> verbs of RBAC rules (or SelfSubjectRulesReview resourceRules)."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return {k: frozenset(v) for k, v in out.items()}
