"""hack/generate.py (`make generate`): every generated file is what its one source gives,
the README tables match values.yaml, and the step itself writes, splices and prunes as
documented.

Tests that run the whole step are in the render tier (it renders the operator chart's RBAC
with helm); the others are pure Python.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from alerts import render as rules
from dashboards import generate as dashboards
from modelops_service import recording_rules
from tests.support.repo import ROOT

SERVICE = ROOT / "charts" / "model-service"
OPERATOR = ROOT / "charts" / "model-operator"


def load_generate():
    spec = importlib.util.spec_from_file_location(
        "modelops_generate", ROOT / "hack" / "generate.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = load_generate()


@pytest.mark.render
def test_the_committed_files_are_what_make_generate_writes(capsys) -> None:
    code = gen.main(["--check"])

    assert code == 0, capsys.readouterr().err


def test_the_plain_and_the_chart_rules_are_renderings_of_one_source() -> None:
    plain, chart, operator_plain, operator_chart = gen.rule_outputs(ROOT)

    assert (ROOT / plain.path).read_text() == rules.render_rules()
    assert (ROOT / chart.path).read_text() == rules.render_helm()
    assert sorted((SERVICE / "files" / "rules").iterdir()) == [ROOT / chart.path]
    assert (ROOT / operator_plain.path).read_text() == rules.render_rules(operator=True)
    assert (ROOT / operator_chart.path).read_text() == rules.render_helm(
        rules.OPERATOR_VALUES_PATH, operator=True
    )
    assert sorted((OPERATOR / "files" / "rules").iterdir()) == [ROOT / operator_chart.path]


def test_both_charts_carry_exactly_the_generated_dashboards() -> None:
    outs = gen.dashboard_outputs()
    copies = sorted(
        path
        for chart in (SERVICE, OPERATOR)
        for path in (chart / "files/dashboards").glob("*.json")
    )

    assert sorted(ROOT / o.path for o in outs) == copies
    assert not list((ROOT / "dashboards").glob("*.json")), "no JSON beside its generator"
    for name, build in dashboards.DASHBOARDS.items():
        for chart in (SERVICE, OPERATOR):
            assert (chart / "files" / "dashboards" / name).read_text() == dashboards.render(build)


def test_refuses_a_dashboard_name_that_cannot_name_a_configmap(monkeypatch) -> None:
    monkeypatch.setattr(dashboards, "DASHBOARDS", {"Model_Overview.json": dashboards.overview})

    with pytest.raises(SystemExit, match=r"Model_Overview\.json"):
        gen.dashboard_outputs()


def test_the_dashboards_colour_thresholds_from_the_alert_parameters() -> None:
    error_ratio = rules.load_params()["errorRatioThreshold"].default
    board = json.loads((SERVICE / "files" / "dashboards" / "modelops-overview.json").read_text())
    panel = next(p for p in board["panels"] if p["title"] == "5xx ratio")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]

    assert steps[-1] == {"color": "red", "value": error_ratio}
    assert steps[-2]["value"] == error_ratio * dashboards.WARN_SHARE


def test_the_operator_chart_crd_is_the_manifests_crd() -> None:
    sources = sorted((ROOT / "manifests" / "crd").glob("*.yaml"))
    copies = sorted((OPERATOR / "crds").glob("*.yaml"))

    assert [p.name for p in copies] == [p.name for p in sources]
    for src, copy in zip(sources, copies, strict=True):
        assert copy.read_bytes() == src.read_bytes()


@pytest.mark.render
def test_manifests_rbac_is_the_operator_chart_s_cluster_wide_rbac() -> None:
    manifest = ROOT / gen.RBAC_MANIFEST
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]

    assert manifest.read_text() == gen.render_rbac(ROOT)
    assert [d["kind"] for d in docs] == [
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"
    ]  # fmt: skip
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert "helm.sh/chart" not in labels
        assert "app.kubernetes.io/managed-by" not in labels


def test_the_alerts_readme_lists_every_recording_rule() -> None:
    readme = (ROOT / "alerts" / "README.md").read_text()
    table = readme.split(gen.RECORDING_START)[1].split(gen.RECORDING_END)[0]

    for rule in recording_rules.RECORDING_RULES:
        assert f"`{rule.name}`" in table


@pytest.mark.parametrize("chart", [SERVICE, OPERATOR], ids=lambda c: c.name)
def test_every_value_is_documented_in_the_readme_table(chart: Path) -> None:
    values = yaml.safe_load((chart / "values.yaml").read_text())
    documented = {key for key, _ in gen.documented_keys((chart / "values.yaml").read_text())}
    readme = (chart / "README.md").read_text()

    def leaves(node: object, path: str) -> list[str]:
        if isinstance(node, dict) and node:
            return [
                leaf for k, v in node.items() for leaf in leaves(v, f"{path}.{k}" if path else k)
            ]
        return [path]

    for leaf in leaves(values, ""):
        parts = leaf.split(".")
        covering = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        key = next((c for c in covering if c in documented), None)
        assert key, f"{chart.name}: value {leaf} has no `# --` description (itself or a parent)"
        assert f"| `{key}` |" in readme, f"{chart.name}/README.md has no row for {key}"


@pytest.mark.parametrize("chart", [SERVICE, OPERATOR], ids=lambda c: c.name)
def test_readme_rows_show_the_defaults_of_values_yaml(chart: Path) -> None:
    values = yaml.safe_load((chart / "values.yaml").read_text())
    readme = (chart / "README.md").read_text()

    for param in gen.parameters(chart):
        default = json.dumps(gen.lookup(values, param.key), separators=(", ", ": "))
        assert (
            f"| `{param.key}` | {param.type} | `{default.replace('|', chr(92) + '|')}` |" in readme
        )


# --- the generation step on a scratch tree -------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A scratch repo: the sources and the charts, without any generated file."""
    for chart in (SERVICE, OPERATOR):
        shutil.copytree(chart, tmp_path / "charts" / chart.name)
    shutil.copytree(ROOT / "alerts", tmp_path / "alerts", ignore=shutil.ignore_patterns("*.py*"))
    shutil.copytree(ROOT / "manifests" / "crd", tmp_path / "manifests" / "crd")
    (tmp_path / "deploy" / "argocd").mkdir(parents=True)
    shutil.copy(ROOT / "deploy/argocd/modeldeployment-health.lua", tmp_path / "deploy/argocd")
    for generated in ("files/rules", "files/dashboards"):
        shutil.rmtree(tmp_path / "charts/model-service" / generated)
    shutil.rmtree(tmp_path / "charts/model-operator/crds")
    shutil.rmtree(tmp_path / "charts/model-operator/files")
    (tmp_path / "alerts/modelops.rules.yaml").unlink()
    (tmp_path / "alerts/operator.rules.yaml").unlink()
    return tmp_path


