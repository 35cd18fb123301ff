"""hack/image_inputs.py: the hash that decides whether an image is rebuilt (pure, no engine)."""

from __future__ import annotations

import importlib.util
import re

from devstack.images import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    "image_inputs", REPO_ROOT / "hack" / "image_inputs.py"
)
assert _spec
assert _spec.loader
image_inputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_inputs)

IGNORE = "*\n!app\n!pyproject.toml\n**/__pycache__\napp/**/*.tmp\n"


def context(tmp_path):
    (tmp_path / "app" / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "app" / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "app" / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"pyc")
    (tmp_path / "app" / "pkg" / "scratch.tmp").write_text("tmp")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "notes.txt").write_text("not in the context")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "Dockerfile.dockerignore").write_text(IGNORE)
    return tmp_path


def digest(ctx, *extras: str) -> str:
    return image_inputs.inputs_digest(ctx / "Dockerfile", list(extras), context=ctx)


def test_the_context_holds_what_the_ignore_file_lets_through(tmp_path) -> None:
    ctx = context(tmp_path)
    rules = image_inputs.parse_rules(IGNORE)

    assert image_inputs.context_files(ctx, rules) == ["app/pkg/mod.py", "pyproject.toml"]


def test_only_inputs_change_the_digest(tmp_path) -> None:
    ctx = context(tmp_path)
    before = digest(ctx, "base=python@sha256:1")

    (ctx / "notes.txt").write_text("changed, but ignored")
    (ctx / "app" / "pkg" / "__pycache__" / "mod.pyc").write_bytes(b"other")
    assert digest(ctx, "base=python@sha256:1") == before

    assert digest(ctx, "base=python@sha256:2") != before
    (ctx / "app" / "pkg" / "mod.py").write_text("x = 2\n")
    assert digest(ctx, "base=python@sha256:1") != before


def test_the_real_contexts_hold_code_and_models_only() -> None:
    for dockerfile, tops in (
        ("service/Dockerfile", {"models", "pyproject.toml", "service"}),
        ("operator/Dockerfile", {"charts", "operator", "pyproject.toml", ".cache"}),
    ):
        ignore = (REPO_ROOT / (dockerfile + ".dockerignore")).read_text()
        files = image_inputs.context_files(REPO_ROOT, image_inputs.parse_rules(ignore))
        assert {f.split("/")[0] for f in files} <= tops, dockerfile
        assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


def test_dockerfile_helm_default_is_the_pinned_helm() -> None:
    """Users' plain `docker build` gets the helm that versions.env pins for the tests."""
    pins = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "hack" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    defaults = re.findall(
        r"^ARG HELM_VERSION=(\S+)$", (REPO_ROOT / "operator" / "Dockerfile").read_text(), re.M
    )
    assert defaults
    assert set(defaults) == {pins["HELM_VERSION"]}
