"""The project's images, built by the real Docker engine, and containers run from them.

    from devstack.images import build_images, running_container

    images = build_images()                      # hack/images.sh: reused when inputs match
    with running_container(images.service, "-p", "127.0.0.1:8081:8080") as cid: ...

``build_images`` runs the same script as ``make images`` (so MODELOPS_OFFLINE=1 in the
environment selects the offline stand-ins, exactly as for the Makefile); an image built
from the same inputs is reused.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from devstack.paths import REPO_ROOT, DevstackError, find_tool

IMAGE_TAG = "0.1.0"  # the charts' appVersion, the default of `make images`


class ImageBuildError(DevstackError):
    """hack/images.sh failed; the message ends with its output."""


@dataclass(frozen=True)
class Images:
    service: str
    operator: str
    build_output: str


def docker() -> str:
    """The Docker CLI (run, exec, save, history: any CLI of the engine's API will do)."""
    try:
        return str(find_tool("docker"))
    except DevstackError as err:
        raise DevstackError("docker is missing: `make engine` installs and starts one") from err


def run_docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [docker(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise DevstackError(f"docker {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}")
    return proc


def engine_answers() -> bool:
    return run_docker("info", "--format", "{{.ServerVersion}}", check=False).returncode == 0


def build_images() -> Images:
    """Both images, as `make images` builds them (built once per set of inputs)."""
    if not engine_answers():
        raise DevstackError("no Docker engine answers: run `make engine`")
    proc = subprocess.run(
        [str(REPO_ROOT / "hack" / "images.sh")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "IMAGE_TAG": IMAGE_TAG},
        check=False,
    )
    if proc.returncode != 0:
        raise ImageBuildError(f"hack/images.sh failed:\n{proc.stdout}\n{proc.stderr}")
    return Images(f"model-service:{IMAGE_TAG}", f"modelops-operator:{IMAGE_TAG}", proc.stdout)


@contextlib.contextmanager
def running_container(
    image: str, *docker_args: str, command: tuple[str, ...] = ()
) -> Iterator[str]:
    """`docker run -d` IMAGE; yields the container ID and removes the container afterwards."""
    name = f"modelops-test-{uuid.uuid4().hex[:12]}"
    cid = run_docker("run", "-d", "--name", name, *docker_args, image, *command).stdout.strip()
    try:
        yield cid
    finally:
        run_docker("rm", "-f", cid, check=False)


def container_logs(cid: str) -> str:
    proc = run_docker("logs", cid, check=False)
    return proc.stdout + proc.stderr
