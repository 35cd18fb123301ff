"""A REAL Prometheus (and optionally a real Alertmanager) on loopback, for tests of any tier.

    from devstack.prometheus import Prometheus, Target, Alertmanager

    with Alertmanager(workdir / "am") as am, Prometheus(
        workdir / "prom",
        targets=[Target("127.0.0.1:8081", {"namespace": "models"})],
        rule_files=[Path("alerts/modelops.rules.yaml")],
        alertmanager=am,
    ) as prom:
        prom.wait_for_targets(up=1)
        prom.wait_for('model_version:requests:rate1m{model="wine"} > 0')
        prom.query_value('model_version:error_ratio:rate1m{model="wine", version="2"}')
        prom.wait_for_alert("ModelHighErrorRatio", {"version": "2"})
        am.wait_for_alert("ModelHighErrorRatio")

API (small on purpose):

- ``Target(address, labels={}, job="model-service")``: one scrape target; ``labels`` become
  target labels on every series scraped from it (e.g. ``namespace``, ``modelops_io_track``),
  as a ServiceMonitor's target labels would.
- ``Prometheus(workdir, targets=(), rule_files=(), *, scrape_interval="1s",
  evaluation_interval="1s", alertmanager=None, binary=None)``: ``start()`` / ``stop()`` (or
  ``with``); ``url``; ``set_targets(targets)`` rewrites the file-based service discovery
  (picked up within about a second, no restart); ``reload()`` re-reads config and rule files.
  Queries: ``query(expr)`` -> the instant vector's samples (``[{"metric": {...}, "value":
  float}]``), ``query_value(expr)`` -> the single sample's value or None,
  ``wait_for(expr, predicate=non-empty, timeout)`` -> samples once ``predicate`` holds,
  ``targets()``, ``wait_for_targets(up=N)``, ``rules()``, ``alerts(state=...)``,
  ``wait_for_alert(name, labels, state="firing")``.
- ``Alertmanager(workdir, config=None, *, binary=None)``: ``config`` is a dict, YAML text or
  a path (default: one route to a receiver with no integrations); ``start()`` / ``stop()``;
  ``url``; ``alerts(**filters)`` (``/api/v2/alerts``), ``wait_for_alert(name, labels)``.
- ``PrometheusError``: a failed start (with the log tail) or a query error.

Each process runs in its own session, logs to ``<workdir>/<name>.log`` and is stopped by its
PID (devstack.processes). Binaries are looked up in .cache/bin, then PATH (``make tools``
installs Debian's prometheus, promtool and alertmanager, whose binary Debian calls
prometheus-alertmanager).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack.paths import DevstackError, find_tool
from devstack.processes import HOST, Process, on_free_port, spawn

__all__ = [
    "Alertmanager",
    "AlertmanagerAPI",
    "Prometheus",
    "PrometheusAPI",
    "PrometheusError",
    "Target",
]

START_TIMEOUT = 30.0
STOP_GRACE = 10.0


class PrometheusError(DevstackError):
    """A process did not start, or an API call failed."""


def _http_json(
    url: str, *, method: str = "GET", data: bytes | None = None, timeout: float = 10.0
) -> Any:
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            detail = json.loads(body).get("error", body.decode(errors="replace"))
        except (ValueError, AttributeError):
            detail = body.decode(errors="replace")
        raise PrometheusError(f"{method} {url}: HTTP {err.code}: {detail}") from err
    except (OSError, urllib.error.URLError) as err:
        raise PrometheusError(f"{method} {url}: {err}") from err
    return json.loads(body) if body else None


def _labels_match(labels: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    return all(labels.get(k) == v for k, v in (wanted or {}).items())


class _Process:
    """One child process on a loopback port, stopped by PID."""

    name = "process"

    def __init__(self, workdir: str | os.PathLike) -> None:
        self.workdir = Path(workdir)
        self.port = 0
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write configuration files before each start."""

    def start(self, timeout: float = START_TIMEOUT) -> _Process:
        if self.process is not None and self.process.alive():
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)

        def start_on(port: int) -> _Process:
            self.port = port
            self._prepare()
            self.process = spawn(
                self.name, self._command(), self.log_path, cwd=self.workdir, detach=True
            )
            try:
                self._wait_ready(timeout)
            except PrometheusError:
                self.stop()
                raise
            return self

        return on_free_port(start_on)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            code = self.process.returncode
            if code is not None:
                raise PrometheusError(
                    f"{self.name} exited with status {code}\n{self.logs()[-4000:]}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"{self.name} not ready after {timeout:.0f}s on {self.url}\n"
                    f"{self.logs()[-4000:]}"
                )
            time.sleep(0.1)

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM the PID, SIGKILL after ``grace`` seconds. Idempotent."""
        return self.process.stop(grace) if self.process is not None else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Target:
    """A scrape target: ``host:port``, extra target labels, and the job it belongs to."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    job: str = "model-service"
    metrics_path: str = "/metrics"


