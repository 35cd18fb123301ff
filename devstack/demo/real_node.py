"""The real-node stage: the project's images running in pods, monitored as kube-prometheus-stack
monitors them. Nothing inside a pod is simulated.

What runs where:

- the control plane of the simulated stage; its only node is devstack.node's real node
  (kubelet, kube-proxy, containerd and runc in a network namespace of the rig's own, CoreDNS
  for cluster.local);
- the images `make images` builds (model-service, modelops-operator), loaded from the
  Docker engine into the node's containerd: the model pods and the operator pod run them;
- prometheus-operator in-cluster (devstack.prometheus_operator), with the Prometheus and
  Alertmanager of deploy/kube-prometheus-stack-values.yaml: the chart's ServiceMonitor and
  PrometheusRule are what configure them;
- charts/model-operator, with its ServiceAccount, RBAC and ServiceMonitor;
- the traffic generator inside the node's network namespace, to each Service's ClusterIP
  (kube-proxy picks the pod).

Still stand-ins: the images' base layers (built from Debian packages: no registry answers
here) and the monitoring stack's images (upstream's binaries in a local image).
"""

from __future__ import annotations

import os
import time
from typing import Any

from devstack.cluster import Cluster
from devstack.control_plane import ControlPlane
from devstack.demo.stage import (
    CONTROL_PLANE,
    Context,
    DemoError,
    Snapshot,
    TrafficRoute,
    kept_message,
)
from devstack.images import build_images, engine_answers
from devstack.node import NODE_NAME, NODE_TOOLS, RealNode, release
from devstack.paths import OPERATOR_CHART, DevstackError, find_tool
from devstack.prometheus import PrometheusAPI
from devstack.prometheus_operator import MonitoringStack, stack_images
from modelops_operator.analysis import window_seconds

OPERATOR_NS, OPERATOR_RELEASE = "modelops-system", "modelops"
OPERATOR_DEPLOYMENT = f"{OPERATOR_RELEASE}-model-operator"
OPERATOR_CHECK_SECONDS = 5.0


def unavailable() -> str | None:
    """Why this machine cannot run the real node, or None when it can."""
    if os.geteuid() != 0:
        return "not root (the real node makes a network namespace, routes and iptables rules)"
    try:
        for tool in NODE_TOOLS:
            find_tool(tool)
        stack_images()  # the monitoring stack's binaries
    except DevstackError as err:
        return f"a tool is not built ({err})"
    if not engine_answers():
        return "no Docker engine answers to build the images (`make engine` starts one)"
    return None


