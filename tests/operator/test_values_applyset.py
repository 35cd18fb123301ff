"""Spec -> chart values, rendered objects -> apply set and pruning set."""

from __future__ import annotations

import pytest

from modelops_operator.applyset import (
    ObjectKey,
    Owner,
    build_apply_set,
    prune_set,
)
from modelops_operator.constants import LABEL_MANAGED_BY, LABEL_OWNER, LABEL_TRACK
from modelops_operator.images import split_image
from modelops_operator.models import FetchSpec, ModelRef
from modelops_operator.rollout import Workloads
from modelops_operator.values import chart_values, scrape_timeout
from tests.support.operator_builders import ref, spec_for

OWNER = Owner("wine", "models", "uid-1")
# FetchSpec() as the canary's values carry it: every key
DEFAULT_FETCH = {
    "endpoint": "",
    "region": "us-east-1",
    "credentialsSecret": "",
    "caConfigMap": "",
    "maxBytes": 1 << 30,
    "timeoutSeconds": 300.0,
}


@pytest.mark.parametrize(
    ("image", "repository", "tag", "digest"),
    [
        ("model-service:0.1.0", "model-service", "0.1.0", ""),
        ("model-service", "model-service", "latest", ""),
        ("reg:5000/team/app:1.2", "reg:5000/team/app", "1.2", ""),
        ("reg:5000/team/app", "reg:5000/team/app", "latest", ""),
        ("app@sha256:abc", "app", "", "sha256:abc"),
        ("app:1@sha256:abc", "app", "1", "sha256:abc"),
    ],
)
def test_split_image(image, repository, tag, digest):
    got = split_image(image)
    assert (got.repository, got.tag, got.digest) == (repository, tag, digest)


def test_values_without_canary():
    values = chart_values(spec_for("1"), Workloads(ref("1"), 4))
    assert values["model"] == {
        "name": "wine",
        "version": "1",
        "artifact": "/m/1",
        "uri": "",
        "sha256": "",
    }
    assert values["image"] == {"repository": "model-service", "tag": "1", "digest": ""}
    assert values["replicaCount"] == 4
    assert values["canary"] == {"enabled": False}
    assert values["monitoring"]["serviceMonitor"]["enabled"] is True
    assert values["tests"] == {"enabled": False}


def test_values_with_canary_and_discovered_labels():
    values = chart_values(
        spec_for("2"),
        Workloads(ref("1"), 3, ref("2"), 1),
        service_monitor_labels={"release": "kps"},
        rule_labels={"role": "alerts"},
        dashboard_labels={"grafana_dashboard": "1"},
    )
    assert values["model"]["version"] == "1"
    assert values["replicaCount"] == 3
    assert values["canary"] == {
        "enabled": True,
        "version": "2",
        "artifact": "/m/2",
        "uri": "",
        "sha256": "",
        "replicaCount": 1,
        "image": {"repository": "model-service", "tag": "2", "digest": ""},
        "fetch": DEFAULT_FETCH,
    }
    assert values["monitoring"]["serviceMonitor"]["labels"] == {"release": "kps"}
    assert values["monitoring"]["prometheusRule"]["labels"] == {"role": "alerts"}
    assert values["monitoring"]["dashboards"]["labels"] == {"grafana_dashboard": "1"}


def test_values_of_a_remote_uri_carry_it_and_the_canarys_own_fetch_settings():
    sha = "ab" * 32
    stable = ModelRef(name="wine", version="1", image="model-service:1", artifact="/m/1")
    fetch = FetchSpec.model_validate({"endpoint": "https://s3:9000", "credentialsSecret": "s3"})
    canary = ModelRef(
        name="wine", version="2", image="model-service:1", uri="s3://models/wine/2",
        sha256=sha, fetch=fetch,
    )  # fmt: skip
    values = chart_values(spec_for("2"), Workloads(stable, 2, canary, 1))
    assert values["model"]["uri"] == ""
    assert values["model"]["artifact"] == "/m/1"
    assert "fetch" not in values["model"]  # the stable has none: the chart's defaults
    assert (values["canary"]["uri"], values["canary"]["sha256"]) == ("s3://models/wine/2", sha)
    assert values["canary"]["fetch"] == {
        **DEFAULT_FETCH,
        "endpoint": "https://s3:9000",
        "credentialsSecret": "s3",
    }


