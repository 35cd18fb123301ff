"""The narrated demo: start everything, show a canary promoted and one rolled back, clean up.

Acts:
  0. what runs where; the control plane (devstack), the CRD, Prometheus, the operator
  1. two ModelDeployments at version 1 (diabetes, wine), Ready; traffic through each Service
  2. diabetes 1 -> 3 as a canary: version 3 is version 1 with a few more boosting rounds;
     errors, latency and drift within the thresholds, and against version 1 in the same
     window its errors, latency and predictions too: promoted
  3. wine 1 -> 2 as a canary: version 2 was trained on low-alcohol wines only, so live
     inputs drift against its reference: rolled back (DriftTooHigh), with a Warning Event
  4. diabetes 3 -> 2 as a canary: version 2 predicts about 20% too high; every absolute
     figure is fine, but its mean prediction is not the stable's: rolled back
     (PredictionShift)

Everything started here is stopped by PID on exit, Ctrl-C or SIGTERM (the control plane
too, unless --keep-cluster or it was already running). A run killed with SIGKILL leaves
its PIDs in <workdir>/procs/state.json; the next run stops them first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from devstack.canary import dataset_rows
from devstack.cluster import Cluster, CommandError
from devstack.control_plane import ControlPlane
from devstack.demo.pods import PodProcesses, ServiceProxy
from devstack.operator_process import OperatorProcess
from devstack.paths import (
    MODELDEPLOYMENT_CRD,
    MODELS_ROOT,
    REPO_ROOT,
    RULES,
    RUN_ROOT,
    TOOLS_BIN,
    DevstackError,
)
from devstack.processes import Ledger, Process, spawn
from devstack.prometheus import Prometheus
from devstack.service_process import ServiceProcess, ensure_demo_models
from modelops_service import recording_rules

NAMESPACE = "modelops-demo"
IMAGE = "model-service:0.1.0"  # written into the pods' spec; never pulled (KWOK runs nothing)
HEALTHY = "diabetes"  # 1 -> 3: v1 with more rounds: passes the analysis; then 3 -> 2 (biased)
FAILING = "wine"  # 1 -> 2: trained on low-alcohol wines only: live inputs drift

# The canary policy of both ModelDeployments. Short steps so the demo takes minutes.
# maxDriftScore 0.25 is the usual PSI line for a significant shift; the services export
# drift only once 150 rows are in the window (PSI over fewer rows is mostly noise).
# maxLatencyP95Seconds is generous: a laptop here runs a whole control plane too.
STEPS = [50, 100]
INTERVAL = "5s"
ANALYSIS = {
    "maxErrorRate": 0.05,
    "maxLatencyP95Seconds": 1.0,
    "maxDriftScore": 0.25,
    # The prediction shift compares the mean predictions of two random samples of rows: at 20
    # requests a side their noise alone reached 0.10 (the healthy version 3 was rolled back);
    # at 100 it is a fraction of that, while the biased version 2 stays near 0.2.
    "minRequests": 100,
    "deadline": "3m",
}
# The canary against the stable version over the same seconds. The latency ratio is generous
# for the same reason as maxLatencyP95Seconds.
COMPARE = {"maxErrorRateDelta": 0.02, "maxLatencyP95Ratio": 2.0, "maxPredictionShift": 0.1}
SERVICE_ENV = {"MODELOPS_DRIFT_MIN_ROWS": "150", "MODELOPS_DRIFT_REFRESH_SECONDS": "1"}
OPERATOR_TICK = "2"
OPERATOR_RESYNC = "30"  # the operator's own default: the demo shows the product's pace
TRAFFIC_SECONDS = 1800  # the generator's own bound; it is stopped when the demo ends
FIGURES = (
    ("requests/s", recording_rules.REQUESTS_RATE1M.name),
    ("error ratio", recording_rules.ERROR_RATIO_RATE1M.name),
    ("p95 latency s", recording_rules.LATENCY_P95_RATE1M.name),
    ("drift (PSI)", recording_rules.DRIFT_SCORE_MAX.name),
    ("mean pred.", recording_rules.PREDICTION_MEAN_RATE1M.name),
)


@dataclass(frozen=True)
class Act:
    name: str
    stable: str
    canary: str
    expected: str  # promoted | rolled back
    reasons: tuple[str, ...]  # a reason the last analysis may give
    why: str

    @property
    def key(self) -> str:
        return f"{self.name} {self.stable} -> {self.canary}"


ACTS = (
    Act(HEALTHY, "1", "3", "promoted", ("WithinThresholds",),
        "diabetes version 3 is version 1 with a few more boosting rounds, on the same rows: its "
        "predictions are within about 1% of version 1's. Errors, p95 latency and input drift stay "
        "within the thresholds, and so do its error ratio, p95 latency and mean prediction "
        "against version 1 in the same seconds: each step passes and it is promoted."),
    Act(FAILING, "1", "2", "rolled back", ("DriftTooHigh", "PredictionShift"),
        "wine version 2 was trained on low-alcohol wines only. Live traffic covers all wines, "
        "so its inputs drift far from the reference it was trained on, and it never predicts "
        "cultivar 0, so its class shares differ from the stable's: the first conclusive "
        "analysis fails on whichever is seen first (drift needs 150 rows in the window) and "
        "the operator rolls it back."),
    Act(HEALTHY, "3", "2", "rolled back", ("PredictionShift",),
        "diabetes version 2 was trained on targets inflated by 20%. Its errors, latency and "
        "inputs are fine, so every absolute threshold passes; against the stable version in "
        "the same seconds its mean prediction is about 20% higher (maxPredictionShift 0.1): "
        "rolled back, reason PredictionShift."),
)  # fmt: skip


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and where the logs are."""


