"""The Kind targets besides `up`: tools, image loading, the Alertmanager example.

Issue 17: every target installs the pinned tools it calls (item 6), `load-images` falls
back to a single-platform archive when `kind load docker-image` fails with Docker's
containerd image store (item 8), and `make alerting` upgrades the one kube-prometheus-stack
release with both values files (item 4). kind, kubectl, helm and docker are the stubs of
tests/kind/stubs.py, since kind cannot run here; make and hack/kind.sh are real.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.kind.stubs import KIND_VERSION, Stubs, make
from tests.support.repo import ROOT, run

KUBECTL_VERSION = "v1.37.2"
HELM_VERSION = "v4.1.4"

# target -> the pinned tools its recipe (or hack/kind.sh behind it) calls
TOOLS_OF = {
    "down": ["kind"],
    "status": ["kind", "kubectl", "helm"],
    "grafana": ["kind", "kubectl"],
    "prometheus": ["kind", "kubectl"],
    "demo": ["kind", "kubectl"],
    "demo-rollback": ["kind", "kubectl"],
    "load-images": ["kind"],
    "alerting": ["kind", "kubectl", "helm"],
    "kind-up": ["kind", "kubectl", "helm"],
}


@pytest.mark.parametrize("target", sorted(TOOLS_OF))
def test_every_kind_target_installs_the_tools_it_calls_first(tmp_path, make_var, target):
    localbin = tmp_path / "fresh-clone-bin"
    proc = run(["make", "-n", "--no-print-directory", target, f"LOCALBIN={localbin}"])
    assert proc.returncode == 0, proc.stderr
    versions = {
        "kind": make_var("KIND_VERSION"),
        "kubectl": make_var("KIND_KUBECTL_VERSION"),
        "helm": make_var("KIND_HELM_VERSION"),
    }
    lines = proc.stdout.splitlines()
    # a line that runs a pinned tool, or a hack/kind.sh command that does
    uses = [
        i
        for i, line in enumerate(lines)
        if line.startswith(f"{localbin}/")
        or re.search(r"hack/kind\.sh (?!install-tool|engine|preflight)", line)
    ]
    assert uses, proc.stdout
    for tool in TOOLS_OF[target]:
        install = lines.index(f"hack/kind.sh install-tool {localbin}/{tool}-{versions[tool]}")
        assert install < min(uses), f"{target} calls {tool} before installing it:\n{proc.stdout}"


def test_down_deletes_a_cluster_when_only_a_kind_on_path_knows_it(tmp_path):
    """A fresh clone (no bin/) whose user has the pinned kind on PATH and a cluster."""
    stubs = Stubs(tmp_path)
    on_path = stubs.kind(clusters=("modelops",))
    on_path.rename(stubs.path_dir / "kind")
    proc = make(stubs, "down")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" not in proc.stdout
    assert "kind delete cluster --name modelops" in stubs.calls("kind")


def test_status_uses_the_pinned_helm_it_installs(tmp_path):
    stubs = Stubs(tmp_path)
    stubs.kind(clusters=("modelops",))
    stubs.pinned("kubectl", KUBECTL_VERSION, "exit 0")
    stubs.add("helm", f'[ "$1" = version ] && echo {HELM_VERSION}; exit 0')
    proc = make(stubs, "status")
    assert proc.returncode == 0, proc.stderr
    assert (stubs.localbin / f"helm-{HELM_VERSION}").resolve() == stubs.path_dir / "helm"
    assert "helm --kube-context kind-modelops list -A" in stubs.calls("helm")


@pytest.mark.parametrize("target", ["down", "status"])
def test_down_and_status_are_idempotent_without_a_cluster(tmp_path, target):
    stubs = Stubs(tmp_path)
    stubs.kind()
    stubs.pinned("kubectl", KUBECTL_VERSION, "exit 0")
    stubs.pinned("helm", HELM_VERSION, "exit 0")
    proc = make(stubs, target)
    assert proc.returncode == 0, proc.stderr
    assert "no kind cluster 'modelops'" in proc.stdout
    assert not any("delete" in c for c in stubs.calls())


@pytest.mark.parametrize("exists", [False, True])
def test_make_up_applies_the_example_once_and_leaves_what_the_demo_rolled_on(
    tmp_path, make_var, exists
):
    """A re-run of `make up` after `make demo` (version 3) must not apply version 1 again:
    that asks the operator for a rollback of the model."""
    stubs = Stubs(tmp_path)
    answer = "exit 0" if exists else 'echo "Error from server (NotFound)" >&2; exit 1'
    kubectl = stubs.pinned("kubectl", KUBECTL_VERSION, f'[ "$3" = get ] && {{ {answer}; }}; exit 0')
    example = make_var("KIND_EXAMPLE")
    proc = run(
        [str(ROOT / "hack" / "kind.sh"), "apply-once", example],
        env={**stubs.env(), "KUBECTL": str(kubectl)},
    )
    assert proc.returncode == 0, proc.stderr
    calls = stubs.calls("kubectl")
    assert calls[0] == "kubectl --context kind-modelops get modeldeployment diabetes -n models"
    applied = f"kubectl --context kind-modelops apply -f {example}"
    if exists:
        assert applied not in calls
        assert "modeldeployment/diabetes in models exists: left as it is" in proc.stdout
    else:
        assert calls[-1] == applied


# --- item 8: kind load docker-image and Docker's containerd image store ----------------

CTR_ERROR = (
    "echo 'ERROR: failed to load image: command \"docker exec --privileged -i "
    "modelops-control-plane ctr --namespace=k8s.io images import --all-platforms --digests "
    "--snapshotter=overlayfs -\\\" failed with error: exit status 1' >&2\n"
    "    echo 'Command Output: ctr: content digest sha256:82014a3c: not found' >&2; exit 1"
)


def load_images(tmp_path, make_var, kind_load_fails: bool):
    """hack/kind.sh load-images as `make load-images` calls it (the images step before it is
    hack/images.sh, tested with the images)."""
    stubs = Stubs(tmp_path)
    stubs.docker(extra='  image) [ "$2" = save ] && touch "${@: -3:1}" ;;')
    failing = f'  "load docker-image") {CTR_ERROR} ;;' if kind_load_fails else ""
    kind = stubs.kind(clusters=("modelops",), extra=failing)
    images = [make_var("SERVICE_IMAGE"), make_var("OPERATOR_IMAGE")]
    proc = run(
        [str(ROOT / "hack" / "kind.sh"), "load-images", *images],
        env={**stubs.env(), "KIND": str(kind)},
    )
    return stubs, proc


def test_load_images_falls_back_to_a_single_platform_archive(tmp_path, make_var):
    stubs, proc = load_images(tmp_path, make_var, kind_load_fails=True)
    assert proc.returncode == 0, proc.stderr
    images = f"{make_var('SERVICE_IMAGE')} {make_var('OPERATOR_IMAGE')}"
    kind = stubs.calls("kind")
    assert f"kind load docker-image --name modelops {images}" in kind
    (save,) = [c for c in stubs.calls("docker") if c.startswith("docker image save")]
    archive = re.search(r"--output (\S+) ", save).group(1)
    assert save == f"docker image save --platform linux/amd64 --output {archive} {images}"
    assert kind[-1] == f"kind load image-archive --name modelops {archive}"
    assert "kind issue #3795" in proc.stdout


def test_load_images_needs_no_fallback_when_kind_loads_them(tmp_path, make_var):
    stubs, proc = load_images(tmp_path, make_var, kind_load_fails=False)
    assert proc.returncode == 0, proc.stderr
    assert not any("image save" in c for c in stubs.calls("docker"))
    assert not any("image-archive" in c for c in stubs.calls("kind"))


def test_troubleshooting_tells_of_the_containerd_image_store():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Troubleshooting", 1)[1].split("\n## ", 1)[0]
    assert "content digest" in section
    assert "docker image save --platform" in section
    assert "kind load image-archive" in section


# --- item 4: the Alertmanager example on the same kube-prometheus-stack release ---------


def helm_line(out: str, marker: str) -> str:
    joined = out.replace("\\\n", " ")
    (line,) = [ln for ln in joined.splitlines() if "upgrade --install kube-prometheus-stack" in ln]
    assert marker in out
    return re.sub(r"\s+", " ", line.strip())


def test_alerting_upgrades_the_same_release_with_both_values_files(tmp_path):
    up = run(["make", "-n", "--no-print-directory", "kind-up", f"LOCALBIN={tmp_path}"])
    alerting = run(["make", "-n", "--no-print-directory", "alerting", f"LOCALBIN={tmp_path}"])
    assert up.returncode == 0, up.stderr
    assert alerting.returncode == 0, alerting.stderr
    install = helm_line(up.stdout, "kube-prometheus-stack")
    upgrade = helm_line(alerting.stdout, "alerting-values")
    base = install.split(" --wait")[0]
    assert upgrade.startswith(f"{base} --values .run/alerting-values.yaml "), (install, upgrade)
    assert "--values deploy/kube-prometheus-stack-values.yaml" in upgrade
    assert re.search(r"--version \d+\.\d+\.\d+ ", upgrade)
    assert "hack/kind.sh alerting-values > .run/alerting-values.yaml" in alerting.stdout


def test_alerting_values_carry_the_example_config_and_its_secret_mount():
    proc = run([str(ROOT / "hack" / "kind.sh"), "alerting-values"], env=None)
    assert proc.returncode == 0, proc.stderr
    values = yaml.safe_load(proc.stdout)
    example = yaml.safe_load((ROOT / "alerts" / "alertmanager" / "alertmanager.yaml").read_text())
    assert values["alertmanager"]["config"] == example
    assert values["alertmanager"]["alertmanagerSpec"]["secrets"] == ["modelops-alerting"]
    assert set(values) == {"alertmanager"}, "the overlay touches the Alertmanager only"


def test_the_example_files_point_to_make_alerting():
    folder = ROOT / "alerts" / "alertmanager"
    for name in ("kube-prometheus-stack-values.yaml", "secret.yaml"):
        text = (folder / name).read_text()
        assert "make alerting" in text, name
        assert "prometheus-community/" not in text, f"{name}: no repo alias users never added"
        assert "helm upgrade --install kps" not in text, f"{name}: no second release"


def test_alerting_secret_comes_from_the_environment_and_never_from_argv(tmp_path):
    stubs = Stubs(tmp_path)
    stubs.kind(clusters=("modelops",))
    kubectl = r"""case "$*" in
  *"create secret generic"*)
    for a in "$@"; do case $a in
      --from-file=*) f=${a#*=}; f=${f#*=}; cat "$f" >> "$0.files"; echo >> "$0.files" ;;
    esac; done
    echo "kind: Secret" ;;
  *"apply -f -"*) cat > /dev/null ;;
