"""kind-config.yaml against kind's own v1alpha4 types, and the pins around it."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest
import yaml

from devstack.node_config import NodePaths, kubelet_config
from tests.support.repo import ROOT, run

KIND_CONFIG = ROOT / "kind-config.yaml"


def check(kindcheck: Path, path: Path) -> dict:
    proc = run([str(kindcheck), str(path)])
    assert proc.returncode == 0, f"kind would reject {path.name}: {proc.stderr}"
    return json.loads(proc.stdout)


def test_kind_config_decodes_strictly_with_kinds_v1alpha4_types(kindcheck, make_var):
    summary = check(kindcheck, KIND_CONFIG)
    assert summary["name"] == "modelops" == make_var("KIND_CLUSTER")
    assert summary["apiServerAddress"] == "127.0.0.1"
    assert [n["role"] for n in summary["nodes"]].count("control-plane") == 1


@pytest.mark.parametrize(
    ("mutation", "error"),
    [
        pytest.param("extraPortMapping", "field extraPortMapping not found", id="node-field"),
        pytest.param("networking-typo", "field apiServerAdress not found", id="networking-field"),
        pytest.param("bad-name", "not a valid cluster name", id="invalid-cluster-name"),
        pytest.param("bad-listen", "invalid listenAddress", id="listen-address-not-an-ip"),
        pytest.param("bad-api-version", "kind.x-k8s.io/v1alpha4", id="wrong-api-version"),
    ],
)
def test_kindcheck_rejects_what_kind_rejects(kindcheck, tmp_path, mutation, error):
    doc = yaml.safe_load(KIND_CONFIG.read_text())
    node = doc["nodes"][0]
    if mutation == "extraPortMapping":
        node["extraPortMapping"] = node.pop("extraPortMappings")
    elif mutation == "networking-typo":
        doc["networking"]["apiServerAdress"] = doc["networking"].pop("apiServerAddress")
    elif mutation == "bad-name":
        doc["name"] = "ModelOps"
    elif mutation == "bad-listen":
        node["extraPortMappings"][0]["listenAddress"] = "localhost"
    elif mutation == "bad-api-version":
        doc["apiVersion"] = "kind.x-k8s.io/v1alpha3"
    bad = tmp_path / "kind-config.yaml"
    bad.write_text(yaml.safe_dump(doc))
    proc = run([str(kindcheck), str(bad)])
    assert proc.returncode == 1
    assert error in proc.stderr


def test_port_mappings_bind_loopback_only(kindcheck):
    summary = check(kindcheck, KIND_CONFIG)
    mappings = [pm for node in summary["nodes"] for pm in node["extraPortMappings"]]
    assert mappings, "the demo traffic NodePort must be mapped"
    for pm in mappings:
        assert ipaddress.ip_address(pm["listenAddress"]).is_loopback, pm
        assert pm["hostPort"] > 0, f"a fixed host port, so the URL is known: {pm}"


def test_node_image_is_pinned_once_in_the_makefile(kindcheck, make_var):
    summary = check(kindcheck, KIND_CONFIG)
    assert not summary["explicitNodeImage"], "kind-config.yaml must not name a node image"
    assert "image:" not in KIND_CONFIG.read_text().replace("`kind create cluster --image`", "")
    image = make_var("KIND_NODE_IMAGE")
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", image), image
    # The image the pinned kind release was built and tested with.
    default = run([str(kindcheck), "-default-image"]).stdout.strip()
    assert image == default


def test_kind_version_pinned_in_makefile_equals_kindcheck_module(make_var):
    gomod = (ROOT / "hack" / "kindcheck" / "go.mod").read_text()
    pinned = re.search(r"^\s*sigs\.k8s\.io/kind (v\S+)$", gomod, re.M)
    assert pinned, gomod
    assert pinned.group(1) == make_var("KIND_VERSION")


def test_kubectl_is_within_one_minor_of_the_node(make_var):
    node = re.search(r":v(\d+)\.(\d+)\.", make_var("KIND_NODE_IMAGE"))
    kubectl = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", make_var("KIND_KUBECTL_VERSION"))
    assert node
    assert kubectl
    assert node.group(1) == kubectl.group(1)
    assert abs(int(node.group(2)) - int(kubectl.group(2))) <= 1


def test_demo_traffic_nodeport_is_the_mapped_port(kindcheck):
    summary = check(kindcheck, KIND_CONFIG)
    mapped = {pm["containerPort"] for n in summary["nodes"] for pm in n["extraPortMappings"]}
    svc = yaml.safe_load((ROOT / "deploy" / "kind" / "demo-traffic-service.yaml").read_text())
    assert svc["spec"]["type"] == "NodePort"
    (port,) = svc["spec"]["ports"]
    assert port["nodePort"] in mapped
    chart_values = yaml.safe_load((ROOT / "charts" / "model-service" / "values.yaml").read_text())
    assert port["targetPort"] == chart_values["port"] == 8080
    # The pod label every chart-rendered pod carries, stable and canary alike.
    assert list(svc["spec"]["selector"]) == ["modelops.io/model"]


def test_the_nodes_kubelet_patch_holds_only_settings_the_real_nodes_kubelet_runs_with(kindcheck):
    """The kind node's kubelet syncs its pods as devstack's real node does (whose running
    kubelet reports the setting: tests/node/test_service_on_node.py); a field here that the
    real node's configuration lacks, or a different value, fails."""
    summary = check(kindcheck, KIND_CONFIG)
    (patch,) = [yaml.safe_load(p) for p in summary["raw"]["kubeadmConfigPatches"]]
    real = kubelet_config(NodePaths(Path("/node")), Path("/ca.crt"))
    assert patch.keys() <= real.keys(), patch.keys() - real.keys()
    assert patch == {k: real[k] for k in patch}, patch
    assert patch["kind"] == "KubeletConfiguration"
    assert patch["syncFrequency"] == "10s"
