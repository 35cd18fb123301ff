"""Drift: what counts as someone else's change to what we own, and what the glue does with it."""

from __future__ import annotations

import copy

import pytest

from modelops_operator.applyset import (
    ObjectKey,
    changed_fields,
    drift_message,
    needs_recheck,
    watch_fingerprint,
)
from tests.support.reconciler_fakes import MD, NAME, NS, UID, make

DESIRED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "wine-model-service",
        "labels": {"app.kubernetes.io/name": "model-service", "modelops.io/track": "stable"},
        "ownerReferences": [{"kind": "ModelDeployment", "name": "wine", "uid": "u1"}],
    },
    "spec": {
        "replicas": 2,
        "template": {
            "metadata": {"labels": {"modelops.io/version": "1"}},
            "spec": {
                "containers": [
                    {
                        "name": "model-service",
                        "image": "model-service:0.1.0",
                        "args": ["--port", "8080"],
                        "env": [
                            {"name": "MODELOPS_MODEL_DIR", "value": "/models/wine/1"},
                            {"name": "MODELOPS_MODEL_SHA256", "value": "abc"},
                        ],
                        "ports": [{"containerPort": 8080, "name": "http"}],
                    }
                ]
            },
        },
    },
}


def live(**edits) -> dict:
    """DESIRED as the API server stores it (defaults, status, others' fields), then `edits`."""
    obj = copy.deepcopy(DESIRED)
    obj["metadata"].update(resourceVersion="7", generation=3, uid="d1")
    obj["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    obj["spec"]["strategy"] = {"type": "RollingUpdate"}
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicy"] = "IfNotPresent"
    obj["status"] = {"readyReplicas": 2}
    for path, value in edits.items():
        edit(obj, path, value)
    return obj


def edit(obj: dict, path: str, value) -> None:
    container = obj["spec"]["template"]["spec"]["containers"][0]
    match path:
        case "replicas":
            obj["spec"]["replicas"] = value
        case "image":
            container["image"] = value
        case "model_dir":
            container["env"][0]["value"] = value
        case "extra_env":
            container["env"].append(value)
        case "restarted_at":
            obj["spec"]["template"]["metadata"]["annotations"] = {
                "kubectl.kubernetes.io/restartedAt": value
            }
        case "annotation":
            obj["metadata"]["annotations"]["team"] = value
        case "label_removed":
            del obj["metadata"]["labels"][value]
        case "status":
            obj["status"] = value
        case "args":
            container["args"] = value
        case _:
            raise KeyError(path)


CONTAINER = "spec.template.spec.containers[model-service]"


@pytest.mark.parametrize(
    ("edits", "fields"),
    [
        ({}, []),
        ({"replicas": 5}, ["spec.replicas"]),
        ({"image": "evil:latest"}, [f"{CONTAINER}.image"]),
        ({"model_dir": "/tmp/x"}, [f"{CONTAINER}.env[MODELOPS_MODEL_DIR].value"]),
        ({"args": ["--port", "9"]}, [f"{CONTAINER}.args"]),
        ({"label_removed": "modelops.io/track"}, ["metadata.labels.modelops.io/track"]),
        ({"replicas": 0, "image": "x"}, ["spec.replicas", f"{CONTAINER}.image"]),
        # not ours: someone's annotation, kubectl's restartedAt, an env var we do not set,
        # the status, the controllers' revision annotation
        ({"annotation": "ml"}, []),
        ({"restarted_at": "2026-01-01T00:00:00Z"}, []),
        ({"extra_env": {"name": "DEBUG", "value": "1"}}, []),
        ({"status": {"readyReplicas": 0}}, []),
    ],
)
def test_changed_fields_are_the_fields_we_apply_that_the_apply_changed(edits, fields):
    before = live(**edits)
    ours = {"replicas", "image", "model_dir", "args", "label_removed"}
    after = live(**{k: v for k, v in edits.items() if k not in ours})  # the apply puts ours back
    assert changed_fields(DESIRED, before, after) == fields


def test_a_noop_apply_changes_nothing_even_with_a_new_resource_version():
    before, after = live(), live()
    after["metadata"]["resourceVersion"] = "8"
    after["status"] = {"readyReplicas": 1}
    assert changed_fields(DESIRED, before, after) == []


def test_list_items_are_matched_by_name_not_position():
    before = live()
    env = before["spec"]["template"]["spec"]["containers"][0]["env"]
    env.reverse()  # the same variables in another order: not a change of any value
    assert changed_fields(DESIRED, before, live()) == []
    before = live()
    del before["spec"]["template"]["spec"]["containers"][0]["env"][1]
    assert changed_fields(DESIRED, before, live()) == [f"{CONTAINER}.env[MODELOPS_MODEL_SHA256]"]


def test_drift_messages_name_the_object_and_the_fields():
    key = ObjectKey("apps/v1", "Deployment", "models", "wine-model-service")
    message = drift_message(key, live(), ["spec.replicas", f"{CONTAINER}.image"])
    assert message == (
        "Deployment/wine-model-service was changed by someone else; restored spec.replicas, "
        f"{CONTAINER}.image"
    )
    gone = drift_message(key, None, ["*"])
    assert gone == "Deployment/wine-model-service was deleted; recreated it"
    many = drift_message(key, live(), [f"f{i}" for i in range(12)])
    assert many.endswith("f7 and 4 more")


def test_watch_events_that_need_a_look():
    ours = live()
    applied = {"wine-model-service": watch_fingerprint(ours)}
    # the controllers at work: status, the revision annotation, resourceVersion
    assert not needs_recheck("MODIFIED", live(status={"readyReplicas": 0}), applied)
    bumped = live()
    bumped["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "3"
    bumped["metadata"]["resourceVersion"] = "99"
    assert not needs_recheck("MODIFIED", bumped, applied)
    # someone else: a spec change bumps the generation; labels and annotations do not
    scaled = live()
    scaled["metadata"]["generation"] = 4
    assert needs_recheck("MODIFIED", scaled, applied)
    assert needs_recheck("MODIFIED", live(annotation="ml"), applied)
    assert needs_recheck("MODIFIED", live(label_removed="modelops.io/track"), applied)
    assert needs_recheck("DELETED", ours, applied)
    # objects this process has not applied are the next reconcile's business
    assert not needs_recheck("MODIFIED", scaled, {})
    assert not needs_recheck(None, scaled, {"other": watch_fingerprint(ours)})


# --- the reconciler's glue (in-memory API server) ------------------------------------


def deployment_path(name: str = "wine-model-service") -> ObjectKey:
    return ObjectKey("apps/v1", "Deployment", NS, name)


def ready(reconciler, kube) -> None:
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    assert kube.objects[MD]["status"]["phase"] == "Ready"


def test_a_scaled_deployment_is_restored_at_once_and_said_so():
    reconciler, kube = make()
    ready(reconciler, kube)
    dep = kube.objects[deployment_path()]
    status_only = copy.deepcopy(dep)
    status_only["status"] = {"readyReplicas": 0}
    assert reconciler.owned_object_changed("MODIFIED", status_only) is None
    assert not reconciler.applier.memory[UID].recheck
    dep["spec"]["replicas"] = 7
    dep["metadata"]["generation"] = 2
    dep["metadata"].setdefault("annotations", {})["team"] = "ml"
    # the watch event: the owner is named so the handler pokes its daemon
    orphan = copy.deepcopy(dep)
    orphan["metadata"]["ownerReferences"] = []
    assert reconciler.owned_object_changed("MODIFIED", orphan) is None
    assert reconciler.owned_object_changed("MODIFIED", copy.deepcopy(dep)) == UID
    applied = len(kube.applied)
    reconciler.reconcile(NS, NAME)  # resync_seconds (30) is not due: the recheck applies
    assert len(kube.applied) > applied
    assert kube.objects[deployment_path()]["spec"]["replicas"] == 2
    drift = [e for e in kube.events if e[1] == "DriftCorrected"]
    assert drift == [
        (
            "Warning",
            "DriftCorrected",
            "Deployment/wine-model-service was changed by someone else; restored spec.replicas",
        )
    ]
    # the next pass has nothing to say, and does not re-apply before the resync is due
    applied = len(kube.applied)
    reconciler.reconcile(NS, NAME)
    assert len(kube.applied) == applied
    assert [e for e in kube.events if e[1] == "DriftCorrected"] == drift


def test_a_recheck_with_nothing_changed_says_nothing():
    reconciler, kube = make()
    ready(reconciler, kube)
    reconciler.applier.memory[UID].recheck = True
    applied = len(kube.applied)
    reconciler.reconcile(NS, NAME)
    assert len(kube.applied) > applied  # re-applied
    assert not [e for e in kube.events if e[1] == "DriftCorrected"]


def test_a_deleted_object_is_recreated_on_resync_and_said_so():
    reconciler, kube = make()
    ready(reconciler, kube)
    del kube.objects[ObjectKey("monitoring.coreos.com/v1", "ServiceMonitor", NS,
                               "wine-model-service")]  # fmt: skip
    reconciler.applier.resync_seconds = 0
    reconciler.reconcile(NS, NAME)
    assert ("Warning", "DriftCorrected", "ServiceMonitor/wine-model-service was deleted; "
            "recreated it") in kube.events  # fmt: skip


def test_our_own_changes_are_not_drift():
    reconciler, kube = make()
    ready(reconciler, kube)
    body = kube.objects[MD]
    body["spec"]["rollout"] = {"strategy": "RollingUpdate"}
    body["spec"]["model"] = {**body["spec"]["model"], "version": "2", "artifact": "/m/2"}
    reconciler.applier.memory[UID].recheck = True  # even with a recheck pending
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    assert kube.objects[MD]["status"]["stableVersion"] == "2"
    assert not [e for e in kube.events if e[1] == "DriftCorrected"]


def test_the_watch_handler_successes_are_not_logged():
    import logging

    from modelops_operator.handlers import _QuietWatch

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, (), None)

    quiet = _QuietWatch()
    assert not quiet.filter(record("Handler 'owned_deployment_changed' succeeded."))
    assert quiet.filter(record("Handler 'rollout_loop' failed with an exception."))
