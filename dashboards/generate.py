"""The Grafana dashboards of the model service (one source: this module; pure).

`make generate` (hack/generate.py) writes ``DASHBOARDS`` as JSON into the chart, at
charts/model-service/files/dashboards/ (the one committed copy). Three dashboards, stable uids, folder-agnostic (the chart's ConfigMaps pick the folder):

- ``modelops-overview``: the service (traffic, latency, errors, sizes, in-flight,
  memory, CPU, restarts).
- ``modelops-model``: the model (predictions, confidence, classes, drift per feature,
  prediction drift, input errors by reason, batch size, inference time).
- ``modelops-rollout``: versions side by side (stable vs canary) from the recording rules
  the canary analysis reads, and the operator's row (``operator_panels``: phase, step,
  share per track, the last analysis against its thresholds, rollouts by result,
  reconcile errors) from the operator's own metrics.

Variables: ``datasource``, ``namespace``, ``model``, ``version`` (and a hidden ``pod`` for
cluster metrics). Service metrics carry ``model`` and ``version``; ``up`` and the
``process_*`` series carry only target labels, so they are selected by the
``modelops_io_model`` / ``modelops_io_version`` labels that the chart's ServiceMonitor
copies from the pod labels (``podTargetLabels``).
"""

# PromQL reads best on one line: long query strings are allowed here.
# ruff: noqa: E501

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable

from alerts import render as alert_rules
from modelops_operator import metrics as om
from modelops_service import catalog as c
from modelops_service import recording_rules as rr

PREDICT_ROUTES = alert_rules.PREDICTION_ROUTES
SEL = 'namespace=~"$namespace", model=~"$model", version=~"$version"'
TARGET_SEL = 'namespace=~"$namespace", modelops_io_model=~"$model", modelops_io_version=~"$version"'
POD_SEL = 'namespace=~"$namespace", pod=~"$pod", container!="", container!="POD"'
RATE = "$__rate_interval"
# The Deployments behind the selected versions' targets: a pod is named <deployment>-<rs>-<id>.
DEPLOYMENT_OF_TARGETS = (
    f'label_replace(up{{{TARGET_SEL}}}, "deployment", "$1", "pod", "(.+)-[a-z0-9]+-[a-z0-9]+")'
)
DS = {"type": "prometheus", "uid": "${datasource}"}

# Red at the default threshold of the alert (alerts/params.yaml), orange at this share of it.
WARN_SHARE = 0.5


def m(metric: c.Metric, suffix: str = "") -> str:
    """A series name from the catalog: a rename there breaks this generator, not Grafana."""
    name = metric.name + suffix
    if name not in c.catalog_series():
        raise KeyError(f"{name} is not a series of the catalog")
    return name


# --- panel builders ---------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "") -> dict:
    t: dict = {"datasource": DS, "expr": " ".join(expr.split()), "legendFormat": legend}
    if instant:
        t["instant"] = True
        t["range"] = False
    if fmt:
        t["format"] = fmt
    return t


def thresholds(steps: Iterable[tuple[float | None, str]]) -> dict:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


@functools.cache
def alert_threshold(param: str) -> float:
    """The default of an alert's threshold in alerts/params.yaml (the one place it is set)."""
    return float(alert_rules.load_params()[param].default)


def upper(warn: float, crit: float) -> dict:
    return thresholds([(None, "green"), (warn, "orange"), (crit, "red")])


def alert_bands(param: str) -> dict:
    """Orange from WARN_SHARE of the alert's threshold, red from the threshold on."""
    crit = alert_threshold(param)
    return upper(crit * WARN_SHARE, crit)


def panel(
    kind: str,
    title: str,
    targets: list[dict],
    *,
    desc: str,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    th: dict | None = None,
    options: dict | None = None,
    custom: dict | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    **extra: object,
) -> dict:
    defaults: dict = {"unit": unit}
    if th:
        defaults["thresholds"] = th
    if custom:
        defaults["custom"] = custom
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    return {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
        "targets": targets,
        **extra,
    }


