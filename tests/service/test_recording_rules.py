"""The recording-rule catalog: well-formed names, and importable on its own (the operator
image carries it without the rest of the service)."""

from __future__ import annotations

import ast
import re
import sys

from modelops_service import recording_rules as rr
from tests.support.repo import ROOT

MODULE = ROOT / "service" / "modelops_service" / "recording_rules.py"


def test_every_name_is_level_metric_operation_and_unique() -> None:
    names = [r.name for r in rr.RECORDING_RULES]

    assert len(names) == len(set(names)) == len(rr.recorded_names())
    for name in names:
        # by model and version, or also by class, or by histogram bucket
        level = rf"({rr.LEVEL}|{rr.CLASS_LEVEL}|{rr.BUCKET_LEVEL})"
        assert re.fullmatch(rf"{level}:[a-z0-9_]+:(rate[0-9]+[smhd]|max)", name), name


def test_a_rate_rule_knows_its_window_and_what_it_records() -> None:
    assert (rr.ERROR_RATIO["30m"].metric, rr.ERROR_RATIO["30m"].window) == ("error_ratio", "30m")
    assert rr.DRIFT_SCORE_MAX.window is None
    assert set(rr.ERROR_RATIO) == set(rr.ERROR_RATIO_WINDOWS)


def test_the_catalog_imports_only_the_standard_library() -> None:
    tree = ast.parse(MODULE.read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }

    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_the_operator_image_carries_the_catalog() -> None:
    dockerfile = (ROOT / "operator" / "Dockerfile").read_text()
    context = (ROOT / "operator" / "Dockerfile.dockerignore").read_text().splitlines()

    for relative in ("service/modelops_service/__init__.py", str(MODULE.relative_to(ROOT))):
        assert f"!{relative}" in context
        assert relative in dockerfile
