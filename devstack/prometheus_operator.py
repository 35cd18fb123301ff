"""prometheus-operator on the real node, run the way kube-prometheus-stack runs it (issue 15).

    stack = MonitoringStack.install(cluster, node)  # images, operator, Prometheus, Alertmanager
    stack.prometheus().wait_for_targets(up=1)        # PrometheusAPI at the pod's address
    stack.route_alerts_to("http://10.245.255.1:9999/hook")
    stack.alertmanager().wait_for_alert("ModelServiceDown")

What runs, and what is a stand-in:

- prometheus-operator and prometheus-config-reloader: built by `make tools` from the Go module
  at PROMETHEUS_OPERATOR_VERSION (the version of the CRDs the rig installs); the operator runs
  in-cluster as a Deployment in `monitoring` with upstream's own example/rbac manifests
  (ServiceAccount, ClusterRole, Binding, Service, ServiceMonitor), copied by `make tools`.
- Prometheus and Alertmanager: StatefulSets the operator makes from a `Prometheus` and an
  `Alertmanager` object named as kube-prometheus-stack names them for release
  `kube-prometheus-stack`, with the spec fields of deploy/kube-prometheus-stack-values.yaml
  (its selectors among them: that file is the one source), plus what the chart itself adds
  (service account, the Alertmanager to alert, `version`). Their binaries are upstream's at
  the versions the operator deploys by default, built from their Go modules by `make tools`:
  Debian's prometheus is built without Kubernetes service discovery, which every
  ServiceMonitor needs.
- The images are STAND-INS: no registry answers here, so upstream's images cannot be pulled.
  Each is an OCI archive of the one static binary at the path upstream's image has it,
  imported into the node's containerd as localhost/modelops/<name>:<version>. The binaries
  are upstream's code; only the image around them is local (no shell, no busybox).
- kube-state-metrics (`kube_*`) runs in a pod from upstream's standard manifests, scraped
  through a ServiceMonitor like kube-prometheus-stack's; kubelet/cAdvisor (`container_*`) is
  scraped through the kubelet Service the operator maintains (`--kubelet-service`), as
  kube-prometheus-stack does: every series the dashboards and alerts read is served.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from devstack.cluster import Cluster
from devstack.node_config import oci_archive
from devstack.paths import (
    KUBE_STATE_METRICS_MANIFESTS,
    PROMETHEUS_OPERATOR_MANIFESTS,
    REPO_ROOT,
    DevstackError,
    find_tool,
    versions,
)
from devstack.prometheus import AlertmanagerAPI, PrometheusAPI

if TYPE_CHECKING:
    from devstack.node import RealNode

NAMESPACE = "monitoring"
RELEASE = "kube-prometheus-stack"  # what `make up` calls the release (deploy/..-values.yaml)
PROMETHEUS_NAME = f"{RELEASE}-prometheus"
ALERTMANAGER_NAME = f"{RELEASE}-alertmanager"
KUBELET_SERVICE = f"kube-system/{RELEASE}-kubelet"
KPS_VALUES = REPO_ROOT / "deploy" / "kube-prometheus-stack-values.yaml"
IMAGE_REPO = "localhost/modelops"  # localhost: a pull never leaves the host
STANDIN_LABEL = "io.modelops.stand-in"
WAIT = "--timeout=300s"


class MonitoringError(DevstackError):
    """The monitoring stack did not come up."""


# --- images -------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """A stand-in image: one static binary at ``path`` (the upstream image's entrypoint)."""

    name: str  # the upstream image's last path element
    binary: Path
    path: str  # where upstream's image has it
    version: str

    @property
    def ref(self) -> str:
        return f"{IMAGE_REPO}/{self.name}:{self.version}"

    def archive(self) -> bytes:
        files = {self.path.lstrip("/"): self.binary.resolve()}
        return oci_archive(self.ref, files, [self.path], user="65534:65534")


def stack_images() -> dict[str, Image]:
    """The five images, named as upstream names them, each around the binary `make tools`
    built (prometheus and alertmanager under versioned names: .cache/bin/prometheus is
    Debian's, for the process tier)."""
    pins = versions()
    op, prom, am, ksm = (
        pins["PROMETHEUS_OPERATOR_VERSION"],
        pins["PROMETHEUS_VERSION"],
        pins["ALERTMANAGER_VERSION"],
        pins["KUBE_STATE_METRICS_VERSION"],
    )
    images = [
        Image("prometheus", find_tool(f"prometheus-{prom}"), "/bin/prometheus", prom),
        Image("alertmanager", find_tool(f"alertmanager-{am}"), "/bin/alertmanager", am),
        Image("prometheus-operator", find_tool("prometheus-operator"), "/bin/operator", op),
        Image(
            "prometheus-config-reloader",
            find_tool("prometheus-config-reloader"),
            "/bin/prometheus-config-reloader",
            op,
        ),
        Image("kube-state-metrics", find_tool("kube-state-metrics"), "/kube-state-metrics", ksm),
    ]
    return {i.name: i for i in images}


# --- objects (pure) -----------------------------------------------------------------


def kps_spec(values: Mapping[str, Any], component: str) -> dict[str, Any]:
    """The `prometheusSpec` / `alertmanagerSpec` of kube-prometheus-stack values, as the
    custom resource's spec: the chart-only `*NilUsesHelmValues` switches dropped (the values
    give the selectors explicitly)."""
    spec = values[component][f"{component}Spec"]
    return {k: v for k, v in spec.items() if not k.endswith("NilUsesHelmValues")}


def _relocated(paths: list[Path], image: Image) -> list[dict[str, Any]]:
    """Upstream's objects in ``paths`` moved to NAMESPACE (their bindings' subjects too), the
    Deployment's one container on the local ``image``."""
    objects = []
    for path in paths:
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj or obj["kind"] == "Prometheus":  # the example's own; ours is below
                continue
            if not obj["kind"].startswith("Cluster"):
                obj["metadata"]["namespace"] = NAMESPACE
            for subject in obj.get("subjects", []):
                subject["namespace"] = NAMESPACE
            if obj["kind"] == "Deployment":
                (container,) = obj["spec"]["template"]["spec"]["containers"]
                container["image"] = image.ref
                container["imagePullPolicy"] = "Never"
            objects.append(obj)
    return objects


def upstream_objects(manifests: Path, images: Mapping[str, Image]) -> list[dict[str, Any]]:
    """Upstream's example/rbac objects for the operator and for Prometheus, moved to
    NAMESPACE, the operator's image and its config-reloader image the local ones, and the
    kubelet Service named as kube-prometheus-stack names it."""
    objects = _relocated(sorted(manifests.glob("*/*.yaml")), images["prometheus-operator"])
    for obj in objects:
        if obj["kind"] == "Deployment":
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            container["args"] = [
                _arg(a, images["prometheus-config-reloader"].ref) for a in container["args"]
            ]
    return objects


def kube_state_metrics_objects(manifests: Path, image: Image) -> list[dict[str, Any]]:
    """Upstream's standard deployment of kube-state-metrics in NAMESPACE on the local image,
    and a ServiceMonitor like the one kube-prometheus-stack enables for it (its labels kept:
    `namespace` is the object's, not the target's)."""
    monitor = {
        "jobLabel": "app.kubernetes.io/name",
        "selector": {"matchLabels": {"app.kubernetes.io/name": "kube-state-metrics"}},
        "endpoints": [{"port": "http-metrics", "honorLabels": True}],
    }
    return [
        *_relocated(sorted(manifests.glob("*.yaml")), image),
        _resource("ServiceMonitor", f"{RELEASE}-kube-state-metrics", monitor),
    ]


def _arg(arg: str, reloader: str) -> str:
    if arg.startswith("--prometheus-config-reloader="):
        return f"--prometheus-config-reloader={reloader}"
    if arg.startswith("--kubelet-service="):
        return f"--kubelet-service={KUBELET_SERVICE}"
    return arg


def alertmanager_config(webhook_url: str | None = None) -> dict[str, Any]:
    """kube-prometheus-stack's default route (everything to the `null` receiver), or every
    alert to ``webhook_url``, grouped by alert name, sent within seconds."""
    if webhook_url is None:
        return {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
    return {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "5s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }


def alertmanager_secret(config: Mapping[str, Any]) -> dict[str, Any]:
    """The Secret the operator reads an Alertmanager's configuration from (what the chart
    renders from `alertmanager.config`)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"alertmanager-{ALERTMANAGER_NAME}", "namespace": NAMESPACE},
        "stringData": {"alertmanager.yaml": yaml.safe_dump(dict(config), sort_keys=False)},
    }


def kubelet_service_monitor() -> dict[str, Any]:
    """kube-prometheus-stack's kubelet ServiceMonitor, its /metrics and /metrics/cadvisor
    endpoints: Prometheus' ServiceAccount token, authorized by the kubelet through the API
    server (nodes/metrics in upstream's Prometheus ClusterRole)."""
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    endpoint = {
        "port": "https-metrics",
        "scheme": "https",
        "bearerTokenFile": f"{sa}/token",
        "tlsConfig": {"caFile": f"{sa}/ca.crt", "insecureSkipVerify": True},
        "honorLabels": True,
        "relabelings": [
            {
                "action": "replace",
                "sourceLabels": ["__metrics_path__"],
                "targetLabel": "metrics_path",
            }
        ],
    }
    spec = {
        "jobLabel": "k8s-app",
        "namespaceSelector": {"matchNames": ["kube-system"]},
        "selector": {"matchLabels": {"k8s-app": "kubelet"}},
        "endpoints": [endpoint, {**endpoint, "path": "/metrics/cadvisor"}],
    }
    return _resource("ServiceMonitor", f"{RELEASE}-kubelet", spec)


def stack_objects(
    values: Mapping[str, Any],
    images: Mapping[str, Image],
    manifests: Path,
    ksm_manifests: Path,
) -> list[dict[str, Any]]:
    """Everything `install` applies, in order."""
    prometheus = {
        **kps_spec(values, "prometheus"),
        "image": images["prometheus"].ref,
        "version": images["prometheus"].version,
        "serviceAccountName": "prometheus",
        "alerting": {
            "alertmanagers": [
                {"namespace": NAMESPACE, "name": "alertmanager-operated", "port": "web"}
            ]
        },
    }
    alertmanager = {
        **kps_spec(values, "alertmanager"),
        "image": images["alertmanager"].ref,
        "version": images["alertmanager"].version,
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        *upstream_objects(manifests, images),
        alertmanager_secret(alertmanager_config()),
        _resource("Prometheus", PROMETHEUS_NAME, prometheus),
        _resource("Alertmanager", ALERTMANAGER_NAME, alertmanager),
        kubelet_service_monitor(),
        *kube_state_metrics_objects(ksm_manifests, images["kube-state-metrics"]),
    ]


def _resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"release": RELEASE}},
        "spec": spec,
    }


# --- the running stack --------------------------------------------------------------


@dataclass
class MonitoringStack:
    """prometheus-operator, its Prometheus and its Alertmanager, running on the real node."""

    cluster: Cluster

    @classmethod
    def install(cls, cluster: Cluster, node: RealNode) -> MonitoringStack:
        """Load the images into the node, apply the objects, wait until the operator's
        StatefulSets are rolled out."""
        for manifests in (PROMETHEUS_OPERATOR_MANIFESTS, KUBE_STATE_METRICS_MANIFESTS):
            if not manifests.is_dir():
                raise MonitoringError(f"{manifests} is missing: run `make tools`")
        images = stack_images()
        for image in images.values():
            node.ctr("images", "import", "-", input=image.archive())
        cluster.install_monitoring_crds()
        values = yaml.safe_load(KPS_VALUES.read_text())
        objects = stack_objects(
            values, images, PROMETHEUS_OPERATOR_MANIFESTS, KUBE_STATE_METRICS_MANIFESTS
        )
        cluster.apply(objects, "--server-side")
        stack = cls(cluster)
        stack.wait("deployment/prometheus-operator")
        stack.wait("deployment/kube-state-metrics")
        stack.wait_created(f"statefulset/prometheus-{PROMETHEUS_NAME}")
        stack.wait_created(f"statefulset/alertmanager-{ALERTMANAGER_NAME}")
        stack.wait(f"statefulset/prometheus-{PROMETHEUS_NAME}")
        stack.wait(f"statefulset/alertmanager-{ALERTMANAGER_NAME}")
        return stack

    def wait(self, what: str) -> None:
        self.cluster.kubectl("rollout", "status", what, "-n", NAMESPACE, WAIT)

    def wait_created(self, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.cluster.kubectl("get", what, "-n", NAMESPACE, check=False).returncode:
            if time.monotonic() > deadline:
                logs = self.operator_logs()[-3000:]
                raise MonitoringError(
                    f"prometheus-operator made no {what} in {timeout:.0f}s\n{logs}"
                )
            time.sleep(1)

    def _pod_url(self, pod: str, port: int) -> str:
        ip = self.cluster.get("pod", pod, "-n", NAMESPACE)["status"]["podIP"]
        return f"http://{ip}:{port}"  # the host routes the pod network to the node

    def prometheus(self) -> PrometheusAPI:
        return PrometheusAPI(self._pod_url(f"prometheus-{PROMETHEUS_NAME}-0", 9090))

    def alertmanager(self) -> AlertmanagerAPI:
        return AlertmanagerAPI(self._pod_url(f"alertmanager-{ALERTMANAGER_NAME}-0", 9093))

    def route_alerts_to(self, webhook_url: str) -> None:
        """Every alert to ``webhook_url``: the config Secret changes, the operator regenerates
        the Alertmanager's configuration and its config-reloader reloads it."""
        self.cluster.apply(alertmanager_secret(alertmanager_config(webhook_url)))

    def operator_logs(self) -> str:
        proc = self.cluster.kubectl(
            "logs", "-n", NAMESPACE, "deployment/prometheus-operator", check=False
        )
        return proc.stdout + proc.stderr
