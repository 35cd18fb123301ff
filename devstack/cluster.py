"""The handle of a running cluster, as tests and tools see it: kubectl, helm and waits.

`Cluster.from_kubeconfig(path)` attaches to any running control plane (the rig of
`make cluster-up`, or one a `ControlPlane` in this process started, which sets
`control_plane` so that components can be restarted). The real node of the next step
(devstack/node.py, issue 14) joins here as one more part the handle can reach.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from devstack.paths import CRD_DIR, MODELDEPLOYMENT_CRD, DevstackError, tool_path

if TYPE_CHECKING:
    from devstack.control_plane import ControlPlane

START_TIMEOUT = 180.0  # per wait; a busy 2-core machine is slow, not broken
FAKE_NODE_LABEL = "type"  # type=kwok on every fake node
KEDA_GROUPS = ("keda.sh", "eventing.keda.sh")  # the API groups of KEDA's CRDs


class RigError(DevstackError):
    """The control plane could not start, or did not become ready."""


class CommandError(subprocess.CalledProcessError):
    """A kubectl or helm call failed; the message carries its output."""

    def __str__(self) -> str:
        cmd = " ".join(str(a) for a in self.cmd)
        return (
            f"`{cmd}` exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout or ''}--- stderr ---\n{self.stderr or ''}"
        )


def conditions(obj: Mapping[str, Any]) -> dict[str, str]:
    """An object's status conditions, type -> status ("True", "False", "Unknown")."""
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


