"""One reconcile of one ModelDeployment: observe, decide (pure), write status, apply.

No kopf import: the kopf handlers (handlers.py) call `Reconciler.reconcile`
from a per-object daemon loop and poke it on spec changes. The status is
written with a PUT conditional on the resourceVersion read at the start, so
two reconciles can never both act on the same status (the loser gets 409 and
the next tick starts from the winner's status).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modelops_operator import analysis as an
from modelops_operator.applyset import (
    KINDS,
    MONITORING_KINDS,
    ApplySet,
    ObjectKey,
    Owner,
    build_apply_set,
    changed_fields,
    drift_message,
    key_of,
    needs_recheck,
    prune_set,
    rest_path,
    watch_fingerprint,
)
from modelops_operator.conditions import (
    ConditionValue,
    monitoring_condition,
    rollout_conditions,
    set_conditions,
)
from modelops_operator.constants import (
    API_VERSION,
    COND_DEGRADED,
    COND_PROGRESSING,
    GROUP,
    LABEL_INSTANCE,
    MONITORING_GROUP,
    MONITORING_VERSION,
    PLURAL,
    TRACK_CANARY,
    TRACK_STABLE,
    VERSION,
)
from modelops_operator.kube import ConflictError, KubeClient, KubeError
from modelops_operator.metrics import OperatorMetrics
from modelops_operator.models import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Phase,
    dump,
    isoformat,
    parse_spec,
    parse_status,
)
from modelops_operator.prom import PrometheusClient, PrometheusError
from modelops_operator.render import ChartRenderer, RenderError
from modelops_operator.rollout import (
    Action,
    Observation,
    advance,
    analysis_due,
    analysis_record,
    desired_workloads,
)
from modelops_operator.selectors import (
    explain,
    explain_sidecar,
    grafana_sidecars,
    monitoring_report,
    needed_labels,
)
from modelops_operator.settings import OperatorSettings
from modelops_operator.values import chart_values
from modelops_operator.workloads import (
    MISSING,
    WorkloadState,
    pods_of_track,
    read_deployment,
    ready_text,
)

log = logging.getLogger(__name__)

FINISHED_RESULTS = ("Deployed", "Promoted", "RolledBack", "Aborted")


def md_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


@dataclass
class MonitoringDiscovery:
    served: frozenset[str]  # every kind name the cluster serves among the chart's kinds
    missing: frozenset[str]  # monitoring kinds not served
    prometheuses: list[dict[str, Any]] = field(default_factory=list)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    sidecars: list = field(default_factory=list)


@dataclass
class Memory:
    """Per-object facts kept between ticks (none needed for correctness)."""

    applied: frozenset[ObjectKey] = frozenset()
    applied_digest: str = ""
    applied_at: float = 0.0
    # name -> watch_fingerprint of what our last apply of that object returned
    fingerprints: dict[str, tuple] = field(default_factory=dict)
    recheck: bool = False  # a watch event says someone else may have changed our objects


class _TTLCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._data: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, make):
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        value = make()
        with self._lock:
            self._data[key] = (now, value)
        return value


class Reconciler:
    def __init__(
        self,
        settings: OperatorSettings,
        kube: KubeClient,
        renderer: ChartRenderer,
        prometheus: PrometheusClient,
        metrics: OperatorMetrics,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.renderer = renderer
        self.prometheus = prometheus
        self.metrics = metrics
        self.memory: dict[str, Memory] = {}
        self._cache = _TTLCache(ttl=max(5.0, settings.tick_seconds * 3))
        self._locks: dict[str, threading.Lock] = {}
        self._names: dict[tuple[str, str], dict[str, str]] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, uid: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(uid, threading.Lock())

    def forget(self, namespace: str, name: str, uid: str) -> None:
        self.memory.pop(uid, None)
        with self._locks_guard:
            self._locks.pop(uid, None)
        self.metrics.forget(namespace, name)

    # --- discovery ----------------------------------------------------------

    def _discover(self, namespace: str) -> MonitoringDiscovery:
        served: set[str] = set()
        for group_version in sorted({k.api_version for k in KINDS}):
            served |= self.kube.served_kinds(group_version, ttl=self._cache.ttl)
        chart_kinds = {k.kind for k in KINDS}
        missing = frozenset(k for k in MONITORING_KINDS if k not in served)
        disc = MonitoringDiscovery(frozenset(served & chart_kinds), missing)
        gv = f"{MONITORING_GROUP}/{MONITORING_VERSION}"
        if "Prometheus" in self.kube.served_kinds(gv, ttl=self._cache.ttl):
            disc.prometheuses = self._cache.get("prometheuses", self._list_prometheuses)
        namespaces = {namespace} | {p["metadata"].get("namespace", "") for p in disc.prometheuses}
        for ns in namespaces:
            disc.namespace_labels[ns] = self._cache.get(f"ns/{ns}", lambda ns=ns: self._ns(ns))
        if self.settings.discover_grafana:
            disc.sidecars = self._cache.get("grafana", self._grafana)
        return disc

    def _scoped_list(self, group_path: str, plural: str, selector: str | None = None) -> list:
        """List cluster-wide, or only in settings.monitoring_namespaces (namespaced RBAC)."""
        namespaces = self.settings.monitoring_namespaces
        paths = (
            [f"{group_path}/namespaces/{ns}/{plural}" for ns in namespaces]
            if namespaces
            else [f"{group_path}/{plural}"]
        )
        items: list[dict[str, Any]] = []
        for path in paths:
            try:
                items += self.kube.list(path, selector)
            except KubeError as exc:  # e.g. no read rights there: no selector report
                log.info("cannot list %s: %s", path, exc)
        return items

    def _list_prometheuses(self) -> list[dict[str, Any]]:
        return self._scoped_list(f"/apis/{MONITORING_GROUP}/{MONITORING_VERSION}", "prometheuses")

    def _ns(self, namespace: str) -> dict[str, str]:
        try:
            obj = self.kube.get(f"/api/v1/namespaces/{namespace}") or {}
        except KubeError:
            return {}
        return (obj.get("metadata") or {}).get("labels") or {}

    def _grafana(self) -> list:
        deps = self._scoped_list("/apis/apps/v1", "deployments", "app.kubernetes.io/name=grafana")
        return grafana_sidecars(deps)

    # --- observation --------------------------------------------------------

    def _workload(self, namespace: str, name: str, track: str, release: str) -> WorkloadState:
        dep = self.kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        if dep is None:
            return MISSING
        state = read_deployment(dep)
        if state.is_ready:
            return state
        pods = self.kube.list(f"/api/v1/namespaces/{namespace}/pods", f"{LABEL_INSTANCE}={release}")
        return read_deployment(dep, pods_of_track(pods, track))

    # --- analysis -----------------------------------------------------------

    def _analyze(self, obs: Observation, namespace: str) -> tuple[an.Decision, dict[str, str], str]:
        spec = obs.spec
        assert obs.status.canary is not None
        canary = obs.status.canary.model
        url = spec.rollout.analysis.prometheus_url or self.settings.prometheus_url
        window = an.window_seconds(spec.rollout.interval_seconds)
        queries = an.build_queries(namespace, canary.name, canary.version, window)
        figures: dict[str, float | None] = {}
        try:
            for key, promql in queries.items():
                figures[key] = an.scalar_from_vector(self.prometheus.query(url, promql))
        except PrometheusError as exc:
            return an.error_decision(str(exc)), queries, url
        return an.decide(figures, spec.rollout.analysis), queries, url

    # --- the reconcile ------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> str:
        """One level-based pass; returns a short result for logs and metrics."""
        started = time.perf_counter()
        result = "ok"
        try:
            obj = self.kube.get(md_path(namespace, name))
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return "gone"
            with self._lock(obj["metadata"]["uid"]):
                result = self._reconcile(obj)
        except ConflictError:
            result = "conflict"
        except Exception:
            result = "error"
            self.metrics.errors.labels(namespace, name, "reconcile").inc()
            raise
        finally:
            self.metrics.reconciles.labels(namespace, name, result).inc()
            self.metrics.duration.observe(time.perf_counter() - started)
        return result

    def _reconcile(self, obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        generation = meta.get("generation")
        now = datetime.now(UTC).replace(microsecond=0)
        stamp = isoformat(now)
        status = _safe_status(obj.get("status"))
        try:
            spec = parse_spec(obj.get("spec"))
        except ValidationError as exc:
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            return self._fail_status(obj, status, "InvalidSpec", message, generation)
        owner = Owner(name, namespace, uid)
        disc = self._discover(namespace)

        # observe the Deployments the current status runs
        try:
            names = self._deployment_names(spec, status, owner, disc)
        except RenderError as exc:
            return self._fail_status(obj, status, "RenderFailed", str(exc), generation)
        stable = self._workload(namespace, names[TRACK_STABLE], TRACK_STABLE, name)
        canary = (
            self._workload(namespace, names[TRACK_CANARY], TRACK_CANARY, name)
            if status.canary is not None
            else MISSING
        )
        obs = Observation(spec, status, now, stable, canary)
        last_analysis = status.last_analysis
        if analysis_due(obs):
            decision, queries, url = self._analyze(obs, namespace)
            obs = Observation(spec, status, now, stable, canary, analysis=decision)
            last_analysis = analysis_record(
                obs,
                decision,
                thresholds=an.thresholds(spec.rollout.analysis),
                queries=queries,
                prometheus_url=url,
            )
            self.metrics.analysis.labels(namespace, name, decision.verdict.value).inc()
        outcome = advance(obs, history_limit=self.settings.history_limit)
        new_status = outcome.status
        if outcome.transition.action == Action.START_CANARY:
            last_analysis = None  # a new canary: the previous figures are about another release
        # render what the new status asks for
        try:
            apply_set, report = self._build(spec, new_status, owner, disc)
        except RenderError as exc:
            return self._fail_status(obj, status, "RenderFailed", str(exc), generation)

        conditions = set_conditions(
            status.conditions,
            [
                *rollout_conditions(outcome, stable),
                monitoring_condition(report.ok, report.reason, report.message),
            ],
            stamp,
            generation,
        )
        new_status = new_status.model_copy(
            update={
                "observed_generation": generation,
                "ready": ready_text(stable, canary),
                "last_analysis": last_analysis,
                "conditions": conditions,
            }
        )
        # nothing new to say: no write, so no watch event for anyone
        unchanged = dump(new_status) == dump(status)
        written = obj if unchanged else self._write_status(obj, new_status)
        # the status is ours now: tell, then act on it (Events are best effort; the
        # status history is the record that survives a restart between the two)
        for ev in outcome.events:
            self.kube.post_event(
                written, ev.type, ev.reason, ev.message, self.settings.field_manager
            )
        try:
            corrected = self._apply(apply_set, owner)
        except KubeError as exc:
            self.metrics.errors.labels(namespace, name, "apply").inc()
            self._fail_status(written, new_status, "ApplyFailed", str(exc), generation)
            raise
        for message in corrected:
            self.kube.post_event(
                written, "Warning", "DriftCorrected", message, self.settings.field_manager
            )
        seen = set(status.history)  # the history is capped: compare entries, not lengths
        for entry in new_status.history:
            if entry not in seen and entry.result in FINISHED_RESULTS:
                self.metrics.rollouts.labels(namespace, name, entry.result).inc()
        self.metrics.set_phase(namespace, name, new_status.phase, new_status.canary_weight)
        return outcome.event.kind.value

    def _deployment_names(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        owner: Owner,
        disc: MonitoringDiscovery,
    ) -> dict[str, str]:
        """Names of the stable and canary Deployments, learned from the chart once per release.

        The stable name comes from a render of what the status runs now (the same
        values the apply step renders in a steady state, so a cache hit); the
        canary is `<stable>-canary` by the chart's contract (CONVENTIONS.md).
        """
        key = (owner.namespace, owner.name)
        names = self._names.get(key)
        if names is None:
            apply_set, _ = self._build(spec, status, owner, disc)
            stable = apply_set.deployments()[TRACK_STABLE]["metadata"]["name"]
            names = {TRACK_STABLE: stable, TRACK_CANARY: f"{stable}-canary"}
            self._names[key] = names
        return names

    def _build(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        owner: Owner,
        disc: MonitoringDiscovery,
    ):
        match = spec.monitoring.match_selectors
        if match is None:
            match = self.settings.selector_mode == "label"
        sm_labels: dict[str, str] = {}
        rule_labels: dict[str, str] = {}
        dash_labels: dict[str, str] = {}
        if match:
            sm_labels = needed_labels(
                disc.prometheuses, "ServiceMonitor", owner.namespace, disc.namespace_labels
            )
            rule_labels = needed_labels(
                disc.prometheuses, "PrometheusRule", owner.namespace, disc.namespace_labels
            )
            for sidecar in disc.sidecars:
                if sidecar.watches(owner.namespace):
                    dash_labels.setdefault(sidecar.label, sidecar.label_value or "1")
        values = chart_values(
            spec,
            desired_workloads(spec, status),
            service_monitor_labels=sm_labels,
            rule_labels=rule_labels,
            dashboard_labels=dash_labels,
        )
        rendered = self.renderer.render(owner.name, owner.namespace, values)
        apply_set = build_apply_set(rendered, owner, served_kinds=disc.served)
        return apply_set, self._report(spec, apply_set, owner, disc)

    def _report(self, spec, apply_set: ApplySet, owner: Owner, disc: MonitoringDiscovery):
        enabled = []
        if spec.monitoring.service_monitor.enabled:
            enabled.append("ServiceMonitor")
        if spec.monitoring.alerts.enabled:
            enabled.append("PrometheusRule")
        missing = [k for k in enabled if k in disc.missing]
        selections = []
        sidecar_notes: list[tuple[bool, str]] = []
        for obj in apply_set.objects:
            kind = obj["kind"]
            labels = obj["metadata"].get("labels") or {}
            if kind in ("ServiceMonitor", "PrometheusRule"):
                selections += [
                    explain(p, kind, labels, owner.namespace, disc.namespace_labels)
                    for p in disc.prometheuses
                ]
        if spec.monitoring.dashboards.enabled:
            dashboards = [
                o
                for o in apply_set.objects
                if o["kind"] == "ConfigMap" and "-dashboard-" in o["metadata"]["name"]
            ]
            for sidecar in disc.sidecars:
                for cm in dashboards[:1]:
                    labels = cm["metadata"].get("labels") or {}
                    good = sidecar.watches(owner.namespace) and sidecar.selects(labels)
                    sidecar_notes.append((good, explain_sidecar(sidecar, labels, owner.namespace)))
        return monitoring_report(
            missing_kinds=missing,
            selections=selections,
            sidecar_notes=sidecar_notes,
            enabled_kinds=[k for k in enabled if k not in missing],
        )

    def owned_object_changed(self, event_type: str | None, obj: dict[str, Any]) -> str | None:
        """A watch event on an object we own: the owner's uid if its objects need a look.

        Marks the owner for a re-apply with drift check on its next reconcile
        (the caller pokes it), unless the event shows nothing but what our own
        last apply or the controllers wrote.
        """
        uid = next(
            (
                ref.get("uid")
                for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
                if ref.get("kind") == "ModelDeployment" and ref.get("controller")
            ),
            None,
        )
        memory = self.memory.get(uid or "")
        if memory is None or not needs_recheck(event_type, obj, memory.fingerprints):
            return None
        memory.recheck = True
        return uid

    def _apply(self, apply_set: ApplySet, owner: Owner) -> list[str]:
        """Server-side apply the set; skipped while it is unchanged and resync is not due.

        Re-applying an unchanged set every resync_seconds (or at once when a watch
        event says someone touched our objects) is what puts back an object
        someone deleted or edited. Such a re-apply reads each object first and
        returns one message per object whose fields the apply actually changed
        (a no-op apply says nothing); an apply of a changed set reports nothing,
        since the changes are ours.
        """
        memory = self.memory.setdefault(owner.uid, Memory())
        digest = hashlib.sha256(json.dumps(apply_set.objects, sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        recheck, memory.recheck = memory.recheck, False
        same_set = digest == memory.applied_digest
        if same_set and not recheck and now - memory.applied_at < self.settings.resync_seconds:
            return []
        corrected: list[str] = []
        try:
            for obj in apply_set.objects:
                key = key_of(obj)
                before = (
                    self.kube.get(rest_path(key.api_version, key.kind, key.namespace, key.name))
                    if same_set
                    else None
                )
                after = self.kube.apply(obj, self.settings.field_manager)
                if obj["kind"] == "Deployment":
                    memory.fingerprints[key.name] = watch_fingerprint(after)
                if same_set:
                    fields = changed_fields(obj, before, after) if before is not None else ["*"]
                    if fields:
                        corrected.append(drift_message(key, before, fields))
        except Exception:
            memory.recheck = memory.recheck or recheck  # a failed re-apply is tried again
            raise
        memory.applied_digest, memory.applied_at = digest, now
        keys = apply_set.keys
        if keys != memory.applied:
            kinds = frozenset(k.kind for k in KINDS) - frozenset(k.kind for k in apply_set.skipped)
            existing = self.kube.list_owned(owner.namespace, owner.selector(), kinds)
            for key in prune_set(existing, keys, owner):
                log.info("pruning %s (no longer rendered)", key)
                memory.fingerprints.pop(key.name, None)
                self.kube.delete(key)
            memory.applied = keys
        return corrected

    def _write_status(self, obj: dict[str, Any], status: ModelDeploymentStatus) -> dict:
        body = {
            "apiVersion": API_VERSION,
            "kind": obj["kind"],
            "metadata": {
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"]["namespace"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
            },
            "spec": obj.get("spec") or {},
            "status": _json_clean(dump(status)),
        }
        meta = obj["metadata"]
        written = self.kube.replace_status(md_path(meta["namespace"], meta["name"]), body)
        return written or obj

    def _fail_status(
        self,
        obj: dict[str, Any],
        status: ModelDeploymentStatus,
        reason: str,
        message: str,
        generation: int | None,
    ) -> str:
        meta = obj["metadata"]
        stamp = isoformat(datetime.now(UTC))
        degraded_before = any(
            c.type == COND_DEGRADED and c.status == "True" and c.reason == reason
            for c in status.conditions
        )
        conditions = set_conditions(
            status.conditions,
            [
                ConditionValue(COND_DEGRADED, True, reason, message),
                ConditionValue(COND_PROGRESSING, False, reason, message),
            ],
            stamp,
            generation,
        )
        new = status.model_copy(
            update={
                "phase": Phase.DEGRADED,
                "conditions": conditions,
                "observed_generation": generation,
            }
        )
        fresh = self.kube.get(md_path(meta["namespace"], meta["name"])) or obj
        written = self._write_status(fresh, new)
        if not degraded_before:
            self.kube.post_event(written, "Warning", reason, message, self.settings.field_manager)
        self.metrics.errors.labels(meta["namespace"], meta["name"], reason).inc()
        self.metrics.set_phase(meta["namespace"], meta["name"], Phase.DEGRADED, 0)
        return reason


def _safe_status(raw: Any) -> ModelDeploymentStatus:
    try:
        return parse_status(raw)
    except ValidationError:
        log.warning("status unreadable; starting from an empty status")
        return ModelDeploymentStatus()


def _json_clean(value: Any) -> Any:
    """Status must be JSON: NaN/Inf figures become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_clean(v) for v in value]
    return value