esac
exit 0"""
    script = stubs.pinned("kubectl", KUBECTL_VERSION, kubectl)
    env = {"SLACK_API_URL": "https://chat.invalid/hook/s3cr3t", "PAGER_TOKEN": "t0k3n"}
    proc = run(
        [str(ROOT / "hack" / "kind.sh"), "alerting-secret"],
        env={**stubs.env(), "KUBECTL": str(script), **env},
    )
    assert proc.returncode == 0, proc.stderr
    calls = "\n".join(stubs.calls("kubectl"))
    assert "create secret generic modelops-alerting" in calls
    assert "apply -f -" in calls
    assert "s3cr3t" not in calls
    assert "t0k3n" not in calls
    stored = (stubs.localbin / f"kubectl-{KUBECTL_VERSION}.files").read_text().split()
    assert stored == ["https://chat.invalid/hook/s3cr3t", "t0k3n"]


def test_alerting_without_secret_or_variables_names_them(tmp_path):
    stubs = Stubs(tmp_path)
    script = stubs.pinned("kubectl", KUBECTL_VERSION, "exit 1")
    proc = run(
        [str(ROOT / "hack" / "kind.sh"), "alerting-secret"],
        env={**stubs.env(), "KUBECTL": str(script)},
    )
    assert proc.returncode == 1
    assert "export SLACK_API_URL and PAGER_TOKEN" in proc.stderr
    assert KIND_VERSION
