"""The Kind section of the Makefile, through `make -n` (nothing is created or downloaded)."""

from __future__ import annotations

import os
import re
import shlex
import stat
from pathlib import Path

import pytest

from tests.support.repo import ROOT, run, tool

# `make up` in the order a user reads it in the issue: cluster, monitoring (and the metrics
# API the chart's HorizontalPodAutoscaler reads), images, operator, a model with plain helm,
# the example ModelDeployment, wait, what next.
UP_STEPS = [
    ("kind cluster", r"kind-v\S+ create cluster --name modelops --config kind-config\.yaml"),
    ("kube-prometheus-stack", r"upgrade --install kube-prometheus-stack kube-prometheus-stack "),
    ("metrics-server", r"upgrade --install metrics-server metrics-server "),
    ("service and operator images", r"hack/images\.sh"),
    ("load into kind", r"hack/kind.sh load-images model-service:\S+ modelops-operator:"),
    ("operator chart", r"upgrade --install model-operator charts/model-operator "),
    ("model-service chart", r"upgrade --install \S+ charts/model-service "),
    ("example ModelDeployment", r"hack/kind.sh apply-once manifests/examples/\S+\.yaml"),
    ("wait", r"hack/kind.sh wait-ready "),
    ("next steps", r"hack/kind.sh next-steps"),
]


def fake_docker(tmp_path: Path, engine_answers: bool) -> dict[str, str]:
    """An environment whose `docker` answers `docker info` (or fails like a stopped engine)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    docker = bindir / "docker"
    if engine_answers:
        docker.write_text('#!/bin/sh\n[ "$1" = info ] && echo 27.3.1\nexit 0\n')
    else:
        docker.write_text(
            "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.'"
            " >&2\nexit 1\n"
        )
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def make_n(target: str, env: dict[str, str], *args: str) -> str:
    proc = run(["make", "-n", "--no-print-directory", target, *args], env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_make_n_up_lists_the_steps_in_order(tmp_path):
    out = make_n("up", fake_docker(tmp_path, engine_answers=True))
    positions = []
    for name, pattern in UP_STEPS:
        found = re.search(pattern, out)
        assert found, f"step '{name}' ({pattern}) missing from make -n up:\n{out}"
        positions.append((found.start(), name))
    assert [n for _, n in sorted(positions)] == [n for n, _ in UP_STEPS]
    assert "Docker engine 27.3.1 answers" in out
    assert "-m devstack.demo" not in out, "demo-local must not run when Docker answers"


def test_make_n_up_installs_missing_tools_first(tmp_path, make_var):
    out = make_n("up", fake_docker(tmp_path, engine_answers=True), f"LOCALBIN={tmp_path}/bin")
    first_step = re.search(UP_STEPS[0][1], out).start()
    for name, version in [
        ("kind", make_var("KIND_VERSION")),
        ("helm", make_var("KIND_HELM_VERSION")),
        ("kubectl", make_var("KIND_KUBECTL_VERSION")),
    ]:
        install = out.find(f"hack/kind.sh install-tool {tmp_path}/bin/{name}-{version}")
        assert 0 <= install < first_step, f"{name} {version} is not installed before use:\n{out}"


def test_make_n_up_without_a_docker_engine_runs_demo_local(tmp_path):
    out = make_n("up", fake_docker(tmp_path, engine_answers=False))
    assert "no engine answers: Cannot connect to the Docker daemon" in out
    assert "running the no-Docker demo instead (make demo-local)" in out
    assert re.search(r"^\S*python -m devstack\.demo\b", out, re.M), "the recipe of demo-local runs"
    assert "create cluster" not in out
    assert "hack/images.sh" not in out


def test_every_kubectl_and_helm_call_names_the_kind_context(tmp_path):
    """`make up` never acts on whatever cluster the user's current context points at."""
    out = make_n("up", fake_docker(tmp_path, engine_answers=True))
    calls = [
        line
        for line in out.splitlines()
        if re.match(r"\S*/(kubectl|helm)-v\S+ ", line.strip()) and "install-tool" not in line
    ]
    assert len(calls) >= 5, out
    for line in calls:
        assert re.search(r"--(kube-)?context kind-modelops\b", line), line


