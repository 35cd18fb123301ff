"""The simulated stage: KWOK nodes, with everything inside the pods as local processes.

What runs where:

- the dev stack's real control plane (devstack.control_plane: etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler) as local processes on loopback, with nodes
  simulated by KWOK: pods are scheduled and marked Ready, but nothing inside a pod runs;
- the operator (`python -m modelops_operator`) as a local process;
- the real model service for each model version that has pods, as local processes
  (pods.py: one process per version, started and stopped as its pods come and go), scraped
  by a local Prometheus that evaluates alerts/modelops.rules.yaml;
- the traffic generator (`python -m loadtest`) through a loopback stand-in for each Service
  that picks a Ready pod at random and forwards to the process behind it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from devstack.cluster import Cluster
from devstack.control_plane import ControlPlane
from devstack.demo.pods import PodProcesses, ServiceProxy
from devstack.demo.stage import (
    CONTROL_PLANE,
    Context,
    DemoError,
    Snapshot,
    TrafficRoute,
    kept_message,
    tail,
)
from devstack.operator_process import OperatorProcess
from devstack.paths import MODELS_ROOT, REPO_ROOT, RULES
from devstack.prometheus import Prometheus
from devstack.service_process import ServiceProcess

# Drift only once 150 rows are in the window (PSI over fewer rows is mostly noise), computed
# at most every second: the local Prometheus scrapes every 2 s.
SERVICE_ENV = {"MODELOPS_DRIFT_MIN_ROWS": "150", "MODELOPS_DRIFT_REFRESH_SECONDS": "1"}
OPERATOR_TICK = "2"
OPERATOR_RESYNC = "30"  # the operator's own default: the demo shows the product's pace


class SimulatedStage:
    mode = "KWOK"
    interval = "5s"  # the local Prometheus scrapes and evaluates every 2 s
    deadline = "3m"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.opts = ctx.options
        self.cluster: Cluster | None = None
        self.plane: ControlPlane | None = None  # set only when this run starts the rig
        self.plane_procs: list[dict[str, Any]] = []
        self._prometheus: Prometheus | None = None
        self.operator: OperatorProcess | None = None
        self.pods: PodProcesses | None = None
        self.proxies: dict[str, ServiceProxy] = {}

    @property
    def prometheus(self) -> Prometheus:
        assert self._prometheus is not None
        return self._prometheus

    def banner(self) -> str:
        return (
            CONTROL_PLANE
            + """
  nodes          simulated by KWOK: pods are scheduled and marked Ready, but NOTHING INSIDE A
                 POD RUNS (no container runtime, no image is pulled, no pod IP answers)
  operator       python -m modelops_operator, a local process; it renders charts/model-service
                 and applies the Deployments, Service, ServiceMonitor and PrometheusRule
  model service  the real service (python -m modelops_service), one local process per model
                 version that has pods, started and stopped as its pods come and go
  Prometheus     a local Prometheus scraping those processes with the labels the ServiceMonitor
                 would give them, evaluating alerts/modelops.rules.yaml; the operator's canary
                 analysis queries its recording rules
  traffic        python -m loadtest through a loopback stand-in for each Service, which sends
                 each request to a Ready pod picked at random (the process behind it)
  not here       Docker, images, Grafana, Alertmanager: on a machine that can run containers
                 the demo runs on a real node (--node real); `make up` with kind has them all"""
        )

    # --- start

    def start(self) -> Cluster:
        say = self.ctx.say
        self.cluster = cluster = self._control_plane()
        cluster.install_modeldeployment_crd()
        self._prometheus = Prometheus(
            self.ctx.workdir / "prometheus",
            rule_files=[RULES],
            scrape_interval="2s",  # drift is computed on scrape: a busy laptop needs the time
            evaluation_interval="2s",
        )
        self._prometheus.start(timeout=60)
        assert self._prometheus.process is not None
        self.ctx.record(self._prometheus.process)
        say(
            f"Prometheus on {self._prometheus.url} (pid {self._prometheus.pid}), rules "
            f"{RULES.relative_to(REPO_ROOT)}"
        )
        self._start_operator(cluster)
        self.pods = PodProcesses(
            namespace=self.opts.namespace,
            models_root=MODELS_ROOT,
            prometheus=self._prometheus,
            log_dir=self.ctx.logs,
            say=say,
            service_env=SERVICE_ENV,
            on_start=self._record_service,
        )
        return cluster

    def _control_plane(self) -> Cluster:
        say = self.ctx.say
        if self.opts.kubeconfig:
            cluster = Cluster.from_kubeconfig(self.opts.kubeconfig)
            cluster.wait_ready()
            cluster.install_monitoring_crds()
            say(f"using the running control plane of {cluster.kubeconfig} (left running)")
            return cluster
        run_dir = self.opts.rig_dir.resolve()
        if ControlPlane.running(run_dir):
            cluster = Cluster.from_kubeconfig(run_dir / "kubeconfig")
            cluster.wait_ready()
            cluster.install_monitoring_crds()
            say(f"using the control plane already running in {run_dir}; left running")
            return cluster
        if ControlPlane.recorded(run_dir):
            ControlPlane.stop_recorded(run_dir)
        say(
            f"starting the control plane in {run_dir}: etcd, kube-apiserver, "
            "kube-controller-manager, kube-scheduler, kwok (a minute on a busy laptop)"
        )
        # Detached only when it is to outlive this process; else it dies with it.
        self.plane = ControlPlane(run_dir, detach=self.opts.keep_cluster)
        cluster = self.plane.start()  # its PIDs live in run_dir/state.json, as make cluster-up's
        self.plane_procs = [p.record() for p in self.plane.procs]
        say(
            f"API server {cluster.server}; nodes {', '.join(cluster.nodes)} (KWOK, simulated); "
            + ", ".join(f"{p.name} pid {p.pid}" for p in self.plane.procs)
        )
        return cluster

    def _start_operator(self, cluster: Cluster) -> None:
        self.operator = OperatorProcess(
            cluster,
            self.ctx.logs,
            prometheus_url=self.prometheus.url,
            kubeconfig=cluster.kubeconfig,
            settings={
                "MODELOPS_OPERATOR_NAMESPACES": json.dumps([self.opts.namespace]),
                "MODELOPS_OPERATOR_TICK_SECONDS": OPERATOR_TICK,
                "MODELOPS_OPERATOR_RESYNC_SECONDS": OPERATOR_RESYNC,
            },
        )
        self.operator.start()
        assert self.operator.process is not None
        self.ctx.record(self.operator.process)
        self.ctx.say(
            f"operator: python -m modelops_operator, pid {self.operator.pid}, watching namespace "
            f"{self.opts.namespace}; it queries {self.prometheus.url}; metrics on "
            f":{self.operator.metrics_port}; log {self.operator.log}\n"
            "(it runs with the rig's admin credentials; in a cluster, with the least-privilege "
            "RBAC of manifests/rbac/)"
        )

    def _record_service(self, name: str, svc: ServiceProcess) -> None:
        self.ctx.record(dataclasses.replace(svc.process, name=name))

    # --- the loop

    def tick(self, snap: Snapshot) -> None:
        if self.operator is not None and not self.operator.running():
            raise DemoError(f"the operator exited:\n{self.operator_log()}")
        assert self.pods is not None
        for svc in snap["Service"]:
            name = svc["metadata"]["name"]
            if name not in self.proxies:
                self.proxies[name] = ServiceProxy(name, self._routes_of(name))
                self.ctx.say(
                    f"Service {self.opts.namespace}/{name} (ClusterIP "
                    f"{svc['spec'].get('clusterIP')}, which nothing here routes) -> loopback "
                    f"stand-in {self.proxies[name].url}"
                )
        self.pods.sync(snap["Pod"], snap["Service"])

    def _routes_of(self, service: str) -> Callable[[], list[str]]:
        pods = self.pods
        assert pods is not None
        return lambda: pods.routes.get(service, [])

    def serving(self, snap: Snapshot, services: list[str]) -> bool:
        return self.pods is not None and all(self.pods.routes.get(s) for s in services)

    def describe(self) -> str:
        assert self.pods is not None
        return "the local processes behind those pods:\n" + "\n".join(self.pods.describe())

    def traffic_route(self, service: str) -> TrafficRoute:
        proxy = self.proxies[service]
        return TrafficRoute(proxy.url, f"stand-in on {proxy.url}")

    def operator_log(self) -> str:
        return tail(self.ctx.logs / "operator.log")

    def hints(self) -> list[str]:
        curls = [f"curl -s {p.url}/v1/model   # Service {n}" for n, p in self.proxies.items()]
        return [f"Prometheus: {self.prometheus.url}/graph (rules under /rules)", *curls]

    # --- the end

    def stop(self) -> list[str]:
        stopped: list[str] = []
        for proxy in self.proxies.values():
            proxy.stop()
        if self.operator is not None and self.operator.pid is not None:
            stopped.append(f"operator ({self.operator.pid})")
            self.operator.stop()
        if self.pods is not None:
            stopped += [
                f"service {b.instance} v{b.version} ({b.service.pid})"
                for b in self.pods.backends.values()
            ]
            self.pods.stop_all()
        if self._prometheus is not None and self._prometheus.pid is not None:
            self._prometheus.stop()
            stopped.append(f"prometheus ({self._prometheus.pid})")
        if self.plane is not None:
            if self.opts.keep_cluster:
                self.ctx.say(
                    kept_message(self.plane.run_dir) + " With the operator gone the "
                    "ModelDeployments stand still (`make run-operator` resumes them)."
                )
            else:
                stopped += [f"{p.name} ({p.pid})" for p in self.plane.procs]
                self.plane.stop(remove=True)
        return stopped

    def summary(self) -> dict[str, Any]:
        return {
            "control_plane": self.plane_procs,
            "cluster_kept": bool(self.plane and self.opts.keep_cluster),
        }
