"""Which Prometheus (and Grafana sidecar) picks up our monitoring objects, and why (pure).

The usual kube-prometheus-stack trap: a ServiceMonitor or PrometheusRule whose
labels miss the Prometheus object's selector (the `release` label) is silently
ignored. These functions evaluate prometheus-operator's selector semantics:

- ``serviceMonitorSelector`` / ``ruleSelector``: null selects nothing, {} selects all;
- ``serviceMonitorNamespaceSelector`` / ``ruleNamespaceSelector``: null means the
  Prometheus object's own namespace only, {} means every namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SELECTOR_FIELDS = {
    "ServiceMonitor": ("serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
    "PrometheusRule": ("ruleSelector", "ruleNamespaceSelector"),
}


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against a label map (None here means an empty selector)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def describe_selector(selector: Mapping[str, Any] | None) -> str:
    if selector is None:
        return "null (selects nothing)"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        values = ",".join(expr.get("values") or [])
        parts.append(f"{expr.get('key')} {expr.get('operator')} ({values})".replace(" ()", ""))
    return "{" + ", ".join(parts) + "}" if parts else "{} (selects all)"


@dataclass(frozen=True)
class Selection:
    prometheus: str  # namespace/name
    kind: str
    selected: bool
    why: str


def namespace_admits(
    prometheus: Mapping[str, Any],
    kind: str,
    namespace: str,
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> bool:
    prom_ns = (prometheus.get("metadata") or {}).get("namespace", "")
    ns_selector = (prometheus.get("spec") or {}).get(SELECTOR_FIELDS[kind][1])
    if ns_selector is None:
        return namespace == prom_ns
    return selector_matches(ns_selector, namespace_labels.get(namespace, {}))


def explain(
    prometheus: Mapping[str, Any],
    kind: str,
    labels: Mapping[str, str],
    namespace: str,
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> Selection:
    meta = prometheus.get("metadata") or {}
    spec = prometheus.get("spec") or {}
    prom_ns = meta.get("namespace", "")
    ident = f"{prom_ns}/{meta.get('name', '')}"
    object_field, namespace_field = SELECTOR_FIELDS[kind]
    ns_selector = spec.get(namespace_field)
    if ns_selector is None:
        if namespace != prom_ns:
            return Selection(
                ident,
                kind,
                False,
                f"{namespace_field} is null: only namespace {prom_ns}, not {namespace}",
            )
    elif not selector_matches(ns_selector, namespace_labels.get(namespace, {})):
        return Selection(
            ident,
            kind,
            False,
            f"{namespace_field} {describe_selector(ns_selector)} does not match "
            f"namespace {namespace}",
        )
    obj_selector = spec.get(object_field)
    if obj_selector is None:
        return Selection(ident, kind, False, f"{object_field} is null: selects no {kind}")
    if not selector_matches(obj_selector, labels):
        return Selection(
            ident,
            kind,
            False,
            f"{object_field} {describe_selector(obj_selector)} does not match labels "
            f"{describe_selector({'matchLabels': dict(labels)})}",
        )
    return Selection(ident, kind, True, f"{object_field} {describe_selector(obj_selector)}")


def labels_to_match(selector: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Labels that satisfy a selector, or None when only a label we cannot invent would."""
    if selector is None:
        return None
    labels = dict(selector.get("matchLabels") or {})
    for expr in selector.get("matchExpressions") or []:
        op, values = expr.get("operator"), expr.get("values") or []
        if op == "In" and values:
            labels.setdefault(expr["key"], sorted(values)[0])
        elif op == "Exists":
            labels.setdefault(expr["key"], "true")
    return labels if selector_matches(selector, labels) else None


