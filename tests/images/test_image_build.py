"""How the images are built: reused when inputs match, stand-ins said out loud, no CA in a layer."""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from devstack.images import Images, build_images, run_docker

pytestmark = pytest.mark.images

PUBLIC_STORES = (
    "import glob, sys; paths = ['/etc/ssl/certs/ca-certificates.crt']"
    " + glob.glob('/opt/**/cacert.pem', recursive=True)"
    " + glob.glob('/usr/**/cacert.pem', recursive=True)"
    "; [sys.stdout.write(open(p).read()) for p in paths]"
)
PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.*?)-----END CERTIFICATE-----", re.S)


def test_a_second_build_with_the_same_inputs_reuses_both_images(images: Images) -> None:
    again = build_images()

    assert "service image model-service:0.1.0: reused" in again.build_output
    assert "operator image modelops-operator:0.1.0: reused" in again.build_output
    ids = [run_docker("image", "inspect", "--format", "{{.Id}}", i).stdout for i in (
        images.service, images.operator)]  # fmt: skip
    assert ids == [
        run_docker("image", "inspect", "--format", "{{.Id}}", i).stdout
        for i in (again.service, again.operator)
    ]


def test_a_stand_in_base_is_said_to_be_one(images: Images) -> None:
    label = '{{index .Config.Labels "io.modelops.stand-in"}}'
    standin = run_docker("image", "inspect", "--format", label, "python:3.11-slim-bookworm")
    if standin.stdout.strip():
        assert "STAND-IN" in images.build_output
    else:  # the official image: never called a stand-in
        assert "STAND-IN" not in images.build_output


def ca_bundle() -> Path:
    """The bundle hack/images.sh hands to the build as a secret (the host pip's)."""
    return Path(os.environ.get("CA_BUNDLE") or os.environ.get("PIP_CERT") or "")


def certificates(pem: bytes) -> set[bytes]:
    return {re.sub(rb"\s+", b"", body) for body in PEM.findall(pem)}


def secret_needles(image: str) -> tuple[bytes | None, list[bytes]]:
    """The CA bundle passed as the secret (None: none was), and its certificates that no
    public CA store of the image holds (its system store, certifi's copies): any trace of
    the secret shows them. (None when the machine trusts only public CAs.)"""
    bundle = ca_bundle()
    secret = bundle.read_bytes() if bundle.is_file() else None
    stores = run_docker("run", "--rm", "--entrypoint", "python", image, "-c", PUBLIC_STORES)
    return secret, sorted(certificates(secret or b"") - certificates(stores.stdout.encode()))


def secret_traces(image: str, workdir: Path) -> tuple[list[str], int]:
    """Files of any layer of IMAGE that hold the secret or one of its own certificates,
    non-empty secret mount points, and the bytes scanned."""
    secret, needles = secret_needles(image)
    found: list[str] = []
    scanned = 0
    saved = workdir / "image.tar"
    run_docker("save", "--output", str(saved), image, timeout=600)
    with tarfile.open(saved) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        for layer_path in manifest[0]["Layers"]:  # legacy <id>/layer.tar or OCI blobs/...
            with tarfile.open(fileobj=archive.extractfile(layer_path), mode="r|*") as layer:
                for entry in layer:
                    if "run/secrets" in entry.name and entry.size:
                        found.append(f"{layer_path}: {entry.name}")
                    if not entry.isfile() or entry.size < 512:
                        continue
                    data = layer.extractfile(entry).read()
                    scanned += len(data)
                    flat = re.sub(rb"\s+", b"", data) if b"CERTIFICATE" in data else b""
                    if data == secret or any(n in flat for n in needles):
                        found.append(f"{layer_path}: {entry.name}")
    saved.unlink()
    history = run_docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    if "BEGIN CERTIFICATE" in history or any(
        n.decode() in re.sub(r"\s+", "", history) for n in needles
    ):
        found.append("docker history")
    return found, scanned


@pytest.mark.parametrize("which", ["service", "operator"])
def test_no_layer_holds_the_build_secret(images: Images, which: str, tmp_path: Path) -> None:
    found, scanned = secret_traces(getattr(images, which), tmp_path)

    assert scanned > 100_000_000, scanned  # every layer really was read
    assert not found, found


def test_control_a_baked_in_bundle_is_found(images: Images, tmp_path: Path) -> None:
    """The scan finds the bundle when a Dockerfile does bake it in (the mistake it exists for)."""
    bundle = ca_bundle() if ca_bundle().is_file() else Path("/etc/ssl/certs/ca-certificates.crt")
    (tmp_path / "ca.crt").write_bytes(bundle.read_bytes())
    (tmp_path / "Dockerfile").write_text(f"FROM {images.service}\nCOPY ca.crt /opt/ca.crt\n")
    tag = "modelops-test-leaky:latest"
    run_docker("build", "--quiet", "--tag", tag, str(tmp_path))
    try:
        found, _ = secret_traces(tag, tmp_path)
    finally:
        run_docker("rmi", tag, check=False)
    assert any(f.endswith("opt/ca.crt") for f in found), found
