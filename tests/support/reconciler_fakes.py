"""An in-memory API server, renderer and Prometheus for one reconcile pass (no cluster):
the KubeClient, ChartRenderer and Prometheus client the Reconciler is built with, faked,
and ``make`` building a Reconciler on them with one ModelDeployment stored."""

from __future__ import annotations

import copy
from typing import Any

from modelops_operator.applyset import ObjectKey, key_of
from modelops_operator.images import ImageRef
from modelops_operator.kube import ConflictError
from modelops_operator.metrics import OperatorMetrics
from modelops_operator.reconcile import Reconciler
from modelops_operator.render import RenderError
from modelops_operator.settings import OperatorSettings

NS, NAME, UID = "models", "wine", "uid-1"
MD = ObjectKey("modelops.io/v1alpha1", "ModelDeployment", NS, NAME)
CORE_KINDS = {
    "v1": {"ServiceAccount", "ConfigMap", "Service"},
    "apps/v1": {"Deployment"},
    "policy/v1": {"PodDisruptionBudget"},
    "autoscaling/v2": {"HorizontalPodAutoscaler"},
    "networking.k8s.io/v1": {"NetworkPolicy"},
}
MONITORING = {"monitoring.coreos.com/v1": {"ServiceMonitor", "PrometheusRule", "Prometheus"}}


class FakeKube:
    """The KubeClient's methods over a dict of objects keyed by ObjectKey."""

    def __init__(self, served: dict[str, set[str]]) -> None:
        self.objects: dict[ObjectKey, dict] = {}
        self.served = served
        self.events: list[tuple[str, str, str]] = []
        self.applied: list[ObjectKey] = []
        self.deleted: list[ObjectKey] = []
        self.listed: list[tuple[str, str | None]] = []  # (kind, namespace) of each list call
        self.rv = 1
        self.conflict_next_status = False

    def _bump(self, obj: dict) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return obj

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        return copy.deepcopy(self.objects.get(ObjectKey(api_version, kind, namespace or "", name)))

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:  # fmt: skip
        self.listed.append((kind, namespace))
        label = (label_selector or "").partition("=")[0]
        return [
            copy.deepcopy(o)
            for k, o in self.objects.items()
            if (k.api_version, k.kind) == (api_version, kind)
            and namespace in (None, k.namespace)
            and (not label or label in o["metadata"].get("labels", {}))
        ]

    def served_kinds(self, group_version: str) -> frozenset[str]:
        return frozenset(self.served.get(group_version, set()))

    def apply(self, obj: dict, field_manager: str) -> dict:
        key = key_of(obj)
        pinned = obj["metadata"].get("resourceVersion")
        current = self.objects.get(key)
        if (
            pinned is not None
            and (current or {}).get("metadata", {}).get("resourceVersion") != pinned
        ):
            raise ConflictError(409, "the object has been modified")  # as the API server does
        self.applied.append(key)
        stored = copy.deepcopy(obj)
        if key.kind == "Deployment":  # a controller that is instantly done
            replicas = obj["spec"].get("replicas", 1)
            stored["metadata"]["generation"] = 1
            stored["status"] = {
                "observedGeneration": 1,
                "readyReplicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
            }
        self.objects[key] = self._bump(stored)
        return stored

    def delete(self, key: ObjectKey) -> None:
        self.deleted.append(key)
        self.objects.pop(key, None)

    def replace_status(self, obj: dict) -> dict:
        current = self.objects[key_of(obj)]
        if self.conflict_next_status:
            self.conflict_next_status = False
            raise ConflictError(409, "the object has been modified")
        if obj["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ConflictError(409, "the object has been modified")
        current["status"] = copy.deepcopy(obj["status"])
        return copy.deepcopy(self._bump(current))

    def post_event(self, involved, type_, reason, message, component) -> None:
        self.events.append((type_, reason, message))

    def remove_annotation(self, obj: dict, key: str, value: str) -> None:
        """As the JSON patch with a test does: only while the annotation still holds `value`."""
        stored = self.objects.get(key_of(obj))
        annotations = (stored or {}).get("metadata", {}).get("annotations") or {}
        if annotations.get(key) == value:
            del annotations[key]
            self._bump(stored)


class FakeRenderer:
    """Renders what charts/model-service would, in the shape the operator relies on."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def render(self, release: str, namespace: str, values: dict[str, Any]) -> list[dict]:
        if self.fail:
            raise RenderError("Error: values don't meet the specifications of the schema")
        full = f"{release}-model-service"

        def dep(name, track, replicas, version, artifact, image):
            return {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"modelops.io/track": track}},
                "spec": {"replicas": replicas, "template": {
                    "metadata": {"labels": {"modelops.io/version": version}},
                    "spec": {"containers": [
                        {"name": "model-service",
                         "env": [{"name": "MODELOPS_MODEL_DIR", "value": artifact}],
                         "image": ImageRef(**image).rendered}]}}},
            }  # fmt: skip

        tracks = ["stable", "canary"] if values["canary"]["enabled"] else ["stable"]
        per_track = [
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": f"{full}-{t}", "labels": {"modelops.io/track": t}},
             "spec": {"ports": [{"port": 8080}]}}
            for t in tracks
            if values["service"]["perTrack"]
        ]  # fmt: skip
        out = [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": full}},
            *per_track,
            dep(full, "stable", values["replicaCount"], values["model"]["version"],
                values["model"]["artifact"], values["image"]),
        ]  # fmt: skip
        if values["canary"]["enabled"]:
            c = values["canary"]
            canary = dep(
                f"{full}-canary", "canary", c["replicaCount"], c["version"], c["artifact"],
                c["image"],
            )  # fmt: skip
            out.append(canary)
        mon = values["monitoring"]
        monitoring_kinds = [("ServiceMonitor", "serviceMonitor")]
        monitoring_kinds.append(("PrometheusRule", "prometheusRule"))
        for kind, key in monitoring_kinds:
            if mon[key]["enabled"]:
                labels = dict(mon[key]["labels"])
                out.append(
                    {
                        "apiVersion": "monitoring.coreos.com/v1",
                        "kind": kind,
                        "metadata": {"name": full, "labels": labels},
                    }
                )
        return out


class FakePrometheus:
    def query(self, base_url: str, promql: str) -> list[dict]:
        raise AssertionError("no analysis expected in these tests")

    def close(self) -> None:
        pass


def md(spec: dict | None = None) -> dict:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME, "namespace": NS, "uid": UID, "generation": 1,
                     "resourceVersion": "1"},
        "spec": spec or {"model": {"name": "wine", "version": "1", "image": "svc:1",
                                   "artifact": "/models/wine/1"}, "replicas": 2},
    }  # fmt: skip


def make(served=None, renderer=None, **settings: Any) -> tuple[Reconciler, FakeKube]:
    kube = FakeKube(served if served is not None else {**CORE_KINDS, **MONITORING})
    kube.objects[MD] = md()
    reconciler = Reconciler(
        OperatorSettings(**{"metrics_port": 0, "discover_grafana": False, **settings}),
        kube,  # type: ignore[arg-type]
        renderer or FakeRenderer(),  # type: ignore[arg-type]
        FakePrometheus(),  # type: ignore[arg-type]
        OperatorMetrics(),
    )
    return reconciler, kube
