"""The applier's drift check against a write that lands between its read and its apply.

Such a write used to be undone by the apply without being named (the read saw the
object before it); the apply now carries the read's resourceVersion, so the write makes
it conflict, the applier reads again, and the DriftCorrected message names the fields.
"""

from __future__ import annotations

import copy

import pytest

from modelops_operator.applier import CHECKED_APPLY_ATTEMPTS, Applier
from modelops_operator.applyset import ApplySet, ObjectKey, Owner
from modelops_operator.kube import ConflictError
from tests.support.reconciler_fakes import CORE_KINDS, FakeKube

NS = "models"
KEY = ObjectKey("apps/v1", "Deployment", NS, "wine-model-service")
OWNER = Owner("wine", NS, "uid-1")


def deployment(image: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": KEY.name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "m", "image": image}]}},
        },
    }


class RacingKube(FakeKube):
    """Someone else edits the Deployment right after each of the next `races` reads."""

    def __init__(self, races: int) -> None:
        super().__init__(CORE_KINDS)
        self.races = races
        self.reads = 0

    def get(self, api_version, kind, name, namespace=None):
        seen = super().get(api_version, kind, name, namespace)
        self.reads += 1
        if self.races and seen is not None:
            self.races -= 1
            edited = copy.deepcopy(self.objects[KEY])
            edited["spec"]["template"]["spec"]["containers"][0]["image"] = f"evil:{self.races}"
            self.objects[KEY] = self._bump(edited)
        return seen


def applied_once(kube: FakeKube) -> Applier:
    applier = Applier(kube, "modelops-operator", resync_seconds=600)
    assert applier.apply(ApplySet((deployment("ours:1"),)), OWNER, frozenset()) == []
    applier.memory[OWNER.uid].recheck = True  # what a watch event on the Deployment sets
    return applier


def test_a_write_between_read_and_apply_is_put_back_and_named():
    kube = RacingKube(races=0)
    applier = applied_once(kube)
    kube.races = 1
    messages = applier.apply(ApplySet((deployment("ours:1"),)), OWNER, frozenset())
    assert kube.objects[KEY]["spec"]["template"]["spec"]["containers"][0]["image"] == "ours:1"
    assert kube.reads == 2  # the first apply conflicted; the second read saw the edit
    assert len(messages) == 1
    assert "restored spec.template.spec.containers[m].image" in messages[0]


def test_an_object_that_keeps_changing_fails_the_tick_and_is_checked_again():
    kube = RacingKube(races=0)
    applier = applied_once(kube)
    kube.races = CHECKED_APPLY_ATTEMPTS
    with pytest.raises(ConflictError):
        applier.apply(ApplySet((deployment("ours:1"),)), OWNER, frozenset())
    assert applier.memory[OWNER.uid].recheck  # the next tick looks again
    messages = applier.apply(ApplySet((deployment("ours:1"),)), OWNER, frozenset())
    assert kube.objects[KEY]["spec"]["template"]["spec"]["containers"][0]["image"] == "ours:1"
    assert len(messages) == 1
    assert "image" in messages[0]
