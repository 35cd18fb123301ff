"""hack/generate.py (`make generate`): the chart's copies equal their sources, the README
tables match values.yaml, and the step itself copies, splices and prunes as documented.

Pure tier: Python only, no helm.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
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


def test_the_committed_charts_are_up_to_date_with_their_sources(capsys) -> None:
    code = gen.main(["--check"])

    assert code == 0, capsys.readouterr().err


def test_every_rule_file_copy_equals_its_source() -> None:
    for out in gen.rule_outputs(ROOT):
        assert (ROOT / out.path).read_bytes() == (ROOT / out.source).read_bytes(), out.path


def test_every_dashboard_copy_equals_its_source() -> None:
    outs = gen.dashboard_outputs(ROOT)
    copies = sorted((SERVICE / "files" / "dashboards").glob("*.json"))

    assert sorted(ROOT / o.path for o in outs) == copies
    for out in outs:
        assert (ROOT / out.path).read_bytes() == (ROOT / out.source).read_bytes(), out.path


def test_the_operator_chart_crd_is_the_manifests_crd() -> None:
    sources = sorted((ROOT / "manifests" / "crd").glob("*.yaml"))
    copies = sorted((OPERATOR / "crds").glob("*.yaml"))

    assert [p.name for p in copies] == [p.name for p in sources]
    for src, copy in zip(sources, copies, strict=True):
        assert copy.read_bytes() == src.read_bytes()


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
    """A scratch repo: the two charts (without generated files) and empty source dirs."""
    for chart in (SERVICE, OPERATOR):
        shutil.copytree(chart, tmp_path / "charts" / chart.name)
    for d in ("files/rules", "files/rules-tpl", "files/dashboards"):
        shutil.rmtree(tmp_path / "charts/model-service" / d, ignore_errors=True)
    shutil.rmtree(tmp_path / "charts/model-operator/crds", ignore_errors=True)
    for d in ("alerts/helm", "dashboards", "manifests/crd"):
        (tmp_path / d).mkdir(parents=True)
    gen.main(["--root", str(tmp_path)])  # the empty state: no copies, nothing spliced
    return tmp_path


def check(root: Path) -> int:
    return gen.main(["--check", "--root", str(root)])


def test_copies_rule_files_and_leaves_out_promtool_tests(tree: Path) -> None:
    (tree / "alerts/model.rules.yaml").write_text("groups:\n  - name: g\n    rules: []\n")
    (tree / "alerts/model.rules_test.yaml").write_text("rule_files: [x]\ntests: []\n")

    assert check(tree) == 1
    gen.main(["--root", str(tree)])

    assert check(tree) == 0
    copies = sorted(p.name for p in (tree / "charts/model-service/files/rules").iterdir())
    assert copies == ["model-rules.yaml"]


def test_prefers_the_helm_variant_of_a_rule_file(tree: Path) -> None:
    (tree / "alerts/model.rules.yaml").write_text("groups: []\n")
    (tree / "alerts/helm/model.rules.yaml").write_text("groups:\n  - name: {{ .Release.Name }}\n")
    gen.main(["--root", str(tree)])

    files = tree / "charts/model-service/files"
    assert not list((files / "rules").glob("*")) if (files / "rules").exists() else True
    assert (files / "rules-tpl/model-rules.yaml").read_text().startswith("groups:")


def test_copies_dashboards_with_resource_safe_names(tree: Path) -> None:
    (tree / "dashboards/Model_Overview.json").write_text('{"title": "x"}')
    gen.main(["--root", str(tree)])

    copy = tree / "charts/model-service/files/dashboards/model-overview.json"
    assert copy.read_text() == '{"title": "x"}'


def test_rejects_a_dashboard_that_is_not_json(tree: Path) -> None:
    (tree / "dashboards/bad.json").write_text("{nope")

    with pytest.raises(SystemExit, match="not valid JSON"):
        gen.main(["--root", str(tree)])


def test_copies_the_crd_byte_for_byte(tree: Path) -> None:
    crd = "# keep me\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
    (tree / "manifests/crd/modeldeployments.modelops.io.yaml").write_text(crd)
    gen.main(["--root", str(tree)])

    assert (
        tree / "charts/model-operator/crds/modeldeployments.modelops.io.yaml"
    ).read_text() == crd


def test_removes_copies_whose_source_is_gone(tree: Path) -> None:
    (tree / "dashboards/a.json").write_text("{}")
    gen.main(["--root", str(tree)])
    (tree / "dashboards/a.json").unlink()

    assert check(tree) == 1
    gen.main(["--root", str(tree)])
    assert not (tree / "charts/model-service/files/dashboards/a.json").exists()


def test_splices_the_rule_params_into_values_and_schema(tree: Path) -> None:
    fragment = "# header\nparams:\n  # -- The threshold.\n  threshold: 0.5\n"
    fragment += "  # -- The scope.\n  scope: a\n"
    (tree / "alerts/helm/values.yaml").write_text(fragment)
    typed = {"type": "object", "properties": {"threshold": {"type": "number", "maximum": 1}}}
    (tree / "alerts/helm/values.schema.json").write_text(
        json.dumps({"properties": {"params": typed}})
    )
    gen.main(["--root", str(tree)])
    chart = tree / "charts/model-service"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    readme = (chart / "README.md").read_text()

    assert values["monitoring"]["prometheusRule"]["params"] == {"threshold": 0.5, "scope": "a"}
    rule_schema = schema["properties"]["monitoring"]["properties"]["prometheusRule"]
    params_schema = rule_schema["properties"]["params"]
    assert params_schema["x-generated-from"] == "alerts/helm/values.yaml"
    assert params_schema["properties"]["threshold"] == {"type": "number", "maximum": 1}
    assert params_schema["properties"]["scope"] == {"type": "string"}
    row = "| `monitoring.prometheusRule.params.threshold` | number | `0.5` | The threshold. |"
    assert row in readme
    assert check(tree) == 0

    (tree / "alerts/helm/values.yaml").unlink()
    (tree / "alerts/helm/values.schema.json").unlink()
    gen.main(["--root", str(tree)])
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert "params" not in values["monitoring"]["prometheusRule"]


def test_refuses_params_that_clash_with_the_chart_values(tree: Path) -> None:
    (tree / "alerts/helm/values.yaml").write_text("enabled: false\n")

    with pytest.raises(SystemExit, match="clash"):
        gen.main(["--root", str(tree)])