class AlertmanagerAPI:
    """The HTTP API of an Alertmanager at ``url`` (a local process, or a pod)."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    def alerts(self, active: bool = True, silenced: bool = True, inhibited: bool = True) -> list:
        """Alerts Alertmanager holds (``/api/v2/alerts``): dicts with labels, annotations,
        status ({"state": "active"|"suppressed", "inhibitedBy": [...], ...}), receivers."""
        query = urllib.parse.urlencode(
            {"active": active, "silenced": silenced, "inhibited": inhibited}
        ).lower()
        return _http_json(f"{self.url}/api/v2/alerts?{query}")

    def wait_for_alert(
        self, name: str, labels: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> dict:
        """The first alert named ``name`` with ``labels`` that Alertmanager received."""
        deadline = time.monotonic() + timeout
        while True:
            for alert in self.alerts():
                if alert["labels"].get("alertname") == name and _labels_match(
                    alert["labels"], labels
                ):
                    return alert
            if time.monotonic() > deadline:
                names = sorted({a["labels"].get("alertname", "?") for a in self.alerts()})
                raise TimeoutError(
                    f"Alertmanager did not receive {name} {dict(labels or {})} within "
                    f"{timeout:.0f}s; it holds: {names}"
                )
            time.sleep(0.5)


class PrometheusAPI:
    """The HTTP API of a Prometheus at ``url`` (a local process, or a pod that
    prometheus-operator runs)."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    def api(self, path: str, **params: Any) -> Any:
        """GET ``/api/v1/<path>`` (params as query string); returns ``data``."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        body = _http_json(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))
        if body.get("status") != "success":
            raise PrometheusError(f"{path}: {body}")
        return body["data"]

    def query(self, expr: str, time: float | None = None) -> list[dict]:
        """Evaluate ``expr`` now (or at ``time``): the samples of its instant vector, as
        ``{"metric": {labels}, "value": float}``; a scalar comes back as one sample."""
        data = _http_json(
            f"{self.url}/api/v1/query",
            method="POST",
            data=urllib.parse.urlencode(
                {"query": expr, **({"time": time} if time is not None else {})}
            ).encode(),
        )
        if data.get("status") != "success":
            raise PrometheusError(f"query {expr!r}: {data}")
        result = data["data"]
        if result["resultType"] == "scalar":
            return [{"metric": {}, "value": float(result["result"][1])}]
        if result["resultType"] != "vector":
            raise PrometheusError(f"query {expr!r} returned a {result['resultType']}")
        return [{"metric": s["metric"], "value": float(s["value"][1])} for s in result["result"]]

    def query_value(self, expr: str) -> float | None:
        """The value of a query expected to return at most one sample; None when empty."""
        samples = self.query(expr)
        if len(samples) > 1:
            raise PrometheusError(f"{expr!r} returned {len(samples)} samples, expected one")
        return samples[0]["value"] if samples else None

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict]], bool] = bool,
        timeout: float = 60.0,
        interval: float = 0.5,
    ) -> list[dict]:
        """Poll ``query(expr)`` until ``predicate(samples)`` (default: not empty)."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.query(expr)
            if predicate(samples):
                return samples
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{expr!r} did not satisfy the condition in {timeout:.0f}s: {samples}"
                )
            time.sleep(interval)

    def targets(self) -> list[dict]:
        """Active targets: dicts with labels, health ("up"/"down"/"unknown"), lastError."""
        return self.api("targets", state="active")["activeTargets"]

    def wait_for_targets(self, up: int, timeout: float = 60.0) -> list[dict]:
        """Wait until at least ``up`` targets are healthy."""
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            if sum(t["health"] == "up" for t in targets) >= up:
                return targets
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"fewer than {up} targets up after {timeout:.0f}s: "
                    + ", ".join(f"{t['scrapeUrl']} {t['health']} {t['lastError']}" for t in targets)
                )
            time.sleep(0.5)

    def rules(self) -> list[dict]:
        """The loaded rule groups (``/api/v1/rules``), with each rule's health and lastError."""
        return self.api("rules")["groups"]

    def alerts(self, state: str | None = None) -> list[dict]:
        """Active alerts (pending and firing), optionally only those in ``state``."""
        alerts = self.api("alerts")["alerts"]
        return [a for a in alerts if state is None or a["state"] == state]

    def wait_for_alert(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        state: str = "firing",
        timeout: float = 60.0,
    ) -> dict:
        """The first alert named ``name`` with ``labels`` in ``state``."""
        deadline = time.monotonic() + timeout
        while True:
            for alert in self.alerts(state):
                if alert["labels"].get("alertname") == name and _labels_match(
                    alert["labels"], labels
                ):
                    return alert
            if time.monotonic() > deadline:
                held = sorted(
                    f"{a['labels'].get('alertname')}({a['state']})" for a in self.alerts()
                )
                raise TimeoutError(
                    f"{name} {dict(labels or {})} not {state} after {timeout:.0f}s; active: {held}"
                )
            time.sleep(0.5)


