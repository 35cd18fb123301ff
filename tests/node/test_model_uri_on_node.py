"""Models from a URI on the real node (issue 19, show 2): the failures.

The rig's real node and a real S3 server (versitygw) on the host side of the node's veth
(HOST_IP, which the pods reach through the node), with a serving cert from the rig's CA.
A wrong digest and a missing object each show their failure class in the Degraded message.
A model from S3 that becomes Ready, and its next version rolled out by changing uri, version
and sha256 alone with the same image, is the tour's canary from a new uri
(tests/node/test_tour.py, Pod Security `restricted`, the operator in-cluster).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devstack.node_config import HOST_IP
from devstack.object_store import ObjectStore
from devstack.operator_process import running_operator
from devstack.paths import MODELS_ROOT
from modelops_service.card import read_card
from tests.support import operator_rig as rig
from tests.support.s3_fetch import prepare_fetch

pytestmark = pytest.mark.node

IMAGE = "model-service:0.1.0"


@pytest.fixture(scope="module")
def store(node_rig, tmp_path_factory) -> Iterator[ObjectStore]:
    cluster, _ = node_rig
    assert cluster.run_dir is not None
    with ObjectStore(tmp_path_factory.mktemp("s3"), cluster.run_dir / "pki", host=HOST_IP) as s3:
        s3.make_bucket("models")
        s3.put_dir("models", "wine/1", MODELS_ROOT / "wine" / "1")
        yield s3


def sha(version: str) -> str:
    return read_card(MODELS_ROOT / "wine" / version).sha256


def md(ns: str, version: str, uri: str, digest: str, fetch: dict) -> dict:
    body = rig.md_body("wine", ns, version=version, rollout={"strategy": "RollingUpdate"})
    model = body["spec"]["model"]
    model.pop("artifact", None)
    model.update(image=IMAGE, uri=uri, sha256=digest, fetch=fetch)
    return body


@pytest.mark.parametrize(
    ("uri", "digest", "failure", "code"),
    [
        ("s3://models/wine/1", "ab" * 32, "digest_mismatch", 12),
        ("s3://models/wine/404", None, "not_found", 10),
    ],
)
def test_a_failed_fetch_shows_its_class_in_degraded(
    node_rig, restricted, store, tmp_path, uri, digest, failure, code
):
    cluster, _ = node_rig
    fetch = prepare_fetch(cluster, restricted, store)
    with running_operator(cluster, tmp_path) as op:
        cluster.apply(md(restricted, "1", uri, digest or sha("1"), fetch))
        status = rig.wait_phase(cluster, op, restricted, "wine", "Degraded", timeout=240)
    degraded = rig.condition(status, "Degraded")
    assert degraded["status"] == "True"
    assert f"container model-fetch exited {code}" in degraded["message"], degraded["message"]
    assert f"fetch failed: {failure}: " in degraded["message"]
    # the kubelet's termination message is the fetcher's one JSON line
    pod = cluster.get("pods", "-n", restricted, "-l", "modelops.io/version=1")["items"][0]
    (init,) = pod["status"]["initContainerStatuses"]
    terminated = init["lastState"].get("terminated") or init["state"].get("terminated")
    line = json.loads(terminated["message"].strip().splitlines()[-1])
    assert (line["failure"], line["exitCode"]) == (failure, code)
    assert all(not c.get("started") for c in pod["status"]["containerStatuses"])
