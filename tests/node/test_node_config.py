"""devstack/node_config.py and the host record of node_host.py, without a node: the files
the real node's components get, and the pause image archive."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import tarfile
import tomllib
from pathlib import Path

from devstack.control_plane import SERVICE_CIDR
from devstack.node import dnat_targets
from devstack.node_config import (
    DNS_IP,
    DNS_USER,
    NODE_IP,
    POD_CIDR,
    NodePaths,
    cni_conflist,
    containerd_config,
    coredns_objects,
    corefile,
    kubelet_config,
    oci_archive,
    pause_image,
)
from devstack.node_host import KUBELET_SYSCTLS, HostState

HOME = Path("/var/lib/test-node")
PATHS = NodePaths(HOME)


def test_containerd_is_a_private_instance_that_clamps_oom_score_adj() -> None:
    config = tomllib.loads(containerd_config(PATHS, Path("/usr/sbin/runc")))
    assert config["version"] == 3
    assert config["imports"] == []  # no drop-in directory of the host leaks in
    assert config["grpc"]["address"] == str(PATHS.containerd_sock)
    assert all(config[k]["address"] == "" for k in ("ttrpc", "debug", "metrics"))
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE on this machine
    assert runtime["netns_mounts_under_state_dir"] is True
    runc = runtime["containerd"]["runtimes"]["runc"]["options"]
    assert runc["Root"].startswith(str(HOME))
    assert runc["SystemdCgroup"] is False
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == pause_image()
    assert pause_image().startswith("localhost/")  # a pull could only ever go to loopback
    for key in ("root", "state"):
        assert config[key].startswith(str(HOME))


def test_kubelet_keeps_cgroup_v1_and_authenticates_everyone() -> None:
    config = kubelet_config(PATHS, Path("/rig/pki/ca.crt"))
    assert config["failCgroupV1"] is False
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authentication"]["webhook"] == {"enabled": True}
    assert config["authentication"]["x509"] == {"clientCAFile": "/rig/pki/ca.crt"}
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["address"] == NODE_IP
    assert config["readOnlyPort"] == 0
    for key in ("resolvConf", "podLogsDir"):
        assert config[key].startswith(str(HOME))


def test_cluster_dns_serves_cluster_local_on_the_node_and_forwards_nowhere() -> None:
    assert kubelet_config(PATHS, Path("/ca.crt"))["clusterDNS"] == [DNS_IP]
    assert ipaddress.ip_address(DNS_IP) in ipaddress.ip_network(SERVICE_CIDR)
    text = corefile(PATHS)
    words = [line.split()[0] for line in text.splitlines() if line.strip()]
    assert "forward" not in words  # nothing leaves the host
    assert "proxy" not in words
    assert text.splitlines()[0].startswith("cluster.local:53 ")
    assert f"bind {NODE_IP}" in text
    assert f"kubeconfig {HOME}/coredns.kubeconfig" in text
    role, binding, service, slice_ = coredns_objects()
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"list", "watch"}  # CoreDNS reads the API, never writes
    assert binding["subjects"][0]["name"] == DNS_USER
    assert service["spec"]["clusterIP"] == DNS_IP
    assert "selector" not in service["spec"]  # its endpoint is the node process
    assert slice_["endpoints"][0]["addresses"] == [NODE_IP]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"


def test_the_pod_network_never_masquerades_and_keeps_its_state_under_home() -> None:
    bridge, *others = cni_conflist(PATHS)["plugins"]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": POD_CIDR, "gateway": "10.245.0.1"}]]
    assert bridge["ipam"]["dataDir"].startswith(str(HOME))
    assert [p["type"] for p in others] == ["portmap", "loopback"]


def test_the_pause_archive_is_an_oci_layout_whose_digests_hold(tmp_path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF not really")
    with tarfile.open(
        fileobj=io.BytesIO(oci_archive("localhost/x/pause:1", {"pause": binary}, ["/pause"]))
    ) as archive:
        files = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}

    def blob(desc: dict) -> bytes:
        data = files[f"blobs/sha256/{desc['digest'].removeprefix('sha256:')}"]
        assert hashlib.sha256(data).hexdigest() == desc["digest"].removeprefix("sha256:")
        assert len(data) == desc["size"]
        return data

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (desc,) = json.loads(files["index.json"])["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == "localhost/x/pause:1"
    manifest = json.loads(blob(desc))
    config = json.loads(blob(manifest["config"]))
    assert config["config"]["Entrypoint"] == ["/pause"]
    (layer_desc,) = manifest["layers"]
    layer = blob(layer_desc)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        (member,) = tar.getmembers()
    assert (member.name, member.mode, member.size) == ("pause", 0o755, binary.stat().st_size)


def test_the_host_record_survives_a_round_trip(tmp_path) -> None:
    state = HostState.record(Path("/rig"), tmp_path / "home")
    assert set(state.sysctls) == set(KUBELET_SYSCTLS)
    assert state.existed[str(tmp_path)] is True  # home's parent
    state.save(tmp_path / "host.json")
    assert HostState.load(tmp_path / "host.json") == state
    assert HostState.load(tmp_path / "absent.json") is None


SAVE = """\
*nat
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https" \\
 -m tcp --dport 443 -j KUBE-SVC-NPX
-A KUBE-SERVICES -d 10.96.7.7/32 -p tcp -m comment --comment "ns/wine:http cluster IP" \\
 -m tcp --dport 8080 -j KUBE-SVC-WINE
-A KUBE-SVC-NPX -m comment --comment "default/kubernetes:https -> 10.245.255.1:6443" -j KUBE-SEP-API
-A KUBE-SVC-WINE ! -s 10.245.0.0/24 -d 10.96.7.7/32 -p tcp -m tcp --dport 8080 -j KUBE-MARK-MASQ
-A KUBE-SVC-WINE -m comment --comment "ns/wine:http -> 10.245.0.3:8080" -m statistic \\
 --mode random --probability 0.5 -j KUBE-SEP-A
-A KUBE-SVC-WINE -m comment --comment "ns/wine:http -> 10.245.0.4:8080" -j KUBE-SEP-B
-A KUBE-SEP-API -p tcp -m tcp -j DNAT --to-destination 10.245.255.1:6443
-A KUBE-SEP-A -s 10.245.0.3/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.245.0.3:8080
-A KUBE-SEP-B -p tcp -m tcp -j DNAT --to-destination 10.245.0.4:8080
-A KUBE-SEP-OLD -p tcp -m tcp -j DNAT --to-destination 10.245.0.2:8080
COMMIT
""".replace("\\\n", "")


def test_dnat_targets_follow_kube_proxys_chains_of_one_service() -> None:
    # iptables-save prints one rule a line; the backslashes here only fold long ones.
    assert dnat_targets(SAVE, "10.96.7.7", 8080) == {"10.245.0.3:8080", "10.245.0.4:8080"}
    assert dnat_targets(SAVE, "10.96.0.1", 443) == {"10.245.255.1:6443"}
    assert dnat_targets(SAVE, "10.96.7.7", 9090) == set()  # another port: no rule
    assert dnat_targets(SAVE, "10.96.9.9", 8080) == set()  # no endpoints yet: REJECT only