def timeseries(
    title: str,
    targets: list[dict],
    *,
    desc: str,
    unit: str = "short",
    stack: str = "",
    threshold_lines: bool = False,
    **kw: object,
) -> dict:
    custom: dict = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": stack, "group": "A"}
    if threshold_lines:
        custom["thresholdsStyle"] = {"mode": "line+area"}
    options = {
        "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel(
        "timeseries", title, targets, desc=desc, unit=unit, custom=custom, options=options, **kw
    )


def stat(
    title: str,
    expr: str,
    *,
    desc: str,
    unit: str,
    th: dict,
    legend: str = "",
    w: int = 6,
    h: int = 4,
    **kw: object,
) -> dict:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "area",
        "textMode": "auto",
    }
    return panel(
        "stat",
        title,
        [target(expr, legend)],
        desc=desc,
        unit=unit,
        th=th,
        w=w,
        h=h,
        options=options,
        **kw,
    )


def heatmap(title: str, expr: str, *, desc: str, unit: str) -> dict:
    options = {
        "calculate": False,
        "yAxis": {"unit": unit},
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
        "tooltip": {"show": True, "yHistogram": True},
    }
    return panel(
        "heatmap",
        title,
        [target(expr, "{{le}}", fmt="heatmap")],
        desc=desc,
        unit=unit,
        options=options,
    )


def table(title: str, expr: str, *, desc: str, w: int = 24, h: int = 5) -> dict:
    options = {"showHeader": True}
    transformations = [
        {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}
    ]
    return panel(
        "table",
        title,
        [target(expr, instant=True, fmt="table")],
        desc=desc,
        w=w,
        h=h,
        options=options,
        transformations=transformations,
    )


def text(title: str, content: str, *, w: int = 24, h: int = 4) -> dict:
    return {
        "type": "text",
        "title": title,
        "gridPos": {"w": w, "h": h},
        "options": {"mode": "markdown", "content": content},
    }


def row(title: str) -> dict:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"w": 24, "h": 1},
    }


def quantiles(metric: c.Metric, sel: str, by: str = "") -> list[dict]:
    by_clause = f"{by}, le" if by else "le"
    legend_prefix = "{{" + by + "}} " if by else ""
    return [
        target(
            f"histogram_quantile({q}, sum by ({by_clause}) "
            f"(rate({m(metric, '_bucket')}{{{sel}}}[{RATE}])))",
            f"{legend_prefix}p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def ratio(numerator_sel: str, sel: str, by: str) -> str:
    """Share of the requests matching `numerator_sel`; 0 (not empty) when none match."""
    total = f"sum by ({by}) (rate({m(c.HTTP_REQUESTS)}{{{sel}}}[{RATE}]))"
    part = f"sum by ({by}) (rate({m(c.HTTP_REQUESTS)}{{{sel}, {numerator_sel}}}[{RATE}]))"
    return f"({part} or 0 * {total}) / {total}"


# --- dashboards -------------------------------------------------------------------------


def variables() -> list[dict]:
    def query(
        name: str, label: str, q: str, *, multi: bool, hide: int = 0, all_value: str = ".*"
    ) -> dict:
        v = {
            "type": "query",
            "name": name,
            "label": label,
            "datasource": DS,
            "query": {"query": q, "refId": f"{name}-variable"},
            "definition": q,
            "refresh": 2,
            "sort": 1,
            "multi": multi,
            "includeAll": True,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "hide": hide,
            "options": [],
            "regex": "",
        }
        if all_value:
            v["allValue"] = all_value
        return v

    info = m(c.MODEL_INFO)
    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "options": [],
            "refresh": 1,
            "regex": "",
        },
        query("namespace", "Namespace", f"label_values({info}, namespace)", multi=True),
        query(
            "model", "Model", f'label_values({info}{{namespace=~"$namespace"}}, model)', multi=True
        ),
        query(
            "version",
            "Version",
            f'label_values({info}{{namespace=~"$namespace", model=~"$model"}}, version)',
            multi=True,
        ),
        # Pods of the selected versions, for cAdvisor and kube-state-metrics series (which
        # carry no model label). "All" expands to the list of pods, not to .*.
        query(
            "pod", "Pod", f"label_values(up{{{TARGET_SEL}}}, pod)", multi=True, hide=2, all_value=""
        ),
    ]