def test_kube_prometheus_stack_is_pinned_with_the_repo_values(tmp_path, make_var):
    out = make_n("kind-up", fake_docker(tmp_path, engine_answers=True))
    version = make_var("KPS_CHART_VERSION")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert f"--version {version} " in out
    assert "--values deploy/kube-prometheus-stack-values.yaml" in out
    assert (ROOT / "deploy" / "kube-prometheus-stack-values.yaml").is_file()


def test_metrics_server_is_pinned_and_reads_kinds_self_signed_kubelets(tmp_path, make_var):
    """kind's kubelets serve a self-signed certificate: without --kubelet-insecure-tls
    metrics-server scrapes none of them and the metrics API answers nothing."""
    out = make_n("kind-up", fake_docker(tmp_path, engine_answers=True)).replace("\\\n", " ")
    line = next(ln for ln in out.splitlines() if "--install metrics-server" in ln)
    words = shlex.split(line)
    version = make_var("METRICS_SERVER_CHART_VERSION")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert words[words.index("--version") + 1] == version
    assert words[words.index("--namespace") + 1] == "kube-system"
    assert words[words.index("--set-json") + 1] == 'args=["--kubelet-insecure-tls"]'


def test_images_are_the_ones_the_charts_default_to(make_var):
    import yaml

    for chart, var in [("model-service", "SERVICE_IMAGE"), ("model-operator", "OPERATOR_IMAGE")]:
        values = yaml.safe_load((ROOT / "charts" / chart / "values.yaml").read_text())
        meta = yaml.safe_load((ROOT / "charts" / chart / "Chart.yaml").read_text())
        assert make_var(var) == f"{values['image']['repository']}:{meta['appVersion']}"


