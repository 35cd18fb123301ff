"""Fixtures of the real-node tests (marker `node`): a rig whose only node is real.

node_rig     module-scoped (cluster, node): the control plane of devstack with no KWOK
             nodes and devstack.node's real node, the service image (built by the Docker
             engine as `make images` does, reused when its inputs are unchanged) loaded
             into it; torn down (and the host put back) at the module's end.
             One real node per machine, so each module that needs one gets its own.
restricted   a fresh namespace enforcing Pod Security `restricted`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from devstack.cluster import Cluster
from devstack.images import build_images
from devstack.node import RealNode, running_node_rig


@pytest.fixture(scope="module")
def node_rig() -> Iterator[tuple[Cluster, RealNode]]:
    service_image = build_images().service  # the chart's default repository and appVersion
    with running_node_rig(service_image, keep=os.environ.get("MODELOPS_RIG_KEEP") == "1") as rig:
        yield rig


@pytest.fixture
def restricted(node_rig: tuple[Cluster, RealNode], request: pytest.FixtureRequest) -> Iterator[str]:
    cluster, _ = node_rig
    name = f"{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(name, labels={"pod-security.kubernetes.io/enforce": "restricted"})
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