def layout(panels: list[dict]) -> list[dict]:
    """Place panels left to right, wrapping at 24 columns; number them."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"].update({"x": x, "y": y})
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return panels


def dashboard(uid: str, title: str, description: str, panels: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["modelops", "model-service"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "type": "dashboards",
                "tags": ["modelops"],
                "asDropdown": True,
                "title": "ModelOps",
                "includeVars": True,
                "keepTime": True,
            },
        ],
        "templating": {"list": variables()},
        "panels": layout(panels),
    }


def overview() -> dict:
    req = m(c.HTTP_REQUESTS)
    pred = f"{SEL}, {PREDICT_ROUTES}"
    panels = [
        row("Traffic"),
        stat(
            "Prediction requests",
            f"sum(rate({req}{{{pred}}}[{RATE}]))",
            unit="reqps",
            th=thresholds([(None, "blue")]),
            desc="Requests per second to the prediction routes.",
        ),
        stat(
            "5xx ratio",
            ratio('status=~"5.."', pred, "namespace"),
            unit="percentunit",
            th=alert_bands("errorRatioThreshold"),
            desc="Share of prediction requests answered 5xx.",
        ),
        stat(
            "p95 latency",
            f"histogram_quantile(0.95, sum by (le) (rate({m(c.HTTP_REQUEST_DURATION, '_bucket')}{{{pred}}}[{RATE}])))",
            unit="s",
            th=alert_bands("latencyP95Seconds"),
            desc="95th percentile latency of prediction requests.",
        ),
        stat(
            "Targets up",
            f"sum(up{{{TARGET_SEL}}})",
            unit="short",
            th=thresholds([(None, "red"), (1, "green")]),
            desc="Scrape targets of the selected versions that answer /metrics.",
        ),
        timeseries(
            "Requests by route",
            [
                target(
                    f"sum by (handler, method) (rate({req}{{{SEL}}}[{RATE}]))",
                    "{{method}} {{handler}}",
                )
            ],
            unit="reqps",
            desc="Requests per second by route (handler) and method.",
        ),
        timeseries(
            "Responses by status code",
            [target(f"sum by (status) (rate({req}{{{SEL}}}[{RATE}]))", "{{status}}")],
            unit="reqps",
            stack="normal",
            desc="Responses per second by status code, all routes.",
        ),
        timeseries(
            "Latency of prediction requests",
            quantiles(c.HTTP_REQUEST_DURATION, pred),
            unit="s",
            th=alert_bands("latencyP95Seconds"),
            threshold_lines=True,
            desc="p50, p95 and p99 of the whole request, prediction routes.",
        ),
        timeseries(
            "Error ratio by version",
            [
                target(ratio('status=~"5.."', pred, "version"), "{{version}} 5xx"),
                target(ratio('status=~"4.."', pred, "version"), "{{version}} 4xx"),
            ],
            unit="percentunit",
            th=alert_bands("errorRatioThreshold"),
            threshold_lines=True,
            minimum=0,
            desc="5xx (service failures) and 4xx (rejected inputs) over all prediction requests.",
        ),
        timeseries(
            "In-flight requests",
            [target(f"sum by (handler) ({m(c.HTTP_REQUESTS_INPROGRESS)}{{{SEL}}})", "{{handler}}")],
            unit="short",
            w=8,
            desc="Requests being served right now.",
        ),
        timeseries(
            "Request size",
            [
                target(
                    f"sum by (handler) (rate({m(c.HTTP_REQUEST_SIZE, '_sum')}{{{SEL}}}[{RATE}])) / sum by (handler) (rate({m(c.HTTP_REQUEST_SIZE, '_count')}{{{SEL}}}[{RATE}]))",
                    "{{handler}}",
                )
            ],
            unit="bytes",
            w=8,
            desc="Mean request body size by route.",
        ),
        timeseries(
            "Response size",
            [
                target(
                    f"sum by (handler) (rate({m(c.HTTP_RESPONSE_SIZE, '_sum')}{{{SEL}}}[{RATE}])) / sum by (handler) (rate({m(c.HTTP_RESPONSE_SIZE, '_count')}{{{SEL}}}[{RATE}]))",
                    "{{handler}}",
                )
            ],
            unit="bytes",
            w=8,
            desc="Mean response body size by route.",
        ),
        row("Resources"),
        timeseries(
            "Replicas per track: desired vs available",
            [
                target(
                    f'sum by (deployment) (kube_deployment_spec_replicas{{namespace=~"$namespace"}} and on (namespace, deployment) {DEPLOYMENT_OF_TARGETS})',
                    "{{deployment}} desired",
                ),
                target(
                    f'sum by (deployment) (kube_deployment_status_replicas_available{{namespace=~"$namespace"}} and on (namespace, deployment) {DEPLOYMENT_OF_TARGETS})',
                    "{{deployment}} available",
                ),
            ],
            unit="short",
            w=24,
            desc="Replicas each track's Deployment asks for (the operator splits the ModelDeployment's size, which an autoscaler sets, between stable and `-canary`) against those available (kube-state-metrics). A gap that lasts is pods not starting.",
        ),
        timeseries(
            "Memory (resident)",
            [
                target(
                    f"sum by (modelops_io_version, instance) (process_resident_memory_bytes{{{TARGET_SEL}}})",
                    "{{modelops_io_version}} {{instance}}",
                )
            ],
            unit="bytes",
            w=8,
            desc="Resident memory of each service process.",
        ),
        timeseries(
            "Memory vs limit",
            [
                target(
                    f"sum by (pod) (container_memory_working_set_bytes{{{POD_SEL}}})",
                    "{{pod}} working set",
                ),
                target(
                    f'sum by (pod) (kube_pod_container_resource_limits{{{POD_SEL}, resource="memory"}})',
                    "{{pod}} limit",
                ),
            ],
            unit="bytes",
            w=8,
            desc="Working set and memory limit per pod (cAdvisor, kube-state-metrics).",
        ),
        timeseries(
            "CPU",
            [
                target(
                    f"sum by (modelops_io_version, instance) (rate(process_cpu_seconds_total{{{TARGET_SEL}}}[{RATE}]))",
                    "{{modelops_io_version}} {{instance}}",
                ),
            ],
            unit="percentunit",
            w=8,
            desc="CPU time per second of each service process (1 = one core).",
        ),
        timeseries(
            "Container restarts (1h)",
            [
                target(
                    f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{POD_SEL}}}[1h]))",
                    "{{pod}}",
                ),
            ],
            unit="short",
            w=12,
            th=upper(1, 3),
            desc="Restarts per pod over the last hour (kube-state-metrics).",
        ),
        timeseries(
            "CPU throttling",
            [
                target(
                    f"sum by (pod) (rate(container_cpu_cfs_throttled_periods_total{{{POD_SEL}}}[{RATE}])) / sum by (pod) (rate(container_cpu_cfs_periods_total{{{POD_SEL}}}[{RATE}]))",
                    "{{pod}}",
                ),
            ],
            unit="percentunit",
            w=12,
            th=upper(0.1, 0.25),
            desc="Share of CFS periods in which the container was throttled (cAdvisor).",
        ),
    ]
    return dashboard(
        "modelops-overview",
        "ModelOps / Service overview",
        "The model service: traffic, latency, errors, sizes, in-flight requests and resources.",
        panels,
    )


def model_view() -> dict:
    drift = m(c.FEATURE_DRIFT)
    panels = [
        row("Model"),
        table(
            "Loaded models",
            f"max by (namespace, model, version, task, framework, sha256) ({m(c.MODEL_INFO)}{{{SEL}}})",
            desc="model_info of every selected version: task, framework and artifact digest.",
            w=18,
        ),
        stat(
            "Ready",
            f"min({m(c.MODEL_READY)}{{{SEL}}})",
            unit="short",
            w=6,
            h=5,
            th=thresholds([(None, "red"), (1, "green")]),
            desc="1 when every selected version has loaded and warmed its model.",
        ),
        row("Predictions"),
        timeseries(
            "Predicted rows by outcome",
            [
                target(
                    f"sum by (version, outcome) (rate({m(c.PREDICTIONS)}{{{SEL}}}[{RATE}]))",
                    "{{version}} {{outcome}}",
                )
            ],
            unit="short",
            desc="Rows predicted per second, by version and outcome (ok, error).",
        ),
        timeseries(
            "Predicted class share (classifiers)",
            [
                target(
                    f"sum by (class) (rate({m(c.PREDICTED_CLASS)}{{{SEL}}}[{RATE}]))", "{{class}}"
                )
            ],
            unit="short",
            stack="percent",
            desc="Share of rows predicted per class.",
        ),
        heatmap(
            "Prediction value distribution (regressors)",
            f"sum by (le) (rate({m(c.PREDICTION_VALUE, '_bucket')}{{{SEL}}}[{RATE}]))",
            unit="short",
            desc="Histogram of the predicted values over time.",
        ),
        timeseries(
            "Prediction value quantiles (regressors)",
            quantiles(c.PREDICTION_VALUE, SEL, "version"),
            unit="short",
            desc="p50, p95, p99 of the predicted value per version.",
        ),
        heatmap(
            "Confidence distribution (classifiers)",
            f"sum by (le) (rate({m(c.PREDICTION_CONFIDENCE, '_bucket')}{{{SEL}}}[{RATE}]))",
            unit="percentunit",
            desc="Histogram of the probability of the predicted class.",
        ),
        timeseries(
            "Mean confidence (classifiers)",
            [
                target(
                    f"sum by (version) (rate({m(c.PREDICTION_CONFIDENCE, '_sum')}{{{SEL}}}[{RATE}])) / sum by (version) (rate({m(c.PREDICTION_CONFIDENCE, '_count')}{{{SEL}}}[{RATE}]))",
                    "{{version}}",
                )
            ],
            unit="percentunit",
            minimum=0,
            maximum=1,
            threshold_lines=True,
            th=thresholds([(None, "red"), (alert_threshold("lowConfidenceThreshold"), "green")]),
            desc="Mean probability of the predicted class; ModelLowConfidence fires below the red area.",
        ),
        row("Drift"),
        timeseries(
            "Feature drift (PSI)",
            [
                target(
                    f'max by (version, feature) ({drift}{{{SEL}, method="psi"}})',
                    "{{version}} {{feature}}",
                )
            ],
            unit="short",
            th=alert_bands("featureDriftThreshold"),
            threshold_lines=True,
            minimum=0,
            desc="Population stability index of each feature against the training reference (0.1 moderate, 0.2 significant).",
        ),
        timeseries(
            "Feature drift (KS)",
            [
                target(
                    f'max by (version, feature) ({drift}{{{SEL}, method="ks"}})',
                    "{{version}} {{feature}}",
                )
            ],
            unit="short",
            minimum=0,
            maximum=1,
            desc="Kolmogorov-Smirnov statistic of each feature against the training reference.",
        ),
        panel(
            "bargauge",
            "Current PSI per feature",
            [
                target(
                    f'sort_desc(max by (feature) ({drift}{{{SEL}, method="psi"}}))',
                    "{{feature}}",
                    instant=True,
                )
            ],
            unit="short",
            th=alert_bands("featureDriftThreshold"),
            minimum=0,
            w=8,
            options={
                "orientation": "horizontal",
                "displayMode": "gradient",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
            desc="The features that moved most, now.",
        ),
        timeseries(
            "Prediction drift",
            [
                target(
                    f"max by (version, method) ({m(c.PREDICTION_DRIFT)}{{{SEL}}})",
                    "{{version}} {{method}}",
                )
            ],
            unit="short",
            th=alert_bands("predictionDriftThreshold"),
            threshold_lines=True,
            minimum=0,
            w=8,
            desc="Drift of the predictions against their distribution on the training reference (PSI and KS).",
        ),
        timeseries(
            "Drift window",
            [target(f"max by (version) ({m(c.DRIFT_WINDOW_ROWS)}{{{SEL}}})", "{{version}}")],
            unit="short",
            w=8,
            desc="Rows in the sliding window that drift is computed over.",
        ),
        row("Inputs and inference"),
        timeseries(
            "Input errors by reason",
            [target(f"sum by (reason) (rate({m(c.INPUT_ERRORS)}{{{SEL}}}[{RATE}]))", "{{reason}}")],
            unit="short",
            stack="normal",
            w=8,
            desc="Rejected or flagged inputs per second, by reason.",
        ),
        timeseries(
            "Batch size",
            quantiles(c.BATCH_SIZE, SEL),
            unit="short",
            w=8,
            desc="Rows per prediction request (p50, p95, p99).",
        ),
        timeseries(
            "Inference time",
            quantiles(c.INFERENCE_DURATION, SEL),
            unit="s",
            w=8,
            desc="Time in the model's predict call (p50, p95, p99); compare with the request latency.",
        ),
    ]
    return dashboard(
        "modelops-model",
        "ModelOps / Model",
        "What the model sees and answers: predictions, confidence, drift, input errors.",
        panels,
    )


def operator_panels() -> list[dict]:
    """The operator's own metrics (operator/modelops_operator/metrics.py), per ModelDeployment.

    Its series carry the ModelDeployment's ``namespace`` and ``name`` (not ``model``), so
    these panels follow the namespace variable and show the ModelDeployment by name.
    """
    osel = 'namespace=~"$namespace"'
    figures = f"max by (namespace, name, figure) ({om.ANALYSIS_FIGURE}{{{osel}}})"
    limits = f"max by (namespace, name, figure) ({om.ANALYSIS_THRESHOLD}{{{osel}}})"
    errors = f"sum by (namespace, name) (rate({om.RECONCILE_ERRORS}{{{osel}}}[{RATE}]))"
    reconciles = f"sum by (namespace, name) (rate({om.RECONCILES}{{{osel}}}[{RATE}]))"
    return [
        table(
            "Phase",
            f"max by (namespace, name, phase) ({om.ROLLOUT_PHASE}{{{osel}}} == 1)",
            desc="The phase of each ModelDeployment (status.phase) as the operator last wrote it.",
            w=8,
            h=6,
        ),
        timeseries(
            "Canary step and weight",
            [
                target(f"max by (namespace, name) ({om.CANARY_STEP}{{{osel}}})", "{{name}} step"),
                target(
                    f"max by (namespace, name) ({om.CANARY_WEIGHT}{{{osel}}})", "{{name}} weight %"
                ),
            ],
            unit="short",
            minimum=0,
            w=8,
            h=6,
            desc="The canary's step (1-based, 0 without a canary) and the weight the step asks for.",
        ),
        timeseries(
            "Share per track",
            [
                target(
                    f"max by (namespace, name, track) ({om.TRAFFIC_SHARE}{{{osel}}})",
                    "{{name}} {{track}}",
                )
            ],
            unit="percent",
            minimum=0,
            maximum=100,
            w=8,
            h=6,
            desc="Each track's share of the replicas (what the replicas give, not the step).",
        ),
        panel(
            "table",
            "Last analysis: figures against thresholds",
            [
                target(figures, instant=True, fmt="table"),
                target(limits, instant=True, fmt="table"),
            ],
            desc="status.lastAnalysis: each judged figure (Value #A) beside the threshold it is "
            "held against (Value #B): requests at least minRequests, the others at most.",
            w=12,
            h=8,
            options={"showHeader": True},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {"excludeByName": {"Time": True}}},
            ],
        ),
        timeseries(
            "Step duration against its deadline",
            [
                target(f"max by (namespace, name) ({om.STEP_SECONDS}{{{osel}}})", "{{name}} step"),
                target(
                    f"max by (namespace, name) ({om.STEP_DEADLINE}{{{osel}}})",
                    "{{name}} deadline",
                ),
                target(
                    f"max by (namespace, name) ({om.INCONCLUSIVE}{{{osel}}})",
                    "{{name}} inconclusive",
                ),
            ],
            unit="s",
            minimum=0,
            w=12,
            h=8,
            desc="How long the current step has lasted, its deadline (ModelRolloutStuck past it) "
            "and how long the analysis has been inconclusive (ModelRolloutInconclusive).",
        ),
        timeseries(
            "Rollouts and analyses by result",
            [
                target(f"sum by (result) ({om.ROLLOUTS}{{{osel}}})", "rollouts {{result}}"),
                target(f"sum by (result) ({om.ANALYSIS_RESULTS}{{{osel}}})", "analyses {{result}}"),
            ],
            unit="short",
            minimum=0,
            w=12,
            h=7,
            desc="Finished rollouts (Deployed, Promoted, RolledBack, Aborted) and canary "
            "analyses (Pass, Fail, Inconclusive, Error), counted since the operator started.",
        ),
        timeseries(
            "Reconciles and reconcile errors",
            [
                target(reconciles, "{{name}} reconciles"),
                target(f"{errors} or 0 * {reconciles}", "{{name}} errors"),
            ],
            unit="ops",
            minimum=0,
            w=12,
            h=7,
            desc="Reconciles per second and the failed ones (0 when none failed); "
            "ModelOperatorReconcileErrors fires after 10m of errors.",
        ),
        table(
            "Rolled back",
            f"max by (namespace, name, model, version, reason) ({om.ROLLBACK}{{{osel}}})",
            desc="ModelDeployments that stay rolled back: the version and the reason "
            "(ModelCanaryRolledBack fires for each).",
            h=5,
        ),
    ]


def rollout() -> dict:
    rsel = 'namespace=~"$namespace", model=~"$model", version=~"$version"'
    msel = 'namespace=~"$namespace", model=~"$model"'  # every version: the share's denominator

    def side_by_side(title: str, expr: str, *, unit: str, th: dict, desc: str) -> dict:
        p = stat(title, expr, unit=unit, th=th, desc=desc, w=12, h=4, legend="{{version}}")
        p.update({"repeat": "version", "repeatDirection": "h", "maxPerRow": 2})
        p["title"] = f"{title} · version $version"
        return p

    panels = [
        row("Versions"),
        table(
            "Versions and tracks",
            f"max by (namespace, model, version, modelops_io_track) ({m(c.MODEL_INFO)}{{{SEL}}})",
            desc="Which version runs as stable and which as canary (track from the pod label modelops.io/track).",
        ),
        row("Side by side (one column per version)"),
        side_by_side(
            "Requests",
            f"sum by (version) ({rr.REQUESTS_RATE1M.name}{{{rsel}}})",
            unit="reqps",
            th=thresholds([(None, "blue")]),
            desc=f"{rr.REQUESTS_RATE1M.name}",
        ),
        side_by_side(
            "Error ratio",
            f"max by (version) ({rr.ERROR_RATIO_RATE1M.name}{{{rsel}}})",
            unit="percentunit",
            th=alert_bands("errorRatioThreshold"),
            desc=f"{rr.ERROR_RATIO_RATE1M.name} (the canary analysis' error rate)",
        ),
        side_by_side(
            "p95 latency",
            f"max by (version) ({rr.LATENCY_P95_RATE1M.name}{{{rsel}}})",
            unit="s",
            th=alert_bands("latencyP95Seconds"),
            desc=f"{rr.LATENCY_P95_RATE1M.name}",
        ),
        side_by_side(
            "Drift score",
            f"max by (version) ({rr.DRIFT_SCORE_MAX.name}{{{rsel}}})",
            unit="short",
            th=alert_bands("featureDriftThreshold"),
            desc=f"{rr.DRIFT_SCORE_MAX.name}: the largest feature PSI",
        ),
        row("A/B: the two variants (strategy ABTest, or any canary)"),
        side_by_side(
            "Traffic share",
            f"sum by (namespace, model, version) ({rr.REQUESTS_RATE1M.name}{{{rsel}}}) "
            f"/ on (namespace, model) group_left "
            f"sum by (namespace, model) ({rr.REQUESTS_RATE1M.name}{{{msel}}})",
            unit="percentunit",
            th=thresholds([(None, "blue")]),
            desc="The version's share of the model's prediction requests: what its weight gives.",
        ),
        timeseries(
            "Traffic share",
            [
                target(
                    f"sum by (namespace, model, version) ({rr.REQUESTS_RATE1M.name}{{{rsel}}}) "
                    f"/ on (namespace, model) group_left "
                    f"sum by (namespace, model) ({rr.REQUESTS_RATE1M.name}{{{msel}}})",
                    "{{version}}",
                )
            ],
            unit="percentunit",
            minimum=0,
            desc="Each version's share of the model's requests over time (the A/B split).",
        ),
        timeseries(
            "Mean prediction (regressors)",
            [
                target(
                    f"max by (version) ({rr.PREDICTION_MEAN_RATE1M.name}{{{rsel}}})",
                    "{{version}}",
                )
            ],
            unit="short",
            desc=f"{rr.PREDICTION_MEAN_RATE1M.name}: the mean predicted value per version, "
            "what the canary analysis' prediction shift compares.",
        ),
        timeseries(
            "Predicted class share (classifiers)",
            [
                target(
                    f"max by (version, class) ({rr.PREDICTED_CLASS_SHARE_RATE1M.name}{{{rsel}}})",
                    "{{version}} · {{class}}",
                )
            ],
            unit="percentunit",
            minimum=0,
            desc=f"{rr.PREDICTED_CLASS_SHARE_RATE1M.name}: the share of rows per predicted "
            "class, per version.",
        ),
        row("Compared over time"),
        timeseries(
            "Request rate",
            [target(f"sum by (version) ({rr.REQUESTS_RATE1M.name}{{{rsel}}})", "{{version}}")],
            unit="reqps",
            desc="Prediction requests per second per version: the canary's share of the traffic.",
        ),
        timeseries(
            "Error ratio",
            [target(f"max by (version) ({rr.ERROR_RATIO_RATE1M.name}{{{rsel}}})", "{{version}}")],
            unit="percentunit",
            th=alert_bands("errorRatioThreshold"),
            threshold_lines=True,
            minimum=0,
            desc="5xx share per version, as the canary analysis reads it.",
        ),
        timeseries(
            "p95 latency",
            [
                target(
                    f"max by (version) ({rr.LATENCY_P95_RATE1M.name}{{{rsel}}})",
                    "{{version}}",
                )
            ],
            unit="s",
            th=alert_bands("latencyP95Seconds"),
            threshold_lines=True,
            desc="p95 latency per version.",
        ),
        timeseries(
            "Drift score",
            [target(f"max by (version) ({rr.DRIFT_SCORE_MAX.name}{{{rsel}}})", "{{version}}")],
            unit="short",
            th=alert_bands("featureDriftThreshold"),
            threshold_lines=True,
            minimum=0,
            desc="Largest feature PSI per version.",
        ),
        timeseries(
            "Input error ratio",
            [
                target(
                    f"max by (version) ({rr.INPUT_ERROR_RATIO_RATE5M.name}{{{rsel}}})",
                    "{{version}}",
                )
            ],
            unit="percentunit",
            minimum=0,
            desc="4xx share per version (5m).",
        ),
        timeseries(
            "Firing alerts",
            [
                target(
                    'sum by (alertname, version) (ALERTS{alertstate="firing", namespace=~"$namespace", model=~"$model"})',
                    "{{alertname}} {{version}}",
                )
            ],
            unit="short",
            stack="normal",
            desc="Alerts of the model firing now, by version; a pod's memory and restart alerts name the model of the pod's scrape target.",
        ),
        row("Operator"),
        *operator_panels(),
    ]
    return dashboard(
        "modelops-rollout",
        "ModelOps / Rollout",
        "Stable and canary side by side, from the recording rules the canary analysis reads.",
        panels,
    )


DASHBOARDS = {
    "modelops-overview.json": overview,
    "modelops-model.json": model_view,
    "modelops-rollout.json": rollout,
}


def render(build: Callable[[], dict]) -> str:
    """One dashboard as the JSON text the chart carries."""
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"
