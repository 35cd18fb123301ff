"""A canary judged by real metrics, without a node: the real service for version 1 and a
canary version of a demo model, a real Prometheus scraping both with the recording rules
of alerts/, and steady prediction traffic to both (`canary_rigs`). The operator's analysis
then queries real figures, as in a cluster.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.paths import RULES
from devstack.prometheus import Prometheus, Target
from devstack.service_process import ServiceProcess, demo_model_dir, start_service

DATASETS = {"wine": "load_wine", "diabetes": "load_diabetes"}


def dataset_rows(model: str) -> list[dict[str, float]]:
    """The scikit-learn data set a demo model was trained on, as rows (imported here:
    scikit-learn is slow to import)."""
    import sklearn.datasets

    data = getattr(sklearn.datasets, DATASETS[model])()
    names = [str(n) for n in data.feature_names]
    return [dict(zip(names, map(float, row), strict=True)) for row in data.data]


@dataclass
class Traffic:
    """Steady single-row prediction traffic to the stable and canary services.

    Each service gets the same row in turn, so the two versions are compared on the
    same inputs. The split is simulated: every service gets `rate`, whatever the step
    (no Service or data plane spreads it by replicas here).
    """

    urls: list[str]
    rows: list[dict[str, float]]
    rate: float = 15.0  # requests per second per service
    sent: int = 0
    stop_flag: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def _run(self) -> None:
        # rows 7, 21, 35, ...: the same spread sample of the data set for both versions from
        # the first requests on (the largest feature PSI of the demo references over the first
        # 50..300 rows stays below 0.35 on it; plain 0, 7, 14, ... reaches 0.85 at 50 rows)
        i = 7
        deadline = time.monotonic() + 600  # bounded, whatever happens
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            for url in self.urls:
                row = self.rows[i % len(self.rows)]
                req = urllib.request.Request(
                    f"{url}/v1/predict",
                    data=json.dumps({"instances": [row]}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with contextlib.suppress(OSError, urllib.error.URLError):
                    urllib.request.urlopen(req, timeout=5).read()
                self.sent += 1
            i += 14
            self.stop_flag.wait(1 / self.rate)

    def __enter__(self) -> Traffic:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        if self.thread:
            self.thread.join(10)


def start_prometheus(workdir: Path, targets: list[str], namespace: str) -> Prometheus:
    """A started real Prometheus that scrapes ``targets`` (service URLs) every second with
    the target label ``namespace`` and evaluates the recording rules of alerts/."""
    prom = Prometheus(
        workdir,
        targets=[Target(t.removeprefix("http://"), {"namespace": namespace}) for t in targets],
        rule_files=[RULES],
    )
    prom.start(timeout=60)
    return prom


@dataclass
class CanaryRig:
    stable: ServiceProcess
    canary: ServiceProcess
    prometheus: Prometheus
    traffic: Traffic


@contextlib.contextmanager
def canary_rigs(namespace: str, prefix: str) -> Iterator[Callable[..., CanaryRig]]:
    """A factory: ``make(model, canary_version="2")`` starts the real service for version 1
    and the canary version of ``model``, a Prometheus scraping both for ``namespace``, and
    traffic to both. Everything it started is stopped on exit, the last started first."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))

        def make(model: str, canary_version: str = "2") -> CanaryRig:
            env = {"MODELOPS_DRIFT_MIN_ROWS": "50", "MODELOPS_DRIFT_REFRESH_SECONDS": "1"}
            stable = start_service(demo_model_dir(model, "1"), env=env, log_dir=workdir)
            stack.callback(stable.stop)
            canary = start_service(demo_model_dir(model, canary_version), env=env, log_dir=workdir)
            stack.callback(canary.stop)
            prom = start_prometheus(workdir, [stable.url, canary.url], namespace)
            stack.callback(prom.stop)
            traffic = stack.enter_context(Traffic([stable.url, canary.url], dataset_rows(model)))
            return CanaryRig(stable, canary, prom, traffic)

        yield make
