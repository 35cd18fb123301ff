"""A throwaway PKI and the admin kubeconfig of one rig, made with the openssl CLI."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster import RigError

SERVICE_IP = "10.96.0.1"  # first address of the rig's service CIDR: the `kubernetes` Service
ADMIN_USER = "modelops-admin"

_OPENSSL_CNF = f"""\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = modelops-rig
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, \
DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, \
IP:127.0.0.1, IP:{SERVICE_IP}
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


def _openssl(*args: Any, cwd: Path) -> None:
    proc = subprocess.run(
        ["openssl", *(str(a) for a in args)], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RigError(f"openssl {' '.join(map(str, args))} failed: {proc.stderr}")


def make_pki(pki: Path) -> None:
    """Throwaway PKI, EC P-256 keys: a cluster CA with the API server's serving
    cert and an admin client cert (O=system:masters); a front-proxy CA with its
    client cert (aggregation layer); the service-account signing key."""
    pki.mkdir(parents=True, exist_ok=True)
    (pki / "openssl.cnf").write_text(_OPENSSL_CNF)
    for key in ("ca", "apiserver", "admin", "front-proxy-ca", "front-proxy-client", "sa"):
        _openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", f"{key}.key", cwd=pki,
        )  # fmt: skip
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for ca, subject in (("ca", "/CN=modelops-rig-ca"), ("front-proxy-ca", "/CN=front-proxy-ca")):
        _openssl(
            "req", "-x509", "-new", "-key", f"{ca}.key", "-subj", subject, "-days", "3650",
            "-config", "openssl.cnf", "-extensions", "ca", "-out", f"{ca}.crt", cwd=pki,
        )  # fmt: skip
    for name, ca, subject, ext in (
        ("apiserver", "ca", "/CN=kube-apiserver", "server"),
        ("admin", "ca", f"/O=system:masters/CN={ADMIN_USER}", "client"),
        ("front-proxy-client", "front-proxy-ca", "/CN=front-proxy-client", "client"),
    ):
        _openssl(
            "req", "-new", "-key", f"{name}.key", "-subj", subject, "-config", "openssl.cnf",
            "-out", f"{name}.csr", cwd=pki,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "365",
            "-extfile", "openssl.cnf", "-extensions", ext, "-out", f"{name}.crt", cwd=pki,
        )  # fmt: skip
    for f in pki.glob("*.key"):
        f.chmod(0o600)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, pki: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "modelops-rig",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(pki / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate-data": _b64(pki / "admin.crt"),
                    "client-key-data": _b64(pki / "admin.key"),
                },
            }
        ],
        "contexts": [
            {"name": "modelops-rig", "context": {"cluster": "modelops-rig", "user": ADMIN_USER}}
        ],
        "current-context": "modelops-rig",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