class RealNodeStage:
    mode = "real node"
    # kube-prometheus-stack scrapes and evaluates every 15 s: the shortest window the
    # analysis judges (two rule evaluations) is the shortest useful step.
    interval = f"{window_seconds(0)}s"
    # the comparison with the stable waits for a minute of traffic both served
    deadline = "5m"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.opts = ctx.options
        self.cluster: Cluster | None = None
        self.node: RealNode | None = None
        self.plane: ControlPlane | None = None  # set only when this run starts the rig
        self.stack: MonitoringStack | None = None
        self._prometheus: PrometheusAPI | None = None
        self._restarts = 0
        self._next_check = 0.0
        self._facts: dict[str, Any] = {}

    @property
    def prometheus(self) -> PrometheusAPI:
        assert self._prometheus is not None
        return self._prometheus

    def banner(self) -> str:
        return (
            CONTROL_PLANE
            + f"""
  node           a REAL NODE, {NODE_NAME}: kubelet, kube-proxy, containerd and runc in a
                 network namespace of the rig's own; the pods run the project's images
  images         model-service and modelops-operator, built by the Docker engine as `make
                 images` builds them (base layers from Debian packages: no registry here)
  operator       charts/model-operator: a pod with the chart's ServiceAccount, RBAC and
                 ServiceMonitor, reaching the API server and Prometheus in-cluster
  model service  the pods the operator's Deployments make, behind their Services
  Prometheus     prometheus-operator in-cluster with the Prometheus and Alertmanager of
                 deploy/kube-prometheus-stack-values.yaml (15 s scrapes): the chart's
                 ServiceMonitor and PrometheusRule configure them, and kube-state-metrics
                 (their images are upstream's binaries in a local image)
  traffic        python -m loadtest inside the node's network namespace, to each Service's
                 ClusterIP: kube-proxy picks the pod
  not here       Grafana: `make up` with kind has it"""
        )

    # --- start

    def start(self) -> Cluster:
        say = self.ctx.say
        say(
            "building the images with the Docker engine (hack/images.sh, as `make images`; "
            "reused when nothing changed, minutes when something did)"
        )
        images = build_images()
        self.cluster, self.node = cluster, node = self._rig()
        for image in (images.service, images.operator):
            node.load_image(image)
        say(f"loaded {images.service} and {images.operator} into the node's containerd")
        say(
            "prometheus-operator, then the Prometheus and Alertmanager it runs "
            "(deploy/kube-prometheus-stack-values.yaml): a minute or two"
        )
        self.stack = MonitoringStack.install(cluster, node)
        self._prometheus = self.stack.prometheus()
        say(f"Prometheus {self.prometheus.url}, Alertmanager {self.stack.alertmanager().url}")
        cluster.install_modeldeployment_crd()
        args = [
            "upgrade", "--install", OPERATOR_RELEASE, str(OPERATOR_CHART),
            "-n", OPERATOR_NS, "--create-namespace",
            "--set", "metrics.serviceMonitor.enabled=true", "--wait", "--timeout=5m",
        ]  # fmt: skip
        say(f"the operator: helm {' '.join(args)}")
        cluster.helm(*args)
        pod = self._operator_pod()
        self._restarts = restarts(pod)
        container = pod["spec"]["containers"][0]
        self._facts |= {
            "node": NODE_NAME,
            "images": [images.service, images.operator],
            "operator_pod": f"{OPERATOR_NS}/{pod['metadata']['name']}",
        }
        say(
            f"operator: pod {OPERATOR_NS}/{pod['metadata']['name']} on node "
            f"{pod['spec']['nodeName']}, image {container['image']}, ServiceAccount "
            f"{pod['spec']['serviceAccountName']}; logs: kubectl logs -n {OPERATOR_NS} "
            f"deployment/{OPERATOR_DEPLOYMENT}"
        )
        return cluster

    def _rig(self) -> tuple[Cluster, RealNode]:
        say = self.ctx.say
        if self.opts.kubeconfig:
            raise DemoError(
                "--kubeconfig runs the KWOK stage: the real node's demo starts its own rig "
                "(or uses the one `make cluster-up NODE=real` left in --rig-dir)"
            )
        run_dir = self.opts.rig_dir.resolve()
        if ControlPlane.running(run_dir):
            cluster = Cluster.from_kubeconfig(run_dir / "kubeconfig")
            cluster.wait_ready()
            if NODE_NAME not in cluster.nodes:
                raise DemoError(
                    f"the rig running in {run_dir} has KWOK nodes ({', '.join(cluster.nodes)}): "
                    "`make cluster-down` first, or --node kwok"
                )
            say(f"using the rig with the real node already running in {run_dir}; left running")
            return cluster, RealNode(ControlPlane(run_dir, node_count=0))
        if ControlPlane.recorded(run_dir):
            release(run_dir)
            ControlPlane.stop_recorded(run_dir)
        say(
            f"starting the control plane in {run_dir}, then the real node {NODE_NAME}: "
            "kubelet, kube-proxy, containerd, CoreDNS (a minute or two)"
        )
        # Detached only when it is to outlive this process; else it dies with it.
        self.plane = ControlPlane(run_dir, node_count=0, detach=self.opts.keep_cluster)
        cluster = self.plane.start()
        node = RealNode(self.plane)
        node.start(cluster)
        cluster.wait_ready()
        self._facts["control_plane"] = [p.record() for p in self.plane.procs]
        say(
            f"API server {cluster.server}; node {', '.join(cluster.nodes)} (real); "
            + ", ".join(f"{p.name} pid {p.pid}" for p in self.plane.procs)
        )
        return cluster, node

    def _operator_pod(self) -> dict[str, Any]:
        assert self.cluster is not None
        pods = self.cluster.get(
            "pods", "-n", OPERATOR_NS, "-l", f"app.kubernetes.io/instance={OPERATOR_RELEASE}"
        )["items"]
        if not pods:
            raise DemoError(f"no operator pod in {OPERATOR_NS}")
        return pods[0]

    # --- the loop

    def tick(self, snap: Snapshot) -> None:
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + OPERATOR_CHECK_SECONDS
        pod = self._operator_pod()
        if restarts(pod) > self._restarts:
            assert self.cluster is not None
            logs = self.cluster.kubectl(
                "logs", "-n", OPERATOR_NS, pod["metadata"]["name"], "--previous", "--tail=30",
                check=False,
            ).stdout  # fmt: skip
            raise DemoError(f"the operator's container restarted; its last lines:\n{logs}")

    def serving(self, snap: Snapshot, services: list[str]) -> bool:
        return all(self._endpoints(snap, s) for s in services)

    def _endpoints(self, snap: Snapshot, service: str) -> set[str]:
        """Where kube-proxy sends a new connection to the Service now."""
        assert self.node is not None
        svc = next((s for s in snap["Service"] if s["metadata"]["name"] == service), None)
        if svc is None:
            return set()
        return self.node.routes(svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"])

    def describe(self) -> str:
        assert self.cluster is not None
        services = self.cluster.get("services", "-n", self.opts.namespace)["items"]
        lines = []
        for svc in services:
            name, spec = svc["metadata"]["name"], svc["spec"]
            ends = ", ".join(sorted(self._endpoints({"Service": services}, name)))
            lines.append(f"  {name} {spec['clusterIP']}:{spec['ports'][0]['port']} -> {ends}")
        return (
            f"each pod runs its container in containerd on {NODE_NAME}; kube-proxy sends each "
            "Service's connections to its Ready pods:\n" + "\n".join(lines)
        )

    def traffic_route(self, service: str) -> TrafficRoute:
        assert self.cluster is not None
        assert self.node is not None
        svc = self.cluster.get("service", service, "-n", self.opts.namespace)["spec"]
        url = f"http://{svc['clusterIP']}:{svc['ports'][0]['port']}"
        return TrafficRoute(
            url, url, " in the node's network namespace", tuple(self.node.in_netns()), remote=True
        )

    def operator_log(self) -> str:
        assert self.cluster is not None
        proc = self.cluster.kubectl(
            "logs", "-n", OPERATOR_NS, f"deployment/{OPERATOR_DEPLOYMENT}", "--tail=30",
            check=False,
        )  # fmt: skip
        return f"the operator's last lines:\n{proc.stdout}{proc.stderr}"

    def hints(self) -> list[str]:
        assert self.stack is not None
        return [
            f"Prometheus: {self.prometheus.url}/graph, Alertmanager: "
            f"{self.stack.alertmanager().url} (pod addresses: the host routes to the node)",
            f"kubectl logs -n {OPERATOR_NS} deployment/{OPERATOR_DEPLOYMENT}   # the operator",
            "kubectl get servicemonitors,prometheusrules -A   # what configures Prometheus",
        ]

    # --- the end

    def stop(self) -> list[str]:
        if self.plane is None:
            return []
        if self.opts.keep_cluster:
            self.ctx.say(
                kept_message(self.plane.run_dir) + " The node, the monitoring stack and the "
                "operator keep running."
            )
            return []
        removed = release(self.plane.run_dir)
        stopped = [f"{p.name} ({p.pid})" for p in self.plane.procs]
        self.plane.stop(remove=True)
        if removed:
            self.ctx.say("the node's host changes put back: " + ", ".join(removed))
        return stopped

    def summary(self) -> dict[str, Any]:
        return {
            "control_plane": [],
            **self._facts,
            "cluster_kept": bool(self.plane and self.opts.keep_cluster),
        }


def restarts(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(s.get("restartCount", 0) for s in statuses)
