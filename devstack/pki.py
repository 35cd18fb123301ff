"""A throwaway PKI and the admin kubeconfig of one rig, made with the openssl CLI."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster import RigError

SERVICE_IP = "10.96.0.1"  # first address of the rig's service CIDR: the `kubernetes` Service
ADMIN_USER = "modelops-admin"
KUBELET_CLIENT = "apiserver-kubelet-client"  # pki/<this>.crt|.key
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"

# The request and CA sections every openssl.cnf of the rig starts with.
_CNF_HEAD = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = modelops-rig
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
"""

_OPENSSL_CNF = (
    _CNF_HEAD
    + f"""\
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
)


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
    for key in (
        "ca",
        "apiserver",
        "admin",
        "front-proxy-ca",
        "front-proxy-client",
        "sa",
        KUBELET_CLIENT,
    ):
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
        # The API server's identity towards kubelets (logs, exec, port-forward).
        (KUBELET_CLIENT, "ca", f"/CN={KUBELET_CLIENT_USER}", "client"),
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


def issue_client_cert(pki: Path, name: str, subject: str, out: Path) -> None:
    """out/name.key and out/name.crt: a client cert for ``subject`` from the rig's CA."""
    out.mkdir(parents=True, exist_ok=True)
    key, csr, crt = (out / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key, cwd=pki
    )
    _openssl(
        "req", "-new", "-key", key, "-subj", subject, "-config", "openssl.cnf", "-out", csr, cwd=pki
    )
    _openssl(
        "x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "365",
        "-extfile", "openssl.cnf", "-extensions", "client", "-out", crt, cwd=pki,
    )  # fmt: skip
    key.chmod(0o600)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path,
    server: str,
    pki: Path,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    user: str = ADMIN_USER,
    tls_server_name: str | None = None,
) -> None:
    """A kubeconfig for ``server``, trusting the rig's CA; the admin's cert unless another
    client cert is given (the real node's kubelet and kube-proxy)."""
    cluster: dict[str, Any] = {
        "server": server,
        "certificate-authority-data": _b64(pki / "ca.crt"),
    }
    if tls_server_name:
        cluster["tls-server-name"] = tls_server_name
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "modelops-rig", "cluster": cluster}],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(cert or pki / "admin.crt"),
                    "client-key-data": _b64(key or pki / "admin.key"),
                },
            }
        ],
        "contexts": [
            {"name": "modelops-rig", "context": {"cluster": "modelops-rig", "user": user}}
        ],
        "current-context": "modelops-rig",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


_PEER_CNF = (
    _CNF_HEAD
    + """\
[peer]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1{extra}
authorityKeyIdentifier = keyid
"""
)


def make_peer_certs(out: Path, name: str, dns_names: tuple[str, ...] = ()) -> None:
    """out/ca.crt and out/tls.crt|tls.key: a CA of its own and one cert for localhost (and
    ``dns_names``) that serves and authenticates as a client (mutual TLS between two local
    processes, the layout KEDA's operator and metrics server read from their --cert-dir;
    the serving cert of an aggregated API, devstack/aggregated_api.py)."""
    out.mkdir(parents=True, exist_ok=True)
    extra = "".join(f", DNS:{d}" for d in dns_names)
    (out / "openssl.cnf").write_text(_PEER_CNF.replace("{extra}", extra))
    for key in ("ca", "tls"):
        _openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", f"{key}.key", cwd=out,
        )  # fmt: skip
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", f"/CN={name}-ca", "-days", "3650",
        "-config", "openssl.cnf", "-extensions", "ca", "-out", "ca.crt", cwd=out,
    )  # fmt: skip
    _openssl(
        "req", "-new", "-key", "tls.key", "-subj", f"/CN={name}", "-config", "openssl.cnf",
        "-out", "tls.csr", cwd=out,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "365",
        "-extfile", "openssl.cnf", "-extensions", "peer", "-out", "tls.crt", cwd=out,
    )  # fmt: skip
    for f in out.glob("*.key"):
        f.chmod(0o600)


def issue_server_cert(pki: Path, name: str, sans: Sequence[str], out: Path) -> None:
    """out/name.key and out/name.crt: a serving cert from the rig's CA for ``sans``
    (``DNS:...`` or ``IP:...`` entries), for the rig's own HTTPS servers."""
    out = out.resolve()  # openssl runs in ``pki``
    out.mkdir(parents=True, exist_ok=True)
    key, csr, crt, ext = (out / f"{name}.{e}" for e in ("key", "csr", "crt", "ext"))
    ext.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        f"subjectAltName = {', '.join(sans)}\n"
    )
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key, cwd=pki
    )
    _openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-config", "openssl.cnf",
             "-out", csr, cwd=pki)  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "365",
        "-extfile", ext, "-out", crt, cwd=pki,
    )  # fmt: skip
    key.chmod(0o600)
