"""`make up` checks every prerequisite of the host before step 1 (issue 17, items 2 and 9).

A host whose Docker engine answers but which cannot finish (cgroup v1, no way to get uv)
stops before anything is created, with one line that names the fix. The engines are the
stubs of tests/kind/stubs.py (kind cannot run here); make, hack/kind.sh, the uv bootstrap
and, for PEP 668, Debian's own Python, venv and pip are real.
"""

from __future__ import annotations

import contextlib
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

from tests.kind.stubs import Stubs, host_path_without, make
from tests.support.repo import ROOT, run

SYSTEM_PYTHON = Path("/usr/bin/python3")


def assert_stopped_before_creating_anything(proc, stubs: Stubs, venv: Path) -> str:
    assert proc.returncode != 0, proc.stdout
    assert not any(" create " in f" {c} " for c in stubs.calls("kind")), stubs.calls()
    assert not any(c.startswith("docker build") for c in stubs.calls("docker"))
    assert not (venv / ".installed").exists()
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "***" not in line]
    return lines[-1]


def test_make_up_on_a_cgroup_v1_host_stops_before_step_1(tmp_path):
    stubs = Stubs(tmp_path)
    stubs.docker(cgroup=1)
    stubs.kind()
    venv = tmp_path / "venv"
    proc = make(stubs, "up", f"VENV={venv}")
    last = assert_stopped_before_creating_anything(proc, stubs, venv)
    assert "cgroup v1" in last, last
    assert "needs cgroup v2" in last, last
    assert "systemd.unified_cgroup_hierarchy=1" in last, "the line names the fix"
    assert "1/9" not in proc.stdout
    assert "demo-local" not in proc.stdout, "an engine that answers is not a reason to fall back"


def test_make_up_without_uv_or_python_stops_before_step_1(tmp_path):
    stubs = Stubs(tmp_path)
    stubs.docker(cgroup=2)
    stubs.kind()
    path = host_path_without(tmp_path, "uv", "python3", "python")
    venv = tmp_path / "venv"
    proc = make(stubs, "up", f"VENV={venv}", f"UV_DIR={tmp_path}/uv", path=path)
    last = assert_stopped_before_creating_anything(proc, stubs, venv)
    assert "no python3" in last, last
    assert "install uv" in last, last
    assert "https://docs.astral.sh/uv/" in last


def test_make_up_without_curl_for_missing_tools_stops_before_step_1(tmp_path):
    stubs = Stubs(tmp_path)
    stubs.docker(cgroup=2)
    venv = tmp_path / "venv"
    proc = make(
        stubs,
        "up",
        f"VENV={venv}",
        path=host_path_without(tmp_path, "curl", "kind", "kubectl", "helm"),
    )
    last = assert_stopped_before_creating_anything(proc, stubs, venv)
    assert "curl is needed to download kind kubectl helm" in last, last


def test_preflight_passes_on_a_cgroup_v2_host_with_the_tools(tmp_path):
    stubs = Stubs(tmp_path)
    stubs.docker(cgroup=2)
    for tool, version in [("kind", "v0.33.0"), ("kubectl", "v1.37.2"), ("helm", "v4.1.4")]:
        stubs.pinned(tool, version, "exit 0")
    proc = make(stubs, "kind-preflight")
    assert proc.returncode == 0, proc.stderr
    assert "host: Docker on cgroup v2" in proc.stdout


