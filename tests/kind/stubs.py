"""Stand-ins for the engines of the kind path that cannot run here: docker, kind, kubectl, helm.

kind needs a Docker engine on a cgroup v2 host and a node image from a registry; the
machines this is built on have neither (cgroup v1, no registry), so the tests of the
Makefile's Kind targets run them against these stubs: shell scripts that log each call
(one line each, tool name first) and answer the way the real tool does for the calls the
targets make. Everything else in those tests is real: make, bash, hack/kind.sh, python.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.support.repo import run

KIND_VERSION = "v0.33.0"


@dataclass
class Stubs:
    root: Path

    def __post_init__(self) -> None:
        self.path_dir.mkdir(parents=True, exist_ok=True)
        self.localbin.mkdir(parents=True, exist_ok=True)
        self.log.touch()

    @property
    def path_dir(self) -> Path:
        """Put first on PATH (docker lives here)."""
        return self.root / "path"

    @property
    def localbin(self) -> Path:
        """LOCALBIN of the Makefile: the pinned tools (kind-v0.33.0, ...) live here."""
        return self.root / "localbin"

    @property
    def log(self) -> Path:
        return self.root / "calls.log"

    def add(self, name: str, body: str, where: Path | None = None) -> Path:
        """A stub `name` (in `where`, PATH by default) that logs its call, then runs `body`."""
        tool = name.split("-v", 1)[0]
        script = (where or self.path_dir) / name
        script.write_text(
            f"#!/usr/bin/env bash\nprintf '%s\\n' \"{tool} $*\" >> '{self.log}'\n{body}\n"
        )
        script.chmod(0o755)
        return script

    def docker(self, cgroup: int = 2, extra: str = "") -> Path:
        """A Docker engine that answers, on a host with this cgroup version."""
        return self.add(
            "docker",
            f"""case "$1" in
  info) case "$*" in *CgroupVersion*) echo {cgroup} ;; *) echo 27.3.1 ;; esac ;;
  version) echo amd64 ;;
{extra}
esac
exit 0""",
        )

    def pinned(self, tool: str, version: str, body: str) -> Path:
        """The Makefile's pinned tool at LOCALBIN/<tool>-<version>."""
        return self.add(f"{tool}-{version}", body, where=self.localbin)

    def kind(self, clusters: tuple[str, ...] = (), extra: str = "") -> Path:
        listing = "".join(f"{name}\\n" for name in clusters)
        body = f"""case "$1 $2" in
  "get clusters") printf '{listing}' ;;
  "version "*) echo "kind {KIND_VERSION} go1.26.8 linux/amd64" ;;
{extra}
esac
exit 0"""
        return self.pinned("kind", KIND_VERSION, body)

    def calls(self, tool: str | None = None) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [line for line in lines if tool is None or line.split(" ", 1)[0] == tool]

    def env(self, path: str | None = None) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.path_dir}:{path or os.environ['PATH']}"}


def host_path_without(root: Path, *names: str) -> str:
    """A PATH with every command of /usr/bin and /bin except `names` (a host without them)."""
    bindir = root / "host-bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for system in (Path("/usr/bin"), Path("/bin")):
        for cmd in system.iterdir():
            link = bindir / cmd.name
            if cmd.name in names or link.exists() or link.is_symlink():
                continue
            link.symlink_to(cmd)
    for name in names:
        assert not (bindir / name).exists()
    return str(bindir)


def make(stubs: Stubs, *args: str, path: str | None = None, **env: str):
    """Run make with the stubs: pinned tools from stubs.localbin, engines on PATH.

    CACHE moves away from the repo's .cache, whose bin/ (make tools) the Makefile puts
    first on PATH, so that no real helm or kubectl from there stands in for a stub.
    """
    assert shutil.which("make")
    cache = f"CACHE={stubs.root / 'cache'}"
    return run(
        ["make", "--no-print-directory", f"LOCALBIN={stubs.localbin}", cache, *args],
        env={**stubs.env(path), **env},
    )