def test_a_canary_with_other_fetch_settings_leaves_the_stables_alone():
    """Each track is rendered from its own release: endpoint, Secret, cap and timeout."""
    sha1, sha2 = "ab" * 32, "cd" * 32
    old = FetchSpec.model_validate(
        {"endpoint": "https://old:9000", "credentialsSecret": "old-keys", "maxBytes": 5000,
         "timeoutSeconds": 60}
    )  # fmt: skip
    new = FetchSpec.model_validate({"endpoint": "https://new:9000", "credentialsSecret": "new"})
    stable = ModelRef(name="wine", version="1", image="model-service:1",
                      uri="s3://models/wine/1", sha256=sha1, fetch=old)  # fmt: skip
    canary = stable.model_copy(update={"version": "2", "uri": "s3://models/wine/2",
                                       "sha256": sha2, "fetch": new})  # fmt: skip
    alone = chart_values(spec_for("1"), Workloads(stable, 2))
    during = chart_values(spec_for("2"), Workloads(stable, 2, canary, 1))
    assert during["model"] == alone["model"]
    assert during["model"]["fetch"] == {
        **DEFAULT_FETCH,
        "endpoint": "https://old:9000",
        "credentialsSecret": "old-keys",
        "maxBytes": 5000,
        "timeoutSeconds": 60.0,
    }
    assert during["canary"]["fetch"] == {**DEFAULT_FETCH, "endpoint": "https://new:9000",
                                         "credentialsSecret": "new"}  # fmt: skip
    # a canary without fetch settings gets the defaults, not the stable's
    bare = canary.model_copy(update={"fetch": None})
    assert chart_values(spec_for("2"), Workloads(stable, 2, bare, 1))["canary"]["fetch"] == (
        DEFAULT_FETCH
    )


def test_spec_labels_win_over_nothing_and_merge_with_discovery():
    spec = spec_for("1", monitoring={"serviceMonitor": {"labels": {"team": "ml"}}})
    values = chart_values(spec, Workloads(ref("1"), 1), service_monitor_labels={"release": "k"})
    assert values["monitoring"]["serviceMonitor"]["labels"] == {"team": "ml", "release": "k"}


def obj(kind, name, api="v1", **meta):
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, **meta}, "spec": {}}


RENDERED = [
    obj("ServiceMonitor", "wine", "monitoring.coreos.com/v1"),
    obj("Deployment", "wine-canary", "apps/v1", labels={LABEL_TRACK: "canary"}),
    obj("Deployment", "wine", "apps/v1", labels={LABEL_TRACK: "stable"}),
    obj("Service", "wine"),
    obj("ConfigMap", "wine-dash", namespace="grafana"),
    obj("Pod", "wine-test", annotations={"helm.sh/hook": "test"}),
    obj("ServiceAccount", "wine"),
]


def test_apply_set_owns_labels_orders_and_skips_hooks():
    aset = build_apply_set(RENDERED, OWNER)
    kinds = [o["kind"] for o in aset.objects]
    assert kinds == [
        "ServiceAccount", "ConfigMap", "Service", "Deployment", "Deployment", "ServiceMonitor",
    ]  # fmt: skip
    for o in aset.objects:
        labels = o["metadata"]["labels"]
        assert labels[LABEL_OWNER] == "wine"
        assert labels[LABEL_MANAGED_BY] == "modelops-operator"
    in_ns = [o for o in aset.objects if o["metadata"]["namespace"] == "models"]
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == "uid-1" for o in in_ns)
    assert in_ns[0]["metadata"]["ownerReferences"][0]["controller"] is True
    # no owner reference across namespaces (the API would refuse it)
    cross = next(o for o in aset.objects if o["metadata"]["namespace"] == "grafana")
    assert "ownerReferences" not in cross["metadata"]
    assert set(aset.deployments()) == {"stable", "canary"}
    assert aset.deployments()["canary"]["metadata"]["name"] == "wine-canary"
    # the input is not modified
    assert "ownerReferences" not in RENDERED[1]["metadata"]


def test_apply_set_leaves_out_kinds_the_cluster_does_not_serve():
    served = frozenset({"ServiceAccount", "ConfigMap", "Service", "Deployment"})
    aset = build_apply_set(RENDERED, OWNER, served_kinds=served)
    assert "ServiceMonitor" not in {o["kind"] for o in aset.objects}
    assert [k.kind for k in aset.skipped] == ["ServiceMonitor"]


def test_unknown_kind_is_an_error():
    with pytest.raises(KeyError, match="unknown kind"):
        build_apply_set([obj("Ingress", "x", "networking.k8s.io/v1")], OWNER)


def existing(kind, name, *, owner="wine", uid="uid-1", api="v1"):
    meta = {"name": name, "namespace": "models", "labels": {LABEL_OWNER: owner}}
    if uid:
        meta["ownerReferences"] = [{"uid": uid}]
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def test_prune_set_deletes_only_what_we_own_and_no_longer_render():
    desired = frozenset({ObjectKey("apps/v1", "Deployment", "models", "wine")})
    found = [
        existing("Deployment", "wine", api="apps/v1"),  # still wanted
        existing("Deployment", "wine-canary", api="apps/v1"),  # stale, ours
        existing("Deployment", "other", owner="other", api="apps/v1"),  # another MD's
        existing("Deployment", "copied", uid="uid-2", api="apps/v1"),  # label copied, not ours
        existing("ConfigMap", "unowned", uid=""),  # our label but no owner reference
    ]
    assert prune_set(found, desired, OWNER) == [
        ObjectKey("apps/v1", "Deployment", "models", "wine-canary")
    ]


@pytest.mark.parametrize(
    ("interval", "timeout"),
    [("2s", "2s"), ("5s", "5s"), ("10s", "10s"), ("15s", "10s"), ("1m", "10s")],
)
def test_scrape_timeout_never_exceeds_the_interval(interval: str, timeout: str) -> None:
    assert scrape_timeout(interval) == timeout