def test_helm_for_laptops_is_the_helm_that_renders_charts_in_tests(make_var):
    versions = dict(
        line.split("=", 1)
        for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert make_var("KIND_HELM_VERSION") == versions["HELM_VERSION"]


def test_demo_local_runs_the_demo_with_its_prerequisites_and_args():
    out = make_n("demo-local", dict(os.environ), "DEMO_LOCAL_ARGS=--yes --keep-cluster")
    lines = out.splitlines()
    demo = next(i for i, line in enumerate(lines) if " -m devstack.demo " in f"{line} ")
    assert lines[demo].split()[-2:] == ["--yes", "--keep-cluster"]
    tools = next(i for i, line in enumerate(lines) if "hack/install-tools.sh" in line)
    models = next(i for i, line in enumerate(lines) if "modelops_service.train" in line)
    assert tools < demo
    assert models < demo


def test_demo_local_options_are_documented():
    import sys

    proc = run([sys.executable, "-m", "devstack.demo", "--help"])
    assert proc.returncode == 0, proc.stderr
    for option in (
        "--yes", "--non-interactive", "--node", "--keep-cluster", "--kubeconfig", "--summary",
    ):  # fmt: skip
        assert option in proc.stdout


def test_help_documents_every_kind_target():
    proc = run(["make", "--no-print-directory", "help"])
    assert proc.returncode == 0
    plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    section = plain.split("Kind (", 1)[1]
    for target in [
        "up",
        "kind-up",
        "down",
        "status",
        "grafana",
        "prometheus",
        "images",
        "load-images",
        "demo",
        "demo-local",
        "alerting",
        "kind-preflight",
        "kind-tools",
    ]:
        assert re.search(rf"^  {re.escape(target)} +\S", section, re.M), f"{target} has no ## help"


@pytest.mark.parametrize(
    ("tool", "version_output"),
    [
        ("kind", "kind v0.33.0 go1.26.8 linux/amd64"),
        ("helm", "v4.1.4"),
        ("kubectl", "Client Version: v1.37.2\nKustomize Version: v5.7.1"),
    ],
)
def test_install_tool_links_a_tool_on_path_at_the_pinned_version(tmp_path, tool, version_output):
    """The pinned version already on PATH is used as it is: no download."""
    version = re.search(r"v\d+\.\d+\.\d+", version_output).group(0)
    bindir = tmp_path / "path"
    bindir.mkdir()
    fake = bindir / tool
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{version_output}'\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}
    dest = tmp_path / "bin" / f"{tool}-{version}"
    proc = run(["hack/kind.sh", "install-tool", str(dest)], env=env)
    assert proc.returncode == 0, proc.stderr
    assert dest.resolve() == fake.resolve()
    assert (tmp_path / "bin" / tool).resolve() == fake.resolve()


def test_the_examples_make_up_and_demo_use_exist_and_run_the_loaded_image(make_var):
    import json

    import yaml

    image = make_var("SERVICE_IMAGE")
    namespace = make_var("MODELS_NS")
    for var in ("KIND_EXAMPLE", "DEMO_MANIFEST", "ROLLBACK_MANIFEST"):
        path = ROOT / make_var(var)
        assert path.is_file(), f"{var}={path} is missing"
        (md,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert md["kind"] == "ModelDeployment"
        assert md["metadata"]["namespace"] == namespace
        model = md["spec"]["model"]
        assert model["image"] == image, f"{var}: kind only has {image}"
        assert model["artifact"] == f"/models/{model['name']}/{model['version']}"
    patch = json.loads(make_var("ROLLBACK_PATCH"))
    assert patch["spec"]["model"]["version"] == "2"
    svc = yaml.safe_load((ROOT / "deploy" / "kind" / "demo-traffic-service.yaml").read_text())
    assert svc["metadata"]["namespace"] == namespace
    example = yaml.safe_load((ROOT / make_var("KIND_EXAMPLE")).read_text())
    assert svc["spec"]["selector"]["modelops.io/model"] == example["spec"]["model"]["name"]


def test_demo_traffic_flags_are_ones_loadtest_accepts():
    import shlex

    from loadtest.__main__ import parser

    script = (ROOT / "hack" / "kind.sh").read_text()
    call = re.search(r"-m loadtest (.*?)\)", script, re.S)
    assert call, "hack/kind.sh runs python -m loadtest"
    words = shlex.split(call.group(1).replace("\\\n", " "))
    words = ["http://127.0.0.1:30080" if w == "$TRAFFIC_URL" else w for w in words]
    args = parser().parse_args(words)
    assert args.url == "http://127.0.0.1:30080"
    assert args.scenario == "normal"
    assert not args.allow_remote


def helm_installs(out: str) -> dict[str, list[str]]:
    """chart path -> the arguments `make up` gives `helm upgrade --install` for it."""
    fake_sha = "0" * 64
    joined = out.replace("\\\n", " ")
    joined = re.sub(r"\$\(hack/kind\.sh model-sha256 [^)]*\)", fake_sha, joined)
    installs = {}
    for line in joined.splitlines():
        if " upgrade --install " not in line or "charts/" not in line:
            continue
        words = shlex.split(line)
        i = words.index("--install")
        release, chart, rest = words[i + 1], words[i + 2], words[i + 3 :]
        installs[chart] = [release, chart, *rest]
    return installs


def as_template(args: list[str]) -> list[str]:
    """The same install as `helm template` (no cluster): drop the flags only install knows."""
    out, skip = [], False
    for word in args:
        if skip:
            skip = False
            continue
        if word in ("--timeout", "--kube-context"):
            skip = True
            continue
        if word == "--create-namespace" or word.startswith("--wait"):
            continue
        out.append(word)
    return out


@pytest.mark.render
def test_the_helm_installs_of_make_up_render_with_their_values(tmp_path, make_var):
    """Every --set of `make up` is a key the chart's values.schema.json accepts."""
    import yaml

    out = make_n("kind-up", fake_docker(tmp_path, engine_answers=True))
    installs = helm_installs(out)
    assert set(installs) == {"charts/model-operator", "charts/model-service"}
    helm = tool("helm")
    images = {}
    for chart, args in installs.items():
        proc = run(
            [helm, "template", *as_template(args), "--api-versions", "monitoring.coreos.com/v1"]
        )
        assert proc.returncode == 0, f"{chart}: {proc.stderr}"
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        deployments = [d for d in docs if d["kind"] == "Deployment"]
        assert deployments, chart
        images[chart] = deployments[0]["spec"]["template"]["spec"]["containers"][0]["image"]
        if chart == "charts/model-service":
            env = deployments[0]["spec"]["template"]["spec"]["containers"][0].get("env", [])
            env_map = {e["name"]: e.get("value") for e in env}
            model = make_var("HELM_MODEL")
            assert env_map.get("MODELOPS_MODEL_DIR") == f"/models/{model}/1"
            assert env_map.get("MODELOPS_MODEL_SHA256") == "0" * 64
        if chart == "charts/model-operator":
            assert any(d["kind"] == "ServiceMonitor" for d in docs), "operator metrics scraped"
    assert images == {
        "charts/model-service": make_var("SERVICE_IMAGE"),
        "charts/model-operator": make_var("OPERATOR_IMAGE"),
    }