def needed_labels(
    prometheuses: Iterable[Mapping[str, Any]],
    kind: str,
    namespace: str,
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """Labels that make every Prometheus watching `namespace` select an object of `kind`.

    Only Prometheus objects whose namespace selector admits the namespace count
    (labels cannot fix a namespace mismatch); conflicting requirements keep the
    first one in namespace/name order.
    """
    out: dict[str, str] = {}
    ordered = sorted(
        prometheuses,
        key=lambda p: ((p.get("metadata") or {}).get("namespace", ""), p["metadata"]["name"]),
    )
    for prom in ordered:
        if not namespace_admits(prom, kind, namespace, namespace_labels):
            continue
        object_field = SELECTOR_FIELDS[kind][0]
        wanted = labels_to_match((prom.get("spec") or {}).get(object_field))
        for key, value in (wanted or {}).items():
            out.setdefault(key, value)
    return out


@dataclass(frozen=True)
class GrafanaSidecar:
    deployment: str  # namespace/name
    label: str
    label_value: str | None  # None = any value
    namespaces: tuple[str, ...] | None  # None = every namespace

    def watches(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def selects(self, labels: Mapping[str, str]) -> bool:
        if self.label not in labels:
            return False
        return self.label_value is None or labels[self.label] == self.label_value


def grafana_sidecars(deployments: Iterable[Mapping[str, Any]]) -> list[GrafanaSidecar]:
    """Dashboard sidecars (kiwigrid k8s-sidecar, as kube-prometheus-stack runs it)."""
    found = []
    for dep in deployments:
        meta = dep.get("metadata") or {}
        pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            env = {e.get("name"): e.get("value") for e in container.get("env") or []}
            if "LABEL" not in env or "dashboard" not in (
                container.get("name", "") + env.get("FOLDER", "")
            ):
                continue
            ns_value = env.get("NAMESPACE")
            if ns_value is None:
                namespaces: tuple[str, ...] | None = (meta.get("namespace", ""),)
            elif ns_value.upper() == "ALL":
                namespaces = None
            else:
                namespaces = tuple(n.strip() for n in ns_value.split(",") if n.strip())
            found.append(
                GrafanaSidecar(
                    f"{meta.get('namespace', '')}/{meta.get('name', '')}",
                    env["LABEL"],
                    env.get("LABEL_VALUE"),
                    namespaces,
                )
            )
    return found


def explain_sidecar(sidecar: GrafanaSidecar, labels: Mapping[str, str], namespace: str) -> str:
    if not sidecar.watches(namespace):
        return f"grafana sidecar {sidecar.deployment} does not watch namespace {namespace}"
    wanted = f"{sidecar.label}={sidecar.label_value or '*'}"
    if sidecar.selects(labels):
        return f"grafana sidecar {sidecar.deployment} loads the dashboards ({wanted})"
    return f"grafana sidecar {sidecar.deployment} wants {wanted}: dashboards not loaded"


@dataclass(frozen=True)
class MonitoringReport:
    ok: bool
    reason: str
    message: str


def monitoring_report(
    *,
    missing_kinds: Iterable[str],
    selections: Iterable[Selection],
    sidecar_notes: Iterable[tuple[bool, str]] = (),
    enabled_kinds: Iterable[str] = (),
) -> MonitoringReport:
    """The MonitoringReady condition from what discovery found."""
    missing = sorted(set(missing_kinds))
    if missing:
        return MonitoringReport(
            False,
            "MonitoringCRDsMissing",
            f"the API server does not serve monitoring.coreos.com/v1 {', '.join(missing)}: "
            "install prometheus-operator (kube-prometheus-stack); not applied",
        )
    selections = list(selections)
    by_kind: dict[str, list[Selection]] = {}
    for sel in selections:
        by_kind.setdefault(sel.kind, []).append(sel)
    lines: list[str] = []
    ok = True
    for kind in sorted(set(enabled_kinds)):
        sels = by_kind.get(kind, [])
        chosen = [s for s in sels if s.selected]
        if not sels:
            lines.append(f"{kind}: no Prometheus object found to check")
            continue
        if not chosen:
            ok = False
        for sel in sels:
            verdict = "selects" if sel.selected else "ignores"
            lines.append(f"{kind}: {sel.prometheus} {verdict} it ({sel.why})")
    for good, note in sidecar_notes:
        ok = ok and good
        lines.append(note)
    if not ok:
        return MonitoringReport(False, "NotSelected", "; ".join(lines))
    return MonitoringReport(True, "Applied", "; ".join(lines) or "monitoring objects applied")
