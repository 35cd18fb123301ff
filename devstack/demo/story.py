"""The narrated demo: start everything, show a canary promoted and one rolled back, clean up.

Acts:
  0. what runs where (the stage: a real node where the machine can run containers, KWOK
     nodes with local processes where it cannot); everything up to the operator
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
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from devstack.canary import dataset_rows
from devstack.cluster import Cluster, CommandError
from devstack.control_plane import ControlPlane
from devstack.demo import real_node
from devstack.demo.real_node import RealNodeStage
from devstack.demo.simulated import SimulatedStage
from devstack.demo.stage import Context, DemoError, Options, Snapshot, Stage, tail
from devstack.images import IMAGE_TAG
from devstack.paths import MODELDEPLOYMENT_CRD, MODELS_ROOT, REPO_ROOT, TOOLS_BIN, DevstackError
from devstack.processes import Ledger, Process, spawn
from devstack.service_process import ensure_demo_models
from modelops_operator.models import parse_duration
from modelops_service import recording_rules

# the image `make images` builds: KWOK runs nothing of it, the real node runs it
IMAGE = f"model-service:{IMAGE_TAG}"
HEALTHY = "diabetes"  # 1 -> 3: v1 with more rounds: passes the analysis; then 3 -> 2 (biased)
FAILING = "wine"  # 1 -> 2: trained on low-alcohol wines only: live inputs drift

# The canary policy of both ModelDeployments. Short steps (the stage's interval) so the demo
# takes minutes. maxDriftScore 0.25 is the usual PSI line for a significant shift.
# maxLatencyP95Seconds is generous: a laptop here runs a whole control plane too.
STEPS = [50, 100]
ANALYSIS = {
    "maxErrorRate": 0.05,
    "maxLatencyP95Seconds": 1.0,
    "maxDriftScore": 0.25,
    # The prediction shift compares the mean predictions of two random samples of rows: at 20
    # requests a side their noise alone reached 0.10 (the healthy version 3 was rolled back);
    # at 100 it is a fraction of that, while the biased version 2 stays near 0.2.
    "minRequests": 100,
}
# The canary against the stable version over the same seconds. The latency ratio is generous
# for the same reason as maxLatencyP95Seconds.
TRAFFIC_SECONDS = 1800  # the generator's own bound; it is stopped when the demo ends
COMPARE = {"maxErrorRateDelta": 0.02, "maxLatencyP95Ratio": 2.0, "maxPredictionShift": 0.1}
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
        "analysis fails on whichever is seen first (drift needs a full enough window) and "
        "the operator rolls it back."),
    Act(HEALTHY, "3", "2", "rolled back", ("PredictionShift",),
        "diabetes version 2 was trained on targets inflated by 20%. Its errors, latency and "
        "inputs are fine, so every absolute threshold passes; against the stable version in "
        "the same seconds its mean prediction is about 20% higher (maxPredictionShift 0.1): "
        "rolled back, reason PredictionShift."),
)  # fmt: skip


def decision_seconds(interval: str, deadline: str, steps: int) -> float:
    """How long the operator may take to promote or roll back a canary: each step is judged
    from its interval on and rolled back at the latest when the analysis stays inconclusive
    for the deadline; a minute more for the canary's pods to start and the last tick."""
    return steps * (parse_duration(interval) + parse_duration(deadline)) + 60


def analysis_line(analysis: dict[str, Any]) -> str:
    """A status.lastAnalysis in one line: the version and step, the verdict and why."""
    return (
        f"v{analysis.get('version')} at {analysis.get('weight')}%: {analysis.get('result')} "
        f"({analysis.get('reason')}): {analysis.get('message')}"
    )


def md_digest(md: dict[str, Any]) -> str:
    """A ModelDeployment's status in a few lines: where its rollout stands and why."""
    status = md.get("status") or {}
    meta = md["metadata"]
    lines = [
        f"{meta['name']}: {status.get('phase')}, stable {status.get('stableVersion')}, ready "
        f"{status.get('ready')}, generation {meta.get('generation')} (observed "
        f"{status.get('observedGeneration')})"
    ]
    canary = status.get("canary")
    if canary:
        lines.append(
            f"  canary {canary['model'].get('version')} at step {canary.get('step')} "
            f"({status.get('canaryWeight')}%) since {canary.get('stepStartedAt')}, "
            f"inconclusive since {canary.get('inconclusiveSince') or '-'}"
        )
    analysis = status.get("lastAnalysis")
    if analysis:
        lines.append(f"  last analysis {analysis.get('at')} of {analysis_line(analysis)}")
    elif canary:
        lines.append("  no analysis of this canary yet")
    lines += [
        f"  {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}"
        for c in status.get("conditions") or []
    ]
    return "\n".join(lines)


