"""A model fetched from the rig's S3 server (devstack.object_store) by the chart's init
container: what a user creates in the namespace first, and the fetch spec naming it."""

from __future__ import annotations

from devstack.cluster import Cluster
from devstack.object_store import ObjectStore


def prepare_fetch(cluster: Cluster, ns: str, s3: ObjectStore) -> dict:
    """The Secret (keys) and ConfigMap (the rig's CA) a user would create; the fetch spec."""
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s3-keys", "namespace": ns},
                "stringData": {
                    "AWS_ACCESS_KEY_ID": s3.access_key,
                    "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                },
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "rig-ca", "namespace": ns},
                "data": {"ca.crt": s3.ca_file.read_text()},
            },
        ]
    )
    return {"endpoint": s3.endpoint, "credentialsSecret": "s3-keys", "caConfigMap": "rig-ca"}
