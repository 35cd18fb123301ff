"""The operator image: a helm for its own architecture renders the chart it carries."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devstack.images import Images, run_docker
from devstack.paths import versions
from tests.support.charts import SERVICE, helm, template_args
from tests.support.image_checks import BYTECODE_CHECK, RESTRICTED, UNREADABLE

pytestmark = pytest.mark.images

CHART_IN_IMAGE = Path("/opt/modelops/charts/model-service")
# ELF e_machine of each Docker architecture
ELF_MACHINE = {"amd64": 62, "arm64": 183}
SET = ("--set", "model.sha256=" + "ab" * 32, "--set", "model.artifact=/models/wine/1")


def in_operator(images: Images, *command: str, entrypoint: str = "helm") -> str:
    """Run a command in the operator image under the chart's restrictions (/tmp an emptyDir)."""
    proc = run_docker(
        "run", "--rm", *RESTRICTED, "--tmpfs", "/tmp", "--entrypoint", entrypoint,
        images.operator, *command,
    )  # fmt: skip
    return proc.stdout


def test_helm_is_the_pinned_release_for_the_image_architecture(images: Images) -> None:
    arch = run_docker("image", "inspect", "--format", "{{.Architecture}}", images.operator)
    read_elf = "import sys; print(open('/usr/local/bin/helm', 'rb').read(20)[18])"

    assert (
        in_operator(images, "version", "--template", "{{.Version}}") == (versions()["HELM_VERSION"])
    )
    machine = in_operator(images, "-c", read_elf, entrypoint="python").strip()
    assert int(machine) == ELF_MACHINE[arch.stdout.strip()]


def test_helm_in_the_image_renders_the_chart_it_carries_as_the_repo_does(images: Images) -> None:
    inside = in_operator(images, *template_args(CHART_IN_IMAGE, extra=SET))
    outside = helm(*template_args(SERVICE, extra=SET))

    assert outside.returncode == 0, outside.stderr
    rendered = [d for d in yaml.safe_load_all(inside) if d]
    kinds = sorted(d["kind"] for d in rendered)
    assert "Deployment" in kinds
    assert "Service" in kinds
    assert rendered == [d for d in yaml.safe_load_all(outside.stdout) if d]


def test_the_operator_runs_from_compiled_bytecode(images: Images) -> None:
    out = in_operator(
        images, "-c", BYTECODE_CHECK, "modelops_operator.handlers", entrypoint="python"
    )
    checked, *bad = out.strip().split("\n")
    assert int(checked) > 200, out  # the operator, kopf, the Kubernetes client...
    assert not [b for b in bad if b], "\n".join(bad)


def test_its_user_reads_every_file_of_the_operator_and_the_chart(images: Images) -> None:
    unreadable = in_operator(
        images, "/opt/app", "/opt/venv", "/opt/modelops", *UNREADABLE, entrypoint="find"
    )
    assert unreadable == ""
