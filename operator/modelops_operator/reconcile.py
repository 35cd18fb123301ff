"""One reconcile of one ModelDeployment: a short list of steps, each done by one part.

    read the object -> discover monitoring (discovery.py) -> observe the Deployments
    and, when a step is due, Prometheus (observe.py) -> decide (rollout.py, pure)
    -> render what the new status asks for (manifests.py) -> write the status
    (status.py) -> post Events -> apply and prune (applier.py), and set the
    HTTPRoute's weights (router.py) -> count (metrics.py)

No kopf import: the kopf handlers (handlers.py) call `Reconciler.reconcile`
from a per-object daemon loop and poke it on spec changes. The status is
written before anything is applied, conditional on the resourceVersion read at
the start, so two passes can never both act on one status.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modelops_operator import analysis as an
from modelops_operator import requests
from modelops_operator.applier import Applier
from modelops_operator.applyset import ApplySet, Owner
from modelops_operator.conditions import announces, degrade, status_after
from modelops_operator.constants import API_VERSION, KIND, TRACK_CANARY, TRACK_STABLE
from modelops_operator.discovery import Discovery
from modelops_operator.kube import ConflictError, KubeClient, KubeError
from modelops_operator.manifests import Manifests
from modelops_operator.metrics import OperatorMetrics
from modelops_operator.models import (
    AnalysisRecord,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    RequestRecord,
    dump,
    isoformat,
    parse_spec,
    parse_status,
)
from modelops_operator.monitoring import Discovered
from modelops_operator.observe import analyze_canary, read_workload
from modelops_operator.progress import rollout_figures
from modelops_operator.prom import PrometheusClient
from modelops_operator.reasons import Reason, Result
from modelops_operator.render import ChartRenderer, RenderError
from modelops_operator.rollout import Observation, advance, analysis_due, analysis_record
from modelops_operator.router import RoutePlan, Router
from modelops_operator.routing import RoutingError, backends_of
from modelops_operator.settings import OperatorSettings
from modelops_operator.status import StatusWriter
from modelops_operator.workloads import MISSING

log = logging.getLogger(__name__)


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
        self.prometheus = prometheus
        self.metrics = metrics
        self.discovery = Discovery(settings, kube)
        self.manifests = Manifests(settings, renderer)
        self.applier = Applier(kube, settings.field_manager, settings.resync_seconds)
        self.status = StatusWriter(kube, metrics, settings.field_manager)
        self.router = Router(kube, settings.field_manager)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def close(self) -> None:
        """The clients' connections and the temporary directories they keep."""
        self.kube.close()
        self.prometheus.close()
        self.manifests.renderer.close()

    def _lock(self, uid: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(uid, threading.Lock())

    def forget(self, namespace: str, name: str, uid: str) -> None:
        self.applier.forget(uid)
        self.manifests.forget(namespace, name)
        with self._locks_guard:
            self._locks.pop(uid, None)
        self.metrics.forget(namespace, name)

    def owned_object_changed(self, event_type: str | None, obj: dict[str, Any]) -> str | None:
        """A watch event on a Deployment we own: the owner's uid when it needs a re-apply."""
        return self.applier.owned_object_changed(event_type, obj)

    def reconcile(self, namespace: str, name: str) -> str:
        """One level-based pass; returns a short result for logs and metrics."""
        started = time.perf_counter()
        result = "ok"
        try:
            obj = self.kube.get(API_VERSION, KIND, name, namespace)
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
        generation = meta.get("generation")
        status = _readable_status(obj.get("status"))
        asked = self._request(obj, status)  # answered whatever this pass comes to
        try:
            spec = parse_spec(obj.get("spec"))
        except ValidationError as exc:
            return self._degraded(obj, status, Reason.INVALID_SPEC, _errors(exc), asked)
        owner = Owner(meta["name"], meta["namespace"], meta["uid"])
        request = asked  # then apply_request's answer to it
        found = self.discovery.discover(owner.namespace)
        try:
            obs, last_analysis = self._observe(spec, status, owner, found)
            if request is not None:
                obs, request = requests.apply_request(obs, request, isoformat(obs.now))
            outcome = advance(obs, history_limit=self.settings.history_limit)
            apply_set, report = self.manifests.build(spec, outcome.status, owner, found)
        except RenderError as exc:
            return self._degraded(obj, status, Reason.RENDER_FAILED, str(exc), asked)
        new_status = status_after(outcome, obs, report, last_analysis, generation,
                                  pod_labels=apply_set.model_pod_labels(),
                                  served=found.served)  # fmt: skip
        events = [(e.type, e.reason, e.message) for e in outcome.events]
        if request is not None:
            new_status = requests.record(new_status, request, spec.model.version,
                                         self.settings.history_limit)  # fmt: skip
            events.insert(0, _request_event(request))
        # the HTTPRoute is read before the status is written: a missing route or rule is
        # said in this one write, and announced once, on the transition (no Event storm)
        route, unroutable = self._plan_route(spec, new_status, obs, apply_set, owner)
        if unroutable is not None:
            reason = Reason.TRAFFIC_ROUTING_FAILED
            new_status = degrade(new_status, status.conditions, reason, unroutable,
                                 isoformat(obs.now), generation)  # fmt: skip
            if announces(status.conditions, reason):
                events.append(("Warning", reason, unroutable))
        # nothing new to say: no write, so no watch event for anyone
        written = obj if dump(new_status) == dump(status) else self.status.write(obj, new_status)
        # the status is ours now: tell, then act on it (Events are best effort; the
        # status history is the record that survives a restart between the two)
        self.status.post_events(written, events)
        self._consumed(written)
        if unroutable is not None:
            failed: str | None = Reason.TRAFFIC_ROUTING_FAILED
            if new_status.canary is not None:  # the objects still follow the status
                self._apply(written, status, new_status, apply_set, owner, found)
            # a rollback, abort or finished promotion applies nothing: the canary may
            # still be routed, and is pruned only once the route has left it
        elif new_status.canary is None:
            # a rollback, abort or finished promotion: the route leaves the canary first
            failed = self._set_route(written, status, new_status, route, owner) or self._apply(
                written, status, new_status, apply_set, owner, found
            )
        else:
            # the canary's Service exists before the route names it
            failed = self._apply(written, status, new_status, apply_set, owner, found) or (
                self._set_route(written, status, new_status, route, owner)
            )
        self._count(owner, spec, status, new_status)
        return failed or outcome.event.kind.value

    def _request(self, obj: dict[str, Any], status: ModelDeploymentStatus) -> RequestRecord | None:
        """A request of `kubectl modelops` not consumed yet (a malformed one is dropped)."""
        try:
            request = requests.read_request(obj["metadata"].get("annotations"))
        except ValueError as exc:
            self.status.post_events(obj, [("Warning", Reason.REQUEST_REJECTED, str(exc))])
            self._consumed(obj)
            return None
        return request if request is not None and requests.is_new(request, status) else None

    def _degraded(
        self,
        obj: dict[str, Any],
        status: ModelDeploymentStatus,
        reason: str,
        message: str,
        request: RequestRecord | None,
    ) -> str:
        """Degraded by `reason` before anything could be decided; a waiting request is
        answered (rejected, with why) and consumed, else it would act long after, once the
        spec is fixed, and refuse every request meanwhile."""
        if request is not None:
            request = requests.reject(request, reason, message)
            version = str(((obj.get("spec") or {}).get("model") or {}).get("version", ""))
            status = requests.record(status, request, version, self.settings.history_limit)
        generation = obj["metadata"].get("generation")
        result = self.status.degraded(obj, status, reason, message, generation)
        if request is not None:
            self.status.post_events(obj, [_request_event(request)])
        self._consumed(obj)  # this one recorded now, or one recorded by an earlier pass
        return result

    def _consumed(self, obj: dict[str, Any]) -> None:
        """Remove the request annotation once the status has recorded it (by its id)."""
        raw = (obj["metadata"].get("annotations") or {}).get(requests.ANNOTATION)
        if raw is not None:
            self.kube.remove_annotation(obj, requests.ANNOTATION, raw)

    def _observe(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        owner: Owner,
        found: Discovered,
    ) -> tuple[Observation, AnalysisRecord | None]:
        """The Deployments the status runs, and the canary analysis when a step is due."""
        now = datetime.now(UTC).replace(microsecond=0)
        names = self.manifests.deployment_names(spec, status, owner, found)

        def workload(track: str) -> Any:
            return read_workload(self.kube, owner.namespace, names[track], track, owner.name)

        canary = workload(TRACK_CANARY) if status.canary is not None else MISSING
        obs = Observation(spec, status, now, workload(TRACK_STABLE), canary)
        if not analysis_due(obs):
            return obs, status.last_analysis
        decision, queries, url = analyze_canary(
            self.prometheus, obs, owner.namespace, self.settings.prometheus_url
        )
        self.metrics.analysis.labels(owner.namespace, owner.name, decision.verdict.value).inc()
        obs = dataclasses.replace(obs, analysis=decision)
        rollout = spec.rollout
        record = analysis_record(obs, decision,
                                 thresholds=an.thresholds(rollout.analysis, rollout.compare),
                                 queries=queries, prometheus_url=url)  # fmt: skip
        return obs, record

    def _apply(
        self,
        written: dict[str, Any],
        before: ModelDeploymentStatus,
        status: ModelDeploymentStatus,
        apply_set: ApplySet,
        owner: Owner,
        found: Discovered,
    ) -> str | None:
        """Apply and prune; the reason (Degraded, ApplyFailed) when the API server refused."""
        try:
            corrected = self.applier.apply(apply_set, owner, found.served)
        except KubeError as exc:
            self.metrics.errors.labels(owner.namespace, owner.name, "apply").inc()
            return self.status.degraded(written, status, Reason.APPLY_FAILED, str(exc),
                                        status.observed_generation, before.conditions)  # fmt: skip
        self.status.post_events(
            written, [("Warning", Reason.DRIFT_CORRECTED, message) for message in corrected]
        )
        return None

    def _plan_route(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        obs: Observation,
        apply_set: ApplySet,
        owner: Owner,
    ) -> tuple[RoutePlan | None, str | None]:
        """The HTTPRoute's rules for `status` (Gateway API routing only), or why there are
        none: the route or its rule is missing, or the API server would not say."""
        if spec.rollout.gateway_api is None:
            return None, None
        try:
            backends = backends_of(apply_set.objects)
            plan = self.router.plan(spec, status, obs.canary, owner.namespace, owner.name,
                                    backends)  # fmt: skip
        except (RoutingError, KubeError) as exc:
            self.metrics.errors.labels(owner.namespace, owner.name, "route").inc()
            return None, str(exc)
        return plan, None

    def _set_route(
        self,
        written: dict[str, Any],
        before: ModelDeploymentStatus,
        status: ModelDeploymentStatus,
        route: RoutePlan | None,
        owner: Owner,
    ) -> str | None:
        """Apply the planned rules; the reason (Degraded) when the API server refused.

        ConflictError (the route changed since it was read) ends the pass: the next tick
        reads the route again.
        """
        if route is None:
            return None
        try:
            self.router.apply(route)
        except ConflictError:
            raise
        except KubeError as exc:
            self.metrics.errors.labels(owner.namespace, owner.name, "route").inc()
            return self.status.degraded(written, status, Reason.TRAFFIC_ROUTING_FAILED,
                                        str(exc), status.observed_generation,
                                        before.conditions)  # fmt: skip
        return None

    def _count(
        self,
        owner: Owner,
        spec: ModelDeploymentSpec,
        before: ModelDeploymentStatus,
        after: ModelDeploymentStatus,
    ) -> None:
        """Finished rollouts, the phase gauges and the rollout's progress."""
        seen = set(before.history)  # the history is capped: compare entries, not lengths
        for entry in after.history:
            if entry not in seen and entry.result in set(Result):
                self.metrics.rollouts.labels(owner.namespace, owner.name, entry.result).inc()
        self.metrics.set_phase(owner.namespace, owner.name, after.phase, after.canary_weight)
        now = datetime.now(UTC)
        self.metrics.set_progress(owner.namespace, owner.name, rollout_figures(spec, after, now))


def _request_event(request: RequestRecord) -> tuple[str, str, str]:
    full = " --full" if request.full else ""
    said = f"{request.verb}{full} requested by {request.by}: {request.message}"
    if request.accepted:
        return ("Normal", Reason.REQUEST_ACCEPTED, said)
    return ("Warning", Reason.REQUEST_REJECTED, said)


def _readable_status(raw: Any) -> ModelDeploymentStatus:
    try:
        return parse_status(raw)
    except ValidationError:
        log.warning("status unreadable; starting from an empty status")
        return ModelDeploymentStatus()


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