def fake_uv_wheel(folder: Path, version: str, log: Path) -> Path:
    """A local wheel named uv==version, so that pip installs offline; its `uv` logs its calls
    and makes the venv directory it is asked for, whose python is the one uv runs on (make
    venv compiles bytecode with it). Only the wheel is a stand-in: the Python, its PEP 668
    marker, venv and pip are the host's own."""
    wheel = folder / f"uv-{version}-py3-none-any.whl"
    info = f"uv-{version}.dist-info"
    module = (
        "import pathlib, sys\n"
        "def main():\n"
        f"    with open({str(log)!r}, 'a') as f:\n"
        "        f.write(' '.join(sys.argv[1:]) + '\\n')\n"
        "    if sys.argv[1] == 'venv':\n"
        "        python = pathlib.Path(sys.argv[-1], 'bin', 'python')\n"
        "        python.parent.mkdir(parents=True, exist_ok=True)\n"
        "        if not python.exists():\n"
        "            python.symlink_to(sys.executable)\n"
    )
    files = {
        "fake_uv.py": module,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: uv\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nuv = fake_uv:main\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def test_make_venv_bootstraps_uv_on_a_pep_668_python_without_uv(tmp_path, make_var):
    """Debian 12's own python3 refuses `pip install` (externally managed); the bootstrap
    installs uv into a venv of its own and uses it from there, PATH untouched."""
    assert (SYSTEM_PYTHON.parent.parent / "lib").is_dir()
    refused = run([str(SYSTEM_PYTHON), "-m", "pip", "install", "--dry-run", "uv"])
    assert "externally-managed-environment" in refused.stderr, "the host Python is PEP 668"

    version = make_var("UV_VERSION")
    uv_log = tmp_path / "uv-calls.log"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake_uv_wheel(wheels, version, uv_log)
    stubs = Stubs(tmp_path)
    venv, uv_dir = tmp_path / "venv", tmp_path / "uv"
    path = host_path_without(tmp_path, "uv")
    proc = make(
        stubs,
        "venv",
        f"VENV={venv}",
        f"UV_DIR={uv_dir}",
        path=path,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
    )
    assert proc.returncode == 0, proc.stderr
    assert f"installing uv {version} into {uv_dir}" in proc.stderr
    assert (uv_dir / "bin" / "uv").is_file()
    calls = uv_log.read_text().splitlines()
    assert calls == [
        f"venv --quiet --allow-existing --python {make_var('PYTHON_VERSION')} {venv}",
        f"pip install --quiet --python {venv}/bin/python -e .[dev]",
    ]
    assert (venv / ".installed").exists()

    # A second run finds the bootstrapped uv and installs nothing.
    (venv / ".installed").unlink()
    again = make(stubs, "venv", f"VENV={venv}", f"UV_DIR={uv_dir}", path=path)
    assert again.returncode == 0, again.stderr
    assert "installing uv" not in again.stderr


def test_bootstrap_names_the_fix_when_python_cannot_make_a_venv(tmp_path):
    """Debian/Ubuntu without python3-venv: `python3 -m venv` fails (here a python3 whose
    venv module is shadowed by one that fails the same way)."""
    shadow = tmp_path / "shadow"
    (shadow / "venv").mkdir(parents=True)
    (shadow / "venv" / "__init__.py").write_text("")
    (shadow / "venv" / "__main__.py").write_text(
        "import sys\nsys.exit('The virtual environment was not created successfully because"
        " ensurepip is not available.')\n"
    )
    path = host_path_without(tmp_path, "uv")
    proc = run(
        ["hack/bootstrap-uv.sh", str(tmp_path / "uv")],
        env={
            "PATH": path,
            "UV_VERSION": "0.13.8",
            "PYTHONPATH": str(shadow),
            "HOME": f"{tmp_path}",
        },
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()[-1:]
    assert "sudo apt install python3-venv" in line
    assert "ensurepip is not available" in line
    assert not (tmp_path / "uv").exists(), "a half-made venv is removed"
    assert ROOT.is_dir()


def test_readme_says_what_make_up_needs_of_the_host():
    readme = (ROOT / "README.md").read_text()
    (needs,) = [line for line in readme.splitlines() if line.startswith("| `make up` |")]
    assert "cgroup v2" in needs
    assert "python3 -m venv" in needs
    troubleshooting = readme.split("### Troubleshooting", 1)[1].split("\n## ", 1)[0]
    assert "systemd.unified_cgroup_hierarchy=1" in troubleshooting
    assert "sudo apt install python3-venv" in troubleshooting
    assert "externally-managed-environment" in troubleshooting


def test_preflight_needs_no_curl_when_the_pinned_tools_are_on_path(tmp_path):
    stubs = Stubs(tmp_path)
    stubs.docker(cgroup=2)
    stubs.add("kind", 'echo "kind v0.33.0 go1.26.8 linux/amd64"')
    stubs.add("kubectl", 'echo "Client Version: v1.37.2"')
    stubs.add("helm", "echo v4.1.4")
    proc = make(
        stubs, "kind-preflight", path=host_path_without(tmp_path, "curl", "kubectl", "helm")
    )
    assert proc.returncode == 0, proc.stderr
    assert "will fetch" not in proc.stdout


def pinned_tools(stubs: Stubs, clusters: tuple[str, ...] = ()) -> None:
    stubs.docker(cgroup=2)
    stubs.kind(clusters)
    for tool, version in [("kubectl", "v1.37.2"), ("helm", "v4.1.4")]:
        stubs.pinned(tool, version, "exit 0")


@contextlib.contextmanager
def listener_on(port: int) -> Iterator[None]:
    """Something of the host's own on the port kind wants (or already there: taken either way)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            pass  # another listener already holds it, which is what this stages
        yield


def test_preflight_stops_when_the_traffic_host_port_is_taken(tmp_path):
    stubs = Stubs(tmp_path)
    pinned_tools(stubs)
    with listener_on(30080):
        proc = make(stubs, "kind-preflight")
    assert proc.returncode != 0, proc.stdout
    last = [line for line in proc.stderr.splitlines() if "***" not in line][-1]
    assert "host port 30080 is in use" in last, last
    assert "ss -ltnp" in last, "the line names how to find the listener"
    # the cluster's own mapping holds the port once it exists: a re-run of `make up` passes
    with listener_on(30080):
        proc = make(stubs_with_cluster(tmp_path / "again"), "kind-preflight")
    assert proc.returncode == 0, proc.stderr


def stubs_with_cluster(folder: Path) -> Stubs:
    folder.mkdir()
    stubs = Stubs(folder)
    pinned_tools(stubs, clusters=("modelops",))
    return stubs


def test_preflight_warns_when_inotify_limits_are_below_kinds_advice(tmp_path):
    # The machine's own limits (nothing here can lower /proc): a warning exactly when they
    # are below what kind's known-issues page asks for.
    sysctl = Path("/proc/sys/fs/inotify")
    instances = int((sysctl / "max_user_instances").read_text())
    watches = int((sysctl / "max_user_watches").read_text())
    stubs = Stubs(tmp_path)
    pinned_tools(stubs)
    proc = make(stubs, "kind-preflight")
    assert proc.returncode == 0, proc.stderr
    warned = "pods may fail with 'too many open files'" in proc.stdout
    assert warned == (instances < 512 or watches < 524288), proc.stdout
    if warned:
        assert "sudo sysctl fs.inotify.max_user_instances=512" in proc.stdout