class Alertmanager(_Process, AlertmanagerAPI):
    """A real Alertmanager with clustering off, its state under ``workdir``."""

    name = "alertmanager"

    def __init__(
        self,
        workdir: str | os.PathLike,
        config: Mapping[str, Any] | str | os.PathLike | None = None,
        *,
        binary: str | None = None,
    ) -> None:
        super().__init__(workdir)
        self.binary = binary or str(find_tool("alertmanager", "prometheus-alertmanager"))
        self.config = config

    @property
    def config_path(self) -> Path:
        return self.workdir / "alertmanager.yml"

    def _prepare(self) -> None:
        config = self.config
        if config is None:
            config = {"route": {"receiver": "default"}, "receivers": [{"name": "default"}]}
        if isinstance(config, os.PathLike) or (
            isinstance(config, str) and "\n" not in config and Path(config).is_file()
        ):
            text = Path(config).read_text()
        elif isinstance(config, str):
            text = config
        else:
            text = yaml.safe_dump(dict(config), sort_keys=False)
        self.config_path.write_text(text)

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ]


class Prometheus(_Process, PrometheusAPI):
    """A real Prometheus scraping ``targets`` and evaluating ``rule_files``."""

    name = "prometheus"

    def __init__(
        self,
        workdir: str | os.PathLike,
        targets: Iterable[Target] = (),
        rule_files: Sequence[str | os.PathLike] = (),
        *,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        alertmanager: Alertmanager | str | None = None,
        binary: str | None = None,
    ) -> None:
        super().__init__(workdir)
        self.binary = binary or str(find_tool("prometheus"))
        self._targets = list(targets)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.alertmanager = alertmanager

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def targets_path(self) -> Path:
        return self.workdir / "targets.json"

    def _alertmanager_address(self) -> str | None:
        am = self.alertmanager
        if am is None:
            return None
        url = am.url if isinstance(am, Alertmanager) else am
        return urllib.parse.urlsplit(url).netloc

    def _write_targets(self) -> None:
        groups = [
            {
                "targets": [t.address],
                "labels": {
                    "job": t.job,
                    "__metrics_path__": t.metrics_path,
                    **{k: str(v) for k, v in t.labels.items()},
                },
            }
            for t in self._targets
        ]
        tmp = self.targets_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups, indent=2))
        tmp.replace(self.targets_path)  # atomic: file SD never reads half a file

    def _prepare(self) -> None:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": "targets",
                    "file_sd_configs": [
                        {"files": [str(self.targets_path)], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        address = self._alertmanager_address()
        if address:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [address]}], "timeout": "5s"}]
            }
        self._write_targets()
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
            "--web.enable-lifecycle",
            # Send alerts to Alertmanager at once and often, not every minute.
            "--rules.alert.resend-delay=1s",
            "--log.level=info",
        ]

    # --- control ------------------------------------------------------------------------
    def set_targets(self, targets: Iterable[Target]) -> None:
        """Replace the scrape targets (file-based discovery; seen within about a second)."""
        self._targets = list(targets)
        if self.port:
            self._write_targets()

    def reload(self) -> None:
        """Re-read the configuration and the rule files (``POST /-/reload``)."""
        self._prepare()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