def choose_stage(opts: Options) -> tuple[type[SimulatedStage] | type[RealNodeStage], str]:
    """The stage --node asks for (auto: the real node where this machine can run it), and
    why, in words for the banner."""
    if opts.node == "kwok":
        return SimulatedStage, "--node kwok"
    if opts.node == "real":
        return RealNodeStage, "--node real"
    if opts.kubeconfig:
        return SimulatedStage, "--kubeconfig names a running control plane (KWOK nodes)"
    rig = opts.rig_dir.resolve()
    if ControlPlane.running(rig) and not any(
        p.name == "kubelet" for p in ControlPlane.recorded(rig)
    ):
        return SimulatedStage, f"the rig already running in {rig} has KWOK nodes"
    why = real_node.unavailable()
    if why:
        return SimulatedStage, f"this machine cannot run the real node: {why}"
    return RealNodeStage, "this machine can run containers (root, the node's tools, Docker)"


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
        kind, self.why_stage = choose_stage(options)
        context = Context(options, self.workdir, self.logs, self.say, self._record)
        self.stage: Stage = kind(context)
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
        self.heading(f"modelops-bundle on the {self.stage.mode} stage: what runs where")
        print(
            f"""\
  stage          {self.stage.mode}: {self.why_stage}
{self.stage.banner()}

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
        self.cluster = self.stage.start()
        self.say(
            "watch it in another shell:\n"
            f"  export KUBECONFIG={self.cluster.kubeconfig} PATH={TOOLS_BIN}:$PATH\n"
            f"  kubectl get modeldeployments -n {self.ns} -w"
        )
        crd = MODELDEPLOYMENT_CRD.relative_to(REPO_ROOT)
        self.say(f"the ModelDeployment CRD ({crd}) is installed")
        self.cluster.create_namespace(self.ns)
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
        cluster = self.cluster
        self._wait(
            lambda: not cluster.get("pods", "-n", self.ns, "-l", selector)["items"],
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
                    "interval": self.stage.interval,
                    "analysis": {**ANALYSIS, "deadline": self.stage.deadline},
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

        services = [f"{n}-model-service" for n in (HEALTHY, FAILING)]

        def serving(snap: Snapshot) -> str | None:
            mds = {m["metadata"]["name"]: m.get("status") or {} for m in snap["ModelDeployment"]}
            ready = all(
                mds.get(n, {}).get("phase") == "Ready" and mds[n].get("stableVersion") == "1"
                for n in (HEALTHY, FAILING)
            )
            return "ready" if ready and self.stage.serving(snap, services) else None

        self.watch(serving, "both at version 1, Ready, with their pods serving")
        labels = "modelops.io/version,modelops.io/track"
        self.show(["get", "pods", "-n", self.ns, "-o", "wide", "-L", labels])
        self.say(self.stage.describe())
        for name, service in zip((HEALTHY, FAILING), services, strict=True):
            log = self.logs / f"traffic-{name}.log"
            self.traffic[name] = self._start_traffic(name, service, log)
        self._wait_for_figures()

    def _start_traffic(self, model: str, service: str, log: Path) -> Process:
        route = self.stage.traffic_route(service)
        cmd = [
            *route.argv_prefix, sys.executable, "-m", "loadtest", "--url", route.url,
            "--scenario", "normal", "--rate", f"{self.opts.traffic_rate:g}",
            "--duration", str(TRAFFIC_SECONDS), "--rows", str(self._rows(model)),
            *(["--allow-remote"] if route.remote else []),
        ]  # fmt: skip
        proc = spawn(f"traffic {model}", cmd, log, cwd=REPO_ROOT)
        self._record(proc)
        self.say(
            f"traffic: python -m loadtest{route.via}, {self.opts.traffic_rate:g} req/s of real "
            f"{model} rows to Service {self.ns}/{service} ({route.shown}), pid {proc.pid}, "
            f"progress in {log}"
        )
        return proc

    def _rows(self, model: str) -> Path:
        """The whole data set as JSON Lines: production traffic shaped like all the data."""
        path = self.workdir / f"{model}-rows.jsonl"
        with path.open("w") as f:
            f.writelines(json.dumps(row) + "\n" for row in dataset_rows(model))
        return path

    def _wait_for_figures(self) -> None:
        expr = f'{recording_rules.REQUESTS_RATE1M.name}{{namespace="{self.ns}"}} > 0'

        def flowing(_snap: dict[str, list]) -> str | None:
            for model, proc in self.traffic.items():
                if not proc.alive():
                    raise DemoError(
                        f"the traffic generator for {model} exited:\n"
                        f"{tail(self.logs / f'traffic-{model}.log')}"
                    )
            return "flowing" if len(self.stage.prometheus.query(expr)) >= 2 else None

        self.watch(flowing, "Prometheus to see the requests (recording rules)", timeout=120)
        self.say("what the canary analysis reads, per model and version (recording rules):")
        self._print_figures()

    def _print_figures(self) -> None:
        print(self._figures(), file=self.out)
        self.out.flush()

    def _figures(self) -> str:
        """The recording rules per model and version, as the canary analysis reads them."""
        rows: dict[tuple[str, str], dict[str, float]] = {}
        for label, rule in FIGURES:
            for sample in self.stage.prometheus.query(f'{rule}{{namespace="{self.ns}"}}'):
                key = (sample["metric"].get("model", "?"), sample["metric"].get("version", "?"))
                rows.setdefault(key, {})[label] = sample["value"]
        lines = [
            "    (Prometheus, rates over the last minute)",
            f"    {'model':10} {'version':8}" + "".join(f"{lbl:>15}" for lbl, _ in FIGURES),
        ]
        for (model, version), values in sorted(rows.items()):
            cells = "".join(
                f"{values[lbl]:>15.4g}" if lbl in values else f"{'-':>15}" for lbl, _ in FIGURES
            )
            lines.append(f"    {model:10} {version:8}{cells}")
        return "\n".join(lines)

    def _scrapes(self) -> str:
        """Prometheus' targets in the namespace: whether each pod's last scrape answered, how
        long it took, at how many 15 s steps of the last 5 minutes it was down (a rate's gap)."""
        sel = f'{{namespace="{self.ns}"}}'
        columns = {
            "up": f"up{sel}",
            "seconds": f"scrape_duration_seconds{sel}",
            "down 5m": f"count_over_time((up{sel} == 0)[5m:15s])",
        }
        rows: dict[str, dict[str, float]] = {}
        for label, expr in columns.items():
            for sample in self.stage.prometheus.query(expr):
                pod = sample["metric"].get("pod", sample["metric"].get("instance", "?"))
                rows.setdefault(pod, {})[label] = sample["value"]
        lines = [
            f"    {pod}: " + ", ".join(f"{k} {v.get(k, 0):.3g}" for k in columns)
            for pod, v in sorted(rows.items())
        ]
        return "\n".join(["    (Prometheus, scrape targets)", *lines])

    def _rule_groups(self) -> str:
        """The rule groups of the models' recording rules: when each was last evaluated and
        how long that took (a group late or slow holds back every figure of the analysis)."""
        lines = ["    (Prometheus, rule groups: last evaluation, seconds it took)"]
        for group in self.stage.prometheus.api("rules", type="record")["groups"]:
            if any(r["name"].startswith(recording_rules.LEVEL) for r in group["rules"]):
                lines.append(
                    f"    {group['name']}: {group.get('lastEvaluation')}, "
                    f"{group.get('evaluationTime', 0):.3g}"
                )
        return "\n".join(lines)

    def _why_waiting(self, snap: dict[str, list]) -> str:
        """What a timeout says: each ModelDeployment in brief (its last analysis first of all),
        what Prometheus holds for the analysis, then the operator's last lines."""
        parts = [md_digest(m) for m in snap["ModelDeployment"]]
        try:
            parts += [self._figures(), self._scrapes(), self._rule_groups()]
        except Exception as exc:  # a timeout explains itself even when Prometheus is the cause
            parts.append(f"    Prometheus did not answer: {exc}")
        return "\n".join([*parts, self.stage.operator_log()])

    # --- acts 2 to 4: a canary each

    def _act_canary(self, number: int, act: Act) -> None:
        assert self.cluster is not None
        name, version, expected = act.name, act.canary, act.expected
        self.heading(f"Act {number}: {act.key} as a canary (expected: {expected})")
        self.say(act.why)
        self.say(
            f"steps {STEPS} % of the replicas, {self.stage.interval} apart; each step is judged "
            f"on the last 30s: maxErrorRate {ANALYSIS['maxErrorRate']}, maxLatencyP95Seconds "
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

        bound = decision_seconds(self.stage.interval, self.stage.deadline, len(STEPS))
        got = self.watch(
            outcome, f"{name} to be promoted or rolled back", max(self.opts.act_timeout, bound)
        )
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
        hints += self.stage.hints()
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

    def tick(self) -> Snapshot:
        snap = self.snapshot()
        self.stage.tick(snap)
        self._narrate(snap)
        return snap

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
                raise DemoError(f"timed out waiting for {what}\n{self._why_waiting(snap)}")
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
                key: tuple = (
                    analysis.get("result"), analysis.get("reason"), analysis.get("weight"),
                )  # fmt: skip
                if analysis.get("result") in ("Pass", "Fail"):
                    key += (analysis.get("at"),)
                if self._analyses.get(name) != key:
                    self._analyses[name] = key
                    self.say(f"analysis of {name} {analysis_line(analysis)}")
        if changed:
            self.show(["get", "modeldeployments", "-n", self.ns])

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
        stopped += self.stage.stop()
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
            "mode": self.stage.mode,
            "namespace": self.ns,
            "kubeconfig": str(self.cluster.kubeconfig) if self.cluster else None,
            "results": self.results,
            "processes": [p.record() for p in self.procs],
            **self.stage.summary(),
        }
        self.opts.summary.write_text(json.dumps(summary, indent=2))