@dataclass
class Cluster:
    """A running control plane, as tests and tools see it.

    `env` is a full environment for subprocesses (KUBECONFIG, PATH with the
    rig's tools first, and HELM_*_HOME isolated under the run directory).
    """

    kubeconfig: Path
    server: str
    env: dict[str, str]
    nodes: tuple[str, ...] = ()
    run_dir: Path | None = None
    control_plane: ControlPlane | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path) -> Cluster:
        kubeconfig = kubeconfig.resolve()
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(
            c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
        )
        server = next(
            c["cluster"]["server"] for c in config["clusters"] if c["name"] == context["cluster"]
        )
        helm_home = kubeconfig.parent / "helm"
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(kubeconfig),
            PATH=tool_path(),
            HELM_CONFIG_HOME=str(helm_home / "config"),
            HELM_CACHE_HOME=str(helm_home / "cache"),
            HELM_DATA_HOME=str(helm_home / "data"),
        )
        return cls(kubeconfig=kubeconfig, server=server, env=env, run_dir=kubeconfig.parent)

    # -- commands

    def _run(
        self,
        tool: str,
        args: Sequence[Any],
        input: str | None,
        check: bool,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [tool, *(str(a) for a in args)]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self,
        *args: Any,
        input: str | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; text output captured."""
        return self._run("kubectl", args, input, check, timeout)

    def helm(
        self,
        *args: Any,
        input: str | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run helm (v4) against this cluster; text output captured."""
        return self._run("helm", args, input, check, timeout)

    def get(self, *args: Any) -> dict[str, Any]:
        """`kubectl get ARGS -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(
        self, manifest: str | Mapping[str, Any] | Iterable[Mapping[str, Any]], *args: Any
    ) -> subprocess.CompletedProcess:
        """`kubectl apply -f -` of YAML text, one object or a list of objects."""
        if isinstance(manifest, str):
            text = manifest
        elif isinstance(manifest, Mapping):
            text = json.dumps(manifest)
        else:
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifest)})
        return self.kubectl("apply", "-f", "-", *args, input=text)

    def restart(self, component: str) -> None:
        """Restart one control-plane process (e.g. "kube-apiserver") in place."""
        if self.control_plane is None:
            raise RigError("restart needs a rig started by this process, not MODELOPS_KUBECONFIG")
        self.control_plane.restart(component)

    # -- waits

    def wait_for_service_account(
        self, namespace: str, name: str = "default", timeout: float = START_TIMEOUT
    ) -> None:
        """Block until KCM has created the ServiceAccount (pods need it to be admitted)."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.kubectl("get", "serviceaccount", name, "-n", namespace, check=False)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RigError(f"serviceaccount {namespace}/{name} never appeared: {proc.stderr}")
            time.sleep(0.2)

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        """Create (or keep) a namespace and wait until pods can be created in it."""
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": dict(labels or {})},
            }
        )
        self.wait_for_service_account(name)
        return name

    def wait_ready(self, timeout: float = START_TIMEOUT, nodes: bool = True) -> None:
        """Wait for /readyz, the default ServiceAccount and, unless ``nodes`` is False (a rig
        whose only node is a real one, not started yet), every node Ready (at least one)."""
        deadline = time.monotonic() + timeout
        while self.kubectl("get", "--raw", "/readyz", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RigError(f"{self.server}/readyz never answered ok")
            time.sleep(0.3)
        while nodes and not self.get("nodes")["items"]:
            if time.monotonic() > deadline:
                raise RigError("no nodes registered")
            time.sleep(0.3)
        if nodes:
            self.kubectl(
                "wait",
                "--for=condition=Ready",
                "node",
                "--all",
                f"--timeout={max(1, int(deadline - time.monotonic()))}s",
            )
        self.nodes = tuple(n["metadata"]["name"] for n in self.get("nodes")["items"])
        self.wait_for_service_account("default", timeout=max(1.0, deadline - time.monotonic()))

    def install_keda_crds(self) -> list[str]:
        """Install KEDA's CRDs (keda.sh and eventing.keda.sh, from the pinned module; make
        tools), established and served from the API server's watch cache; their names
        (crd/<name>), for a later delete."""
        files = sorted(f for group in KEDA_GROUPS for f in CRD_DIR.glob(f"{group}_*.yaml"))
        if not files:
            raise RigError(f"no KEDA CRDs in {CRD_DIR}: run `make tools`")
        crds = [yaml.safe_load(f.read_text()) for f in files]
        names = [f"crd/{crd['metadata']['name']}" for crd in crds]
        self._apply_established(files, names)
        self._wait_watch_cache(crds)
        return names

    def _wait_watch_cache(self, crds: list[dict[str, Any]], timeout: float = 60.0) -> None:
        """Until the watch cache serves each CRD's resource (a one-second watch from
        resourceVersion 0 ends normally). Deleted before that, a CRD can stay Terminating
        for minutes: its finalizer's list of instances fails with "storage is
        (re)initializing" and is retried with a growing backoff."""
        paths = []
        for crd in crds:
            spec = crd["spec"]
            (version,) = [v["name"] for v in spec["versions"] if v.get("storage")]
            paths.append(f"/apis/{spec['group']}/{version}/{spec['names']['plural']}")
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(len(paths) or 1) as pool:
            while paths:
                runs = pool.map(self._watch_once, paths)
                paths = [path for path, served in zip(paths, runs, strict=True) if not served]
                if paths and time.monotonic() > deadline:
                    raise RigError(f"the watch cache does not serve {', '.join(paths)}")
                if paths:
                    time.sleep(0.2)  # a refused watch returns at once: no kubectl storm

    def _watch_once(self, path: str) -> bool:
        query = "?watch=true&resourceVersion=0&timeoutSeconds=1"
        return self.kubectl("get", "--raw", path + query, check=False).returncode == 0

    def install_monitoring_crds(self) -> None:
        """Install the pinned prometheus-operator CRDs (monitoring.coreos.com)."""
        self._install_crds("monitoring.coreos.com")

    def install_gateway_api_crds(self) -> None:
        """Install the pinned Gateway API CRDs (gateway.networking.k8s.io, standard channel)."""
        self._install_crds("gateway.networking.k8s.io")

    def _install_crds(self, group: str) -> None:
        """The CRDs of one API group from .cache/crds (make tools), established."""
        files = sorted(CRD_DIR.glob(f"{group}_*.yaml"))
        if not files:
            raise RigError(f"no {group} CRDs in {CRD_DIR}: run `make tools`")
        names = [
            f"crd/{f.name.removeprefix(group + '_').removesuffix('.yaml')}.{group}" for f in files
        ]
        self._apply_established(files, names)

    def _apply_established(self, files: list[Path], names: list[str]) -> None:
        """Apply CRD files and wait until ``names`` (crd/<name>) are Established."""
        # Server-side: the big CRDs overflow client-side apply's annotation.
        args: list[Any] = ["apply", "--server-side", "--force-conflicts"]
        for f in files:
            args += ["-f", f]
        self.kubectl(*args)
        self.kubectl("wait", "--for=condition=Established", "--timeout=120s", *names)

    def install_modeldeployment_crd(self) -> None:
        """The ModelDeployment CRD of manifests/crd, established."""
        self.kubectl("apply", "-f", MODELDEPLOYMENT_CRD)
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            "crd/modeldeployments.modelops.io",
        )  # fmt: skip

    def token_kubeconfig(self, namespace: str, service_account: str, path: Path) -> Path:
        """A kubeconfig at ``path`` that logs in as a ServiceAccount, with a fresh bound
        token (TokenRequest API, one hour): to run a client with exactly its rights."""
        token = self.kubectl(
            "create", "token", service_account, "-n", namespace, "--duration=1h"
        ).stdout.strip()
        admin = yaml.safe_load(self.kubeconfig.read_text())
        user = f"{namespace}:{service_account}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {"name": user, "context": {"cluster": admin["clusters"][0]["name"], "user": user}}
            ],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path
