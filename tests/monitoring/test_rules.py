"""The rule source, its parameters and renderings, the recording group built from the
recording-rule catalog, the promtool unit tests, the runbook and the Alertmanager example.
(That the committed renderings are fresh is hack/generate.py's --check: tests/charts.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import render
from dashboards import generate as dashboards
from modelops_service import recording_rules
from tests.support import promql
from tests.support.repo import ROOT

ALERTS = ROOT / "alerts"
AM_EXAMPLE = ALERTS / "alertmanager" / "alertmanager.yaml"


def rules(text: str | None = None) -> list[dict]:
    doc = yaml.safe_load(text if text is not None else render.RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def alerts(text: str | None = None) -> dict[str, dict]:
    return {r["alert"]: r for r in rules(text) if "alert" in r}


def all_alerts() -> dict[str, dict]:
    """The model service's alerts and the operator's (each chart ships one file)."""
    return alerts() | alerts(render.OPERATOR_RULES.read_text())


# --- pure: source, parameters, generated files ------------------------------------------


def test_the_recording_group_records_each_catalog_name_once_in_its_order() -> None:
    recorded = [r["record"] for r in rules() if "record" in r]
    assert recorded == [r.name for r in recording_rules.RECORDING_RULES]


def test_the_template_may_read_only_recording_rules_of_the_catalog() -> None:
    template = render.TEMPLATE.read_text().replace(
        "model_version:error_ratio:rate5m > ${errorRatioThreshold}",
        "model_version:error_ratio:rate7m > ${errorRatioThreshold}",
    )
    with pytest.raises(ValueError, match="model_version:error_ratio:rate7m"):
        render.render_rules(template=template)


def test_a_catalog_name_without_an_expression_is_refused(monkeypatch) -> None:
    odd = recording_rules.RecordingRule("model_version:queue_depth:max", "not recorded")
    monkeypatch.setattr(recording_rules, "RECORDING_RULES", (*recording_rules.RECORDING_RULES, odd))
    with pytest.raises(ValueError, match="no expression for 'queue_depth'"):
        render.render_rules()


def test_the_canary_analysis_recording_rules_exist() -> None:
    recorded = {r["record"]: r["expr"] for r in rules() if "record" in r}
    for name in (
        "model_version:requests:rate1m",
        "model_version:error_ratio:rate1m",
        "model_version:latency_p95_seconds:rate1m",
        "model_version:drift_score:max",
        "model_version:prediction_mean:rate1m",
        "model_version_class:predicted_class_share:rate1m",
    ):
        assert name in recorded
        assert "by (namespace, model, version" in recorded[name]
    assert 'method="psi"' in recorded["model_version:drift_score:max"]
    # the level names the labels: the class shares keep `class`
    assert (
        "by (namespace, model, version, class)"
        in recorded["model_version_class:predicted_class_share:rate1m"]
    )


def test_the_operator_alerts_on_rollouts_and_on_itself() -> None:
    operator = alerts(render.OPERATOR_RULES.read_text())
    assert set(operator) == {
        "ModelCanaryRolledBack",
        "ModelRolloutStuck",
        "ModelRolloutInconclusive",
        "ModelOperatorDown",
        "ModelOperatorReconcileErrors",
    }
    rolled_back = operator["ModelCanaryRolledBack"]["expr"]
    assert "by (namespace, name, model, version, reason)" in rolled_back
    assert not set(operator) & set(alerts()), "an alert name in both files"


def test_the_issue_s_alerts_exist() -> None:
    assert {
        "ModelServiceDown",
        "ModelServiceAbsent",
        "ModelHighErrorRatio",
        "ModelHighInputErrorRatio",
        "ModelHighLatency",
        "ModelFeatureDrift",
        "ModelPredictionDrift",
        "ModelLowConfidence",
        "ModelNoTraffic",
        "ModelMemoryNearLimit",
        "ModelPodRestarting",
        "ModelErrorBudgetBurnFast",
        "ModelErrorBudgetBurnSlow",
    } <= set(alerts())


def test_every_alert_has_severity_summary_live_value_and_runbook_section() -> None:
    runbook = (ALERTS / "runbook.md").read_text()
    sections = {h.strip().lower() for h in re.findall(r"^## (\S+)\s*$", runbook, re.M)}
    for name, rule in all_alerts().items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert "$value" in annotations["description"], f"{name}: description lacks the value"
        url = annotations["runbook_url"]
        assert url.endswith(f"#{name.lower()}"), name
        assert name.lower() in sections, f"runbook.md has no section ## {name}"
    assert len(sections) == len(all_alerts())


# "the *Model* dashboard's *Input errors by reason*", "the *confidence* panel ... on the
# *Rollout* dashboard": a dashboard's short title and the title of one of its panels
_DASHBOARD_REFERENCES = (
    re.compile(r"the \*([^*]+)\* dashboard's \*([^*]+)\*"),
    re.compile(r"the \*([^*]+)\* panel[^.]*? on the \*([^*]+)\* dashboard"),
)


def test_every_panel_the_runbook_names_is_on_the_dashboard_it_names() -> None:
    panels = {}
    for build in dashboards.DASHBOARDS.values():
        board = build()
        short = board["title"].removeprefix("ModelOps / ")
        panels[short] = {p["title"] for p in board["panels"]}
    runbook = " ".join((ALERTS / "runbook.md").read_text().split())
    named = [m.groups() for m in _DASHBOARD_REFERENCES[0].finditer(runbook)]
    named += [m.groups()[::-1] for m in _DASHBOARD_REFERENCES[1].finditer(runbook)]
    assert named, "the runbook names no panel: the patterns are stale"
    for board, panel in named:
        assert panel in panels.get(board, ()), f"runbook.md: no panel *{panel}* on *{board}*"


@pytest.mark.parametrize(
    ("template_path", "params_path"),
    [(render.TEMPLATE, render.PARAMS), (render.OPERATOR_TEMPLATE, render.OPERATOR_PARAMS)],
)
def test_every_threshold_and_for_is_a_parameter(template_path: Path, params_path: Path) -> None:
    params = render.load_params(params_path)
    template = render._body(template_path.read_text(), recording=template_path == render.TEMPLATE)
    used = set(render.PLACEHOLDER.findall(template))
    assert used == set(params), f"unused {set(params) - used}, undefined {used - set(params)}"
    for line in template.splitlines():
        if line.strip().startswith("for:"):
            assert "${" in line, f"a literal `for`: {line.strip()}"


def test_overrides_change_the_rendered_rules() -> None:
    text = render.render_rules(
        {"errorRatioThreshold": 0.2, "errorRatioFor": "30s", "sloObjective": 0.999,
         "metricSelector": 'namespace="models", model="wine"'}
    )  # fmt: skip
    rule = alerts(text)["ModelHighErrorRatio"]
    assert rule["for"] == "30s"
    assert "> 0.2" in rule["expr"]
    assert "(1 - 0.999)" in alerts(text)["ModelErrorBudgetBurnFast"]["expr"]
    recorded = {r["record"]: r["expr"] for r in rules(text) if "record" in r}
    assert 'namespace="models", model="wine"}' in recorded["model_version:requests:rate1m"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("errorRatioThreshold", 1.5), ("errorRatioFor", "5 minutes"), ("sloObjective", 1),
     ("metricSelector", " "), ("noSuchParameter", 1),
     # thresholds an alert could never cross: a silent off switch
     ("errorRatioThreshold", 1), ("lowConfidenceThreshold", 0)],
)  # fmt: skip
def test_bad_parameter_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        render.render_rules({name: value})


def test_the_chart_scopes_each_release_to_its_own_series() -> None:
    chart = yaml.safe_load(render.helm_values())["params"]
    assert "{{ .Release.Namespace }}" in chart["metricSelector"]
    assert 'model="{{ include "model-service.modelName" . }}"' in chart["metricSelector"]
    assert 'job="{{ include "model-service.fullname" . }}"' in chart["targetSelector"]
    assert "{{" not in render.RULES.read_text().split("groups:")[1].replace("{{ $", "")


def test_chart_values_fragment_documents_every_parameter() -> None:
    values = render.helm_values()
    schema = render.helm_schema()
    params = render.load_params()
    assert set(yaml.safe_load(values)["params"]) == set(params)
    assert set(schema["properties"]) == set(params)
    assert values.count("# -- ") == len(params)


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    fired, quiet = set(), set()
    for path in (ALERTS / "tests").glob("*.test.yaml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert fired == set(all_alerts()), f"no firing test: {set(all_alerts()) - fired}"
    assert quiet == set(all_alerts()), f"no quiet test: {set(all_alerts()) - quiet}"


# --- render tier: promtool, amtool, helm --------------------------------------------------


def run(*cmd: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)


@pytest.mark.render
def test_promtool_checks_the_rule_files(tmp_path: Path) -> None:
    custom = tmp_path / "custom.rules.yaml"
    custom.write_text(render.render_rules({"errorRatioFor": "10s", "latencyP95Seconds": 2}))
    result = run("promtool", "check", "rules", render.RULES, custom)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(f"SUCCESS: {len(rules())} rules found") == 2


@pytest.mark.render
def test_promtool_unit_tests_pass() -> None:
    files = sorted((ALERTS / "tests").glob("*.test.yaml"))
    assert len(files) >= 2
    result = run("promtool", "test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


@pytest.mark.render
def test_the_rollout_dashboard_shows_the_selected_model_s_target_and_pod_alerts(
    tmp_path: Path,
) -> None:
    """Its "Firing alerts" panel selects ALERTS by `model`: the alerts on `up`, cAdvisor and
    kube-state-metrics series must carry the model of their target."""
    (query,) = [
        q
        for q in promql.dashboard_queries()
        if q.source.endswith("modelops-rollout.json") and q.where.startswith("Firing alerts")
    ]
    down, crash_loop = "0x20", " ".join(str(i // 2) for i in range(21))
    series = {
        # wine 1's pod: its target down, its container crash-looping and near its memory limit
        'up{job="wine", namespace="ns", pod="wine-abc", instance="10.0.0.1:8080",'
        ' modelops_io_model="wine", modelops_io_version="1"}': down,
        'kube_pod_container_status_restarts_total{namespace="ns", pod="wine-abc",'
        ' container="model-service"}': crash_loop,
        'container_memory_working_set_bytes{namespace="ns", pod="wine-abc",'
        ' container="model-service"}': "1000000000x20",
        'kube_pod_container_resource_limits{namespace="ns", pod="wine-abc",'
        ' container="model-service", resource="memory", unit="byte"}': "1073741824x20",
        # diabetes 1's pod crash-loops too: another model's alert, not on wine's board
        'up{job="diabetes", namespace="ns", pod="diabetes-abc", instance="10.0.0.2:8080",'
        ' modelops_io_model="diabetes", modelops_io_version="1"}': "1x20",
        'kube_pod_container_status_restarts_total{namespace="ns", pod="diabetes-abc",'
        ' container="model-service"}': crash_loop,
    }
    expr = promql.expand_grafana(query.expr, {"namespace": "ns", "model": "wine"})
    wine_alerts = ("ModelServiceDown", "ModelPodRestarting", "ModelMemoryNearLimit")
    expected = [{"labels": f'{{alertname="{a}", version="1"}}', "value": 1} for a in wine_alerts]
    test = {
        "rule_files": [str(render.RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in series.items()],
                "promql_expr_test": [{"expr": expr, "eval_time": "20m", "exp_samples": expected}],
            }
        ],
    }  # fmt: skip
    path = tmp_path / "panel.test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = run("promtool", "test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.render
def test_the_helm_flavour_renders_the_same_rules(tmp_path: Path) -> None:
    """The chart's copy, rendered by real helm with `tpl`, equals the plain render."""
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "files").mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: rules-probe\nversion: 0.1.0\n")
    (chart / "files" / "rules.yaml").write_text(render.render_helm())
    defaults = yaml.safe_load(render.helm_values())
    (chart / "values.yaml").write_text(
        yaml.safe_dump({"model": {"name": "wine"}, "monitoring": {"prometheusRule": defaults}})
    )
    (chart / "templates" / "rules.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rules}\ndata:\n  rules.yaml: |\n"
        '    {{- tpl (.Files.Get "files/rules.yaml") $ | nindent 4 }}\n'
    )
    prefix = "monitoring.prometheusRule.params"
    result = run(
        "helm", "template", "probe", chart, "--namespace", "models",
        "--set", f"{prefix}.errorRatioFor=45s",
        "--set", f"{prefix}.featureDriftThreshold=0.3",
        "--set-string", f'{prefix}.metricSelector=namespace="{{{{ .Release.Namespace }}}}"\\, '
        'model="{{ .Values.model.name }}"',
        "--set-string", f"{prefix}.targetSelector=job=\"probe\"",
        "--set-string", f"{prefix}.podSelector=pod=~\"probe-.*\"",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(yaml.safe_load(result.stdout)["data"]["rules.yaml"])
    expected = yaml.safe_load(
        render.render_rules(
            {"errorRatioFor": "45s", "featureDriftThreshold": 0.3,
             "metricSelector": 'namespace="models", model="wine"',
             "targetSelector": 'job="probe"', "podSelector": 'pod=~"probe-.*"'}
        )
    )  # fmt: skip

    def normalized(doc: dict) -> list:
        return [
            {k: re.sub(r"\s+", "", v) if isinstance(v, str) else v for k, v in r.items()}
            for g in doc["groups"]
            for r in g["rules"]
        ]

    assert normalized(rendered) == normalized(expected)


@pytest.mark.render
def test_the_alertmanager_example_is_valid_and_routes_by_severity_and_model() -> None:
    result = run("amtool", "check-config", AM_EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr

    def route(*labels: str) -> str:
        r = run("amtool", "config", "routes", "test", f"--config.file={AM_EXAMPLE}", *labels)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert route("severity=critical", "model=wine-quality") == "modelops-pager,team-wine"
    assert route("severity=warning", "model=wine-quality") == "team-wine"
    assert route("severity=warning", "model=diabetes") == "team-diabetes"
    assert route("severity=warning", "model=other") == "modelops-chat"
    assert route("severity=info", "model=wine") == "null"


def test_the_alertmanager_example_keeps_secrets_in_files_and_inhibits_warnings() -> None:
    config = yaml.safe_load(AM_EXAMPLE.read_text())
    text = AM_EXAMPLE.read_text()
    assert "/etc/alertmanager/secrets/modelops-alerting/" in config["global"]["slack_api_url_file"]
    pager = next(r for r in config["receivers"] if r["name"] == "modelops-pager")
    auth = pager["webhook_configs"][0]["http_config"]["authorization"]
    assert auth["credentials_file"].startswith("/etc/alertmanager/secrets/modelops-alerting/")
    assert "api_url:" not in text
    assert "credentials:" not in text
    secret = yaml.safe_load((ALERTS / "alertmanager" / "secret.yaml").read_text())
    assert set(secret["stringData"]) == {"slack-api-url", "pager-token"}
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity="critical"', 'model=~".+"', 'version=~".+"']
    assert "warning" in inhibit["target_matchers"][0]
    assert inhibit["equal"] == ["namespace", "model", "version"]
