"""`helm lint --strict` is clean for both charts, with the defaults and every ci/ values file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.charts import OPERATOR, SERVICE, ci_values, helm

pytestmark = pytest.mark.render

CASES = [(chart, None) for chart in (SERVICE, OPERATOR)] + [
    (chart, f) for chart in (SERVICE, OPERATOR) for f in ci_values(chart)
]


@pytest.mark.parametrize(
    ("chart", "values_file"),
    CASES,
    ids=[f"{c.name}-{f.stem if f else 'defaults'}" for c, f in CASES],
)
def test_lint_strict_is_clean(chart: Path, values_file: Path | None, helm_bin: str) -> None:
    args = ["lint", "--strict", str(chart)]
    if values_file:
        args += ["--values", str(values_file)]

    proc = helm(*args, binary=helm_bin)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout
    assert "[ERROR]" not in proc.stdout


@pytest.mark.parametrize("chart", [SERVICE, OPERATOR], ids=lambda c: c.name)
def test_chart_metadata(chart: Path) -> None:
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())

    assert meta["apiVersion"] == "v2"
    assert meta["kubeVersion"].startswith(">=1.")
    assert meta["type"] == "application"
    assert (chart / "values.schema.json").is_file()
    assert (chart / "templates" / "NOTES.txt").is_file()
    assert ci_values(chart), "each chart has ci/*-values.yaml for non-default installs"


@pytest.mark.parametrize("chart", [SERVICE, OPERATOR], ids=lambda c: c.name)
def test_every_define_is_prefixed_with_the_chart_name(chart: Path) -> None:
    import re

    names = []
    for tpl in chart.glob("templates/**/*.tpl"):
        names += re.findall(r'define "([^"]+)"', tpl.read_text())

    assert names
    assert all(n.startswith(f"{chart.name}.") for n in names), names