@dataclass
class Options:
    interactive: bool = True
    keep_cluster: bool = False
    kubeconfig: Path | None = None  # a running control plane to use instead of the rig's
    rig_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("MODELOPS_RIG_DIR", RUN_ROOT / "cluster"))
    )
    namespace: str = NAMESPACE
    workdir: Path = RUN_ROOT / "demo-local"
    summary: Path | None = None
    traffic_rate: float = 15.0
    act_timeout: float = 300.0


class Demo:
    def __init__(self, options: Options, out: TextIO = sys.stdout) -> None:
        self.opts = options
        self.out = out
        self.t0 = time.monotonic()
        self.ns = options.namespace
        self.workdir = options.workdir.resolve()
        self.logs = self.workdir / "logs"
        # every process this run starts, also on disk for a next run after a SIGKILL
        self.procs: list[Process] = []
        self.ledger = Ledger(self.workdir / "procs" / "state.json")
        self.cluster: Cluster | None = None
        self.plane: ControlPlane | None = None  # set only when this run starts the rig
        self.plane_procs: list[dict[str, Any]] = []
        self.prometheus: Prometheus | None = None
        self.operator: OperatorProcess | None = None
        self.pods: PodProcesses | None = None
        self.proxies: dict[str, ServiceProxy] = {}
        self.traffic: dict[str, Process] = {}
        self.models_root = MODELS_ROOT
        self.results: dict[str, Any] = {}
        self._seen_events: set[str] = set()
        self._md_rows: dict[str, tuple] = {}
        self._analyses: dict[str, tuple] = {}

    # --- output

    def say(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.t0)
        first, *rest = message.splitlines() or [""]
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {first}", file=self.out)
        for line in rest:
            print(f"        {line}", file=self.out)
        self.out.flush()

    def heading(self, title: str) -> None:
        print(f"\n=== {title} ===", file=self.out, flush=True)

    def show(self, args: list[str], text: str | None = None) -> None:
        """Print a kubectl command the way a user would type it, then its output."""
        print(f"  $ kubectl {shlex.join(args)}", file=self.out)
        if text is None:
            assert self.cluster is not None
            proc = self.cluster.kubectl(*args, check=False)
            text = proc.stdout if proc.returncode == 0 else proc.stderr
        for line in text.rstrip().splitlines():
            print(f"    {line}", file=self.out)
        self.out.flush()

    def pause(self, prompt: str = "Press Enter to go on (Ctrl-C stops and cleans up)") -> None:
        if self.opts.interactive:
            input(f"\n>> {prompt} ")

    # --- the story

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)
        }
        try:
            self._story()
            return 0 if self.as_designed else 1
        except KeyboardInterrupt:
            print(file=self.out)
            self.say("interrupted")
            return 130
        except (DemoError, DevstackError, CommandError) as err:
            self.say(f"the demo stopped: {err}")
            self.say(f"logs: {self.logs}")
            return 1
        finally:
            self.cleanup()
            self._write_summary()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @property
    def as_designed(self) -> bool:
        return len(self.results) == len(ACTS) and all(r["ok"] for r in self.results.values())

    @staticmethod
    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def _story(self) -> None:
        self._banner()
        self.pause()
        self._start()
        self._act_one()
        for number, act in enumerate(ACTS, start=2):
            self.pause()
            self._act_canary(number, act)
        self._finale()

    def _banner(self) -> None:
        kubeconfig = self.opts.kubeconfig or self.opts.rig_dir / "kubeconfig"
        self.heading("modelops-bundle without Docker: what runs where")
        print(
            f"""\
  control plane  etcd, kube-apiserver, kube-controller-manager and kube-scheduler: the real
                 binaries (make tools), local processes on 127.0.0.1 (devstack/)
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
  not here       Docker, kind, images, Grafana, Alertmanager: `make up` with Docker has those

  Namespace {self.ns}; KUBECONFIG {kubeconfig}
  Logs and state in {self.workdir}""",
            file=self.out,
            flush=True,
        )

    # --- act 0: the machinery

    def _start(self) -> None:
        self.heading("Starting")
        self._fresh_workdir()
        ensure_demo_models(self.models_root)
        self.cluster = self._control_plane()
        self.say(
            "watch it in another shell:\n"
            f"  export KUBECONFIG={self.cluster.kubeconfig} PATH={TOOLS_BIN}:$PATH\n"
            f"  kubectl get modeldeployments -n {self.ns} -w"
        )
        crd = MODELDEPLOYMENT_CRD.relative_to(REPO_ROOT)
        self.say(f"installing the ModelDeployment CRD ({crd})")
        self.cluster.install_modeldeployment_crd()
        self.cluster.create_namespace(self.ns)
        self.prometheus = Prometheus(
            self.workdir / "prometheus",
            rule_files=[RULES],
            scrape_interval="2s",  # drift is computed on scrape: a busy laptop needs the time
            evaluation_interval="2s",
        )
        self.prometheus.start(timeout=60)
        assert self.prometheus.process is not None
        self._record(self.prometheus.process)
        self.say(
            f"Prometheus on {self.prometheus.url} (pid {self.prometheus.pid}), rules "
            f"{RULES.relative_to(REPO_ROOT)}"
        )
        self._start_operator()
        self.pods = PodProcesses(
            namespace=self.ns,
            models_root=self.models_root,
            prometheus=self.prometheus,
            log_dir=self.logs,
            say=self.say,
            service_env=SERVICE_ENV,
            on_start=self._record_service,
        )
        self._clear_earlier_demo()

    def _fresh_workdir(self) -> None:
        """Empty the workdir of an earlier run; never a directory the demo did not make."""
        marker = self.workdir / ".demo-local"
        if self.workdir.exists() and any(self.workdir.iterdir()):
            if not marker.exists():
                raise DemoError(f"{self.workdir} is not empty and not the demo's: not wiping it")
            stopped = self.ledger.stop()
            if stopped:
                self.say(f"stopped what an earlier, killed run left: {', '.join(stopped)}")
            shutil.rmtree(self.workdir)
        self.logs.mkdir(parents=True)
        marker.write_text("logs and state of python -m devstack.demo; wiped by its next run\n")

    def _control_plane(self) -> Cluster:
        if self.opts.kubeconfig:
            cluster = Cluster.from_kubeconfig(self.opts.kubeconfig)
            cluster.wait_ready()
            cluster.install_monitoring_crds()
            self.say(f"using the running control plane of {cluster.kubeconfig} (left running)")
            return cluster
        run_dir = self.opts.rig_dir.resolve()
        if ControlPlane.running(run_dir):
            cluster = Cluster.from_kubeconfig(run_dir / "kubeconfig")
            cluster.wait_ready()
            cluster.install_monitoring_crds()
            self.say(f"using the control plane already running in {run_dir}; left running")
            return cluster
        if ControlPlane.recorded(run_dir):
            ControlPlane.stop_recorded(run_dir)
        self.say(
            f"starting the control plane in {run_dir}: etcd, kube-apiserver, "
            "kube-controller-manager, kube-scheduler, kwok (a minute on a busy laptop)"
        )
        # Detached only when it is to outlive this process; else it dies with it.
        self.plane = ControlPlane(run_dir, detach=self.opts.keep_cluster)
        cluster = self.plane.start()  # its PIDs live in run_dir/state.json, as make cluster-up's
        self.plane_procs = [p.record() for p in self.plane.procs]
        self.say(
            f"API server {cluster.server}; nodes {', '.join(cluster.nodes)} (KWOK, simulated); "
            + ", ".join(f"{p.name} pid {p.pid}" for p in self.plane.procs)
        )
        return cluster

    def _start_operator(self) -> None:
        assert self.cluster is not None
        assert self.prometheus is not None
        self.operator = OperatorProcess(
            self.cluster,
            self.logs,
            prometheus_url=self.prometheus.url,
            kubeconfig=self.cluster.kubeconfig,
            settings={
                "MODELOPS_OPERATOR_NAMESPACES": json.dumps([self.ns]),
                "MODELOPS_OPERATOR_TICK_SECONDS": OPERATOR_TICK,
                "MODELOPS_OPERATOR_RESYNC_SECONDS": OPERATOR_RESYNC,
            },
        )
        self.operator.start()
        assert self.operator.process is not None
        self._record(self.operator.process)
        self.say(
            f"operator: python -m modelops_operator, pid {self.operator.pid}, watching namespace "
            f"{self.ns}; it queries {self.prometheus.url}; metrics on "
            f":{self.operator.metrics_port}; log {self.operator.log}"
        )
        self.say(
            "(it runs with the rig's admin credentials; in a cluster, with the least-privilege "
            "RBAC of manifests/rbac/)"
        )

    def _record_service(self, name: str, svc: ServiceProcess) -> None:
        self._record(dataclasses.replace(svc.process, name=name))

    def _record(self, proc: Process) -> None:
        self.procs.append(proc)
        self.ledger.write(self.procs)

    def _clear_earlier_demo(self) -> None:
        """A kept cluster still holds the last run's ModelDeployments: start from none."""
        assert self.cluster is not None
        names = [HEALTHY, FAILING]
        proc = self.cluster.kubectl("get", "md", *names, "-n", self.ns, "-o", "name", check=False)
        if not proc.stdout.strip():
            return
        earlier = " ".join(proc.stdout.split())
        self.say(f"deleting the ModelDeployments of an earlier run: {earlier}")
        self.cluster.kubectl(
            "delete", "md", *names, "-n", self.ns, "--ignore-not-found", "--timeout=120s"
        )
        selector = "app.kubernetes.io/instance in (" + ",".join(names) + ")"
        self._wait(
            lambda: not self.cluster.get("pods", "-n", self.ns, "-l", selector)["items"],
            "their pods to be gone",
            timeout=120,
        )

    # --- act 1: version 1 of two models

    def _manifest(self, name: str, version: str) -> dict[str, Any]:
        card = json.loads((self.models_root / name / version / "model.json").read_text())
        return {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "model": {
                    "name": name,
                    "version": version,
                    "image": IMAGE,
                    "artifact": f"/models/{name}/{version}",
                    "sha256": card["sha256"],
                },
                "replicas": 2,
                "rollout": {
                    "strategy": "Canary",
                    "steps": STEPS,
                    "interval": INTERVAL,
                    "analysis": ANALYSIS,
                    "compare": COMPARE,
                    "autoRollback": True,
                },
            },
        }

    def _act_one(self) -> None:
        assert self.cluster is not None
        self.heading("Act 1: two ModelDeployments at version 1")
        for name in (HEALTHY, FAILING):
            path = self.workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(self._manifest(name, "1"), sort_keys=False))
            if name == HEALTHY:
                print(f"  # {path}", file=self.out)
                for line in path.read_text().splitlines():
                    print(f"    {line}", file=self.out)
            self.show(["apply", "-f", str(path)], self.cluster.kubectl("apply", "-f", path).stdout)

        def serving(snap: dict[str, list]) -> str | None:
            mds = {m["metadata"]["name"]: m.get("status") or {} for m in snap["ModelDeployment"]}
            ready = all(
                mds.get(n, {}).get("phase") == "Ready" and mds[n].get("stableVersion") == "1"
                for n in (HEALTHY, FAILING)
            )
            services = [f"{n}-model-service" for n in (HEALTHY, FAILING)]
            routed = self.pods is not None and all(self.pods.routes.get(s) for s in services)
            return "ready" if ready and routed else None

        self.watch(serving, "both at version 1, Ready, with their processes serving")
        labels = "modelops.io/version,modelops.io/track"
        self.show(["get", "pods", "-n", self.ns, "-o", "wide", "-L", labels])
        assert self.pods is not None
        self.say("the local processes behind those pods:\n" + "\n".join(self.pods.describe()))
        for name in (HEALTHY, FAILING):
            self._start_traffic(name)
        self._wait_for_figures()

    def _start_traffic(self, model: str) -> None:
        service = f"{model}-model-service"
        proxy = self.proxies[service]
        rows = self._rows(model)
        log = self.logs / f"traffic-{model}.log"
        cmd = [
            sys.executable, "-m", "loadtest", "--url", proxy.url, "--scenario", "normal",
            "--rate", f"{self.opts.traffic_rate:g}", "--duration", str(TRAFFIC_SECONDS),
            "--rows", str(rows),
        ]  # fmt: skip
        proc = spawn(f"traffic {model}", cmd, log, cwd=REPO_ROOT)
        self.traffic[model] = proc
        self._record(proc)
        self.say(
            f"traffic: python -m loadtest, {self.opts.traffic_rate:g} req/s of real {model} rows "
            f"to Service {self.ns}/{service} (stand-in on {proxy.url}), pid {proc.pid}, "
            f"progress in {log}"
        )

    def _rows(self, model: str) -> Path:
        """The whole data set as JSON Lines: production traffic shaped like all the data."""
        path = self.workdir / f"{model}-rows.jsonl"
        with path.open("w") as f:
            f.writelines(json.dumps(row) + "\n" for row in dataset_rows(model))
        return path

    def _wait_for_figures(self) -> None:
        assert self.prometheus is not None
        expr = f'{recording_rules.REQUESTS_RATE1M.name}{{namespace="{self.ns}"}} > 0'

        def flowing(_snap: dict[str, list]) -> str | None:
            for model, proc in self.traffic.items():
                if not proc.alive():
                    raise DemoError(
                        f"the traffic generator for {model} exited:\n"
                        f"{self._tail(self.logs / f'traffic-{model}.log')}"
                    )
            return "flowing" if len(self.prometheus.query(expr)) >= 2 else None

        self.watch(flowing, "Prometheus to see the requests (recording rules)", timeout=120)
        self.say("what the canary analysis reads, per model and version (recording rules):")
        self._print_figures()

    def _print_figures(self) -> None:
        assert self.prometheus is not None
        rows: dict[tuple[str, str], dict[str, float]] = {}
        for label, rule in FIGURES:
            for sample in self.prometheus.query(f'{rule}{{namespace="{self.ns}"}}'):
                key = (sample["metric"].get("model", "?"), sample["metric"].get("version", "?"))
                rows.setdefault(key, {})[label] = sample["value"]
        print("    (Prometheus, rates over the last minute)", file=self.out)
        header = f"    {'model':10} {'version':8}" + "".join(f"{lbl:>15}" for lbl, _ in FIGURES)
        print(header, file=self.out)
        for (model, version), values in sorted(rows.items()):
            cells = "".join(
                f"{values[lbl]:>15.4g}" if lbl in values else f"{'-':>15}" for lbl, _ in FIGURES
            )
            print(f"    {model:10} {version:8}{cells}", file=self.out)
        self.out.flush()

    # --- acts 2 to 4: a canary each

    def _act_canary(self, number: int, act: Act) -> None:
        assert self.cluster is not None
        name, version, expected = act.name, act.canary, act.expected
        self.heading(f"Act {number}: {act.key} as a canary (expected: {expected})")
        self.say(act.why)
        self.say(
            f"steps {STEPS} % of the replicas, {INTERVAL} apart; each step is judged on the "
            f"last 30s: maxErrorRate {ANALYSIS['maxErrorRate']}, maxLatencyP95Seconds "
            f"{ANALYSIS['maxLatencyP95Seconds']}, maxDriftScore {ANALYSIS['maxDriftScore']}, "
            f"minRequests {ANALYSIS['minRequests']}; against the stable version: "
            + ", ".join(f"{k} {v}" for k, v in COMPARE.items())
        )
        card = json.loads((self.models_root / name / version / "model.json").read_text())
        patch = json.dumps(
            {"spec": {"model": {"version": version, "artifact": f"/models/{name}/{version}",
                                "sha256": card["sha256"]}}},
            separators=(",", ":"),
        )  # fmt: skip
        args = ["patch", "md", name, "-n", self.ns, "--type", "merge", "-p", patch]
        self.show(args, self.cluster.kubectl(*args).stdout)
        generation = self.cluster.get("md", name, "-n", self.ns)["metadata"]["generation"]

        def outcome(snap: dict[str, list]) -> str | None:
            md = next((m for m in snap["ModelDeployment"] if m["metadata"]["name"] == name), None)
            status = (md or {}).get("status") or {}
            if (status.get("observedGeneration") or 0) < generation:
                return None
            if status.get("phase") == "RolledBack":
                return "rolled back"
            if (
                status.get("phase") == "Ready"
                and status.get("stableVersion") == version
                and not status.get("canaryVersion")
            ):
                return "promoted"
            return None

        got = self.watch(outcome, f"{name} to be promoted or rolled back")
        status = self.cluster.get("md", name, "-n", self.ns).get("status") or {}
        reason = (status.get("lastAnalysis") or {}).get("reason")
        self.results[act.key] = {
            "expected": f"{expected} ({' or '.join(act.reasons)})",
            "got": f"{got} ({reason})",
            "ok": got == expected and reason in act.reasons,
            "stableVersion": status.get("stableVersion"),
            "phase": status.get("phase"),
        }
        self._print_figures()
        self.show(
            [
                "get", "events", "-n", self.ns, "--field-selector",
                f"involvedObject.kind=ModelDeployment,involvedObject.name={name}",
                "--sort-by=.lastTimestamp",
            ]
        )  # fmt: skip

    def _finale(self) -> None:
        assert self.cluster is not None
        self.heading("Where it ended")
        self.show(["get", "modeldeployments", "-n", self.ns])
        history = '{range .status.history[*]}{.version}  {.result}  {.reason}{"\\n"}{end}'
        for name in (HEALTHY, FAILING):
            self.show(["get", "md", name, "-n", self.ns, "-o", f"jsonpath={history}"])
        self.heading("Result: " + ("as designed" if self.as_designed else "NOT as designed"))
        for name, r in self.results.items():
            self.say(f"{name}: expected {r['expected']}, got {r['got']}")
        hints = [
            f"kubectl describe md {FAILING} -n {self.ns}     # the Warning Event and the figures",
            f"kubectl get md {FAILING} -n {self.ns} -o yaml  # status.lastAnalysis: the PromQL",
        ]
        if self.prometheus is not None:
            hints.append(f"Prometheus: {self.prometheus.url}/graph (rules under /rules)")
        hints += [f"curl -s {p.url}/v1/model   # Service {n}" for n, p in self.proxies.items()]
        if self.opts.interactive:
            self.say("everything still runs until you press Enter. Try:\n" + "\n".join(hints))
            self.pause("Press Enter to stop everything the demo started")

    # --- the loop: read the namespace, keep processes in line, narrate

    def snapshot(self) -> dict[str, list]:
        assert self.cluster is not None
        snap: dict[str, list] = {"Pod": [], "Service": [], "ModelDeployment": [], "Event": []}
        try:
            proc = self.cluster.kubectl(
                "get", "pods,services,modeldeployments,events", "-n", self.ns, "-o", "json",
                "--request-timeout=20s", timeout=30,
            )  # fmt: skip
            items = json.loads(proc.stdout)
        except (CommandError, subprocess.TimeoutExpired):
            return snap  # an API hiccup: try again next second
        for item in items["items"]:
            snap.setdefault(item["kind"], []).append(item)
        return snap

    def tick(self) -> dict[str, list]:
        snap = self.snapshot()
        if self.operator is not None and not self.operator.running():
            raise DemoError(f"the operator exited:\n{self._tail(self.logs / 'operator.log')}")
        for svc in snap["Service"]:
            name = svc["metadata"]["name"]
            if name not in self.proxies and self.pods is not None:
                self.proxies[name] = ServiceProxy(name, self._routes_of(name))
                self.say(
                    f"Service {self.ns}/{name} (ClusterIP {svc['spec'].get('clusterIP')}, which "
                    f"nothing here routes) -> loopback stand-in {self.proxies[name].url}"
                )
        if self.pods is not None:
            self.pods.sync(snap["Pod"], snap["Service"])
        self._narrate(snap)
        return snap

    def _routes_of(self, service: str) -> Callable[[], list[str]]:
        pods = self.pods
        assert pods is not None
        return lambda: pods.routes.get(service, [])

    def watch(
        self, until: Callable[[dict[str, list]], str | None], what: str, timeout: float = 0
    ) -> str:
        timeout = timeout or self.opts.act_timeout
        self.say(f"waiting for {what} (at most {timeout:.0f}s)")
        deadline = time.monotonic() + timeout
        while True:
            snap = self.tick()
            result = until(snap)
            if result:
                return result
            if time.monotonic() > deadline:
                raise DemoError(
                    f"timed out waiting for {what}\n"
                    + self._md_summary(snap)
                    + "\n"
                    + self._tail(self.logs / "operator.log")
                )
            time.sleep(1.0)

    def _wait(self, probe: Callable[[], Any], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                raise DemoError(f"timed out waiting for {what}")
            time.sleep(1.0)

    def _narrate(self, snap: dict[str, list]) -> None:
        events = sorted(
            (e for e in snap["Event"] if e["involvedObject"].get("kind") == "ModelDeployment"),
            key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "",
        )
        for e in events:
            if e["metadata"]["uid"] in self._seen_events:
                continue
            self._seen_events.add(e["metadata"]["uid"])
            self.say(
                f"Event {e['type']} {e['reason']} on modeldeployment/"
                f"{e['involvedObject']['name']}: {e['message']}"
            )
        changed = False
        for md in sorted(snap["ModelDeployment"], key=lambda m: m["metadata"]["name"]):
            name = md["metadata"]["name"]
            status = md.get("status") or {}
            row = tuple(
                status.get(k)
                for k in ("phase", "stableVersion", "canaryVersion", "canaryWeight", "ready")
            )
            if self._md_rows.get(name) != row:
                self._md_rows[name] = row
                changed = True
            analysis = status.get("lastAnalysis")
            if analysis:
                key = (analysis.get("result"), analysis.get("reason"), analysis.get("weight"))
                if analysis.get("result") in ("Pass", "Fail"):
                    key += (analysis.get("at"),)
                if self._analyses.get(name) != key:
                    self._analyses[name] = key
                    self.say(
                        f"analysis of {name} v{analysis.get('version')} at "
                        f"{analysis.get('weight')}%: {analysis.get('result')} "
                        f"({analysis.get('reason')}): {analysis.get('message')}"
                    )
        if changed:
            self.show(["get", "modeldeployments", "-n", self.ns])

    def _md_summary(self, snap: dict[str, list]) -> str:
        return "\n".join(
            f"{m['metadata']['name']}: {json.dumps(m.get('status') or {}, indent=1)}"
            for m in snap["ModelDeployment"]
        )

    @staticmethod
    def _tail(path: Path, lines: int = 30) -> str:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return f"(no log at {path})"
        return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])

    # --- cleanup: every process this run started, by PID

    def cleanup(self) -> None:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C waits
        try:
            self._cleanup()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _cleanup(self) -> None:
        stopped: list[str] = []
        for model, proc in self.traffic.items():
            proc.stop()
            stopped.append(f"traffic {model} ({proc.pid})")
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
        if self.prometheus is not None and self.prometheus.pid is not None:
            self.prometheus.stop()
            stopped.append(f"prometheus ({self.prometheus.pid})")
        if self.plane is not None:
            if self.opts.keep_cluster:
                down = "make cluster-down"
                if self.plane.run_dir.resolve() != (RUN_ROOT / "cluster").resolve():
                    down = f"MODELOPS_RIG_DIR={self.plane.run_dir} {down}"
                self.say(
                    f"the control plane keeps running (--keep-cluster): KUBECONFIG="
                    f"{self.plane.kubeconfig}; `{down}` stops it. With the operator gone "
                    "the ModelDeployments stand still (`make run-operator` resumes them)."
                )
            else:
                stopped += [f"{p.name} ({p.pid})" for p in self.plane.procs]
                self.plane.stop(remove=True)
        if stopped:
            self.say("stopped by PID: " + ", ".join(stopped))
        # everything recorded is gone now: nothing for the next run to recover
        if not any(p.alive() for p in self.procs):
            with contextlib.suppress(OSError):
                self.ledger.path.unlink()

    def _write_summary(self) -> None:
        if self.opts.summary is None:
            return
        summary = {
            "namespace": self.ns,
            "kubeconfig": str(self.cluster.kubeconfig) if self.cluster else None,
            "results": self.results,
            "processes": [p.record() for p in self.procs],
            "control_plane": self.plane_procs,
            "cluster_kept": bool(self.plane and self.opts.keep_cluster),
        }
        self.opts.summary.write_text(json.dumps(summary, indent=2))