def check(root: Path) -> int:
    return gen.main(["--check", "--root", str(root)])


@pytest.mark.render
def test_writes_every_generated_file_into_an_empty_tree(tree: Path) -> None:
    assert check(tree) == 1
    gen.main(["--root", str(tree)])

    assert check(tree) == 0
    assert (tree / "alerts/modelops.rules.yaml").read_text() == rules.render_rules()
    chart = tree / "charts/model-service"
    assert (chart / "files/rules/modelops-rules.yaml").read_text() == rules.render_helm()
    assert sorted(p.name for p in (chart / "files/dashboards").iterdir()) == sorted(
        dashboards.DASHBOARDS
    )
    assert (tree / "manifests/rbac/operator.yaml").read_text() == gen.render_rbac(ROOT)


@pytest.mark.render
def test_removes_files_that_nothing_generates(tree: Path) -> None:
    gen.main(["--root", str(tree)])
    stray = tree / "charts/model-service/files/dashboards/old.json"
    stray.write_text("{}")

    assert check(tree) == 1
    gen.main(["--root", str(tree)])
    assert not stray.exists()


@pytest.mark.render
def test_copies_the_crd_byte_for_byte(tree: Path) -> None:
    crd = "# keep me\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
    (tree / "manifests/crd/modeldeployments.modelops.io.yaml").write_text(crd)
    gen.main(["--root", str(tree)])

    assert (
        tree / "charts/model-operator/crds/modeldeployments.modelops.io.yaml"
    ).read_text() == crd


def test_refuses_a_crd_file_that_holds_other_kinds(tree: Path) -> None:
    (tree / "manifests/crd/extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")

    with pytest.raises(SystemExit, match="not only CRDs"):
        gen.crd_outputs(tree)


def test_a_new_rule_parameter_reaches_the_chart_values_schema_and_readme(tree: Path) -> None:
    params = tree / "alerts/params.yaml"
    params.write_text(
        params.read_text()
        + "  queueDepthThreshold:\n    type: number\n    default: 7\n    doc: The depth.\n"
    )
    written = {o.path: o.content.decode() for o in gen.values_outputs(tree)}
    values = yaml.safe_load(written[gen.SERVICE_CHART / "values.yaml"])
    schema = json.loads(written[gen.SERVICE_CHART / "values.schema.json"])
    readme = gen.readme_output(tree, gen.SERVICE_CHART, {k: v.encode() for k, v in written.items()})

    chart_params = values["monitoring"]["prometheusRule"]["params"]
    assert chart_params["queueDepthThreshold"] == 7
    assert chart_params["metricSelector"].startswith('namespace="{{ .Release.Namespace }}"')
    typed = schema["properties"]["monitoring"]["properties"]["prometheusRule"]["properties"]
    assert typed["params"]["x-generated-from"] == "alerts/params.yaml"
    assert typed["params"]["properties"]["queueDepthThreshold"]["type"] == "number"
    row = "| `monitoring.prometheusRule.params.queueDepthThreshold` | number | `7` | The depth. |"
    assert row in readme.content.decode()


def test_refuses_values_without_the_generated_block_markers(tree: Path) -> None:
    values = tree / "charts/model-service/values.yaml"
    values.write_text(values.read_text().replace(gen.SPLICES[0].start, "    # gone"))

    with pytest.raises(SystemExit, match="lacks the markers"):
        gen.values_outputs(tree)


@pytest.mark.render
def test_a_change_of_the_operator_chart_rbac_makes_manifests_rbac_stale(tree: Path) -> None:
    gen.main(["--root", str(tree)])
    helpers = tree / "charts/model-operator/templates/_helpers.tpl"
    helpers.write_text(helpers.read_text().replace("resources: [pods]", "resources: [pods, nodes]"))

    assert check(tree) == 1
    gen.main(["--root", str(tree)])
    assert "resources: [pods, nodes]" in (tree / "manifests/rbac/operator.yaml").read_text()
