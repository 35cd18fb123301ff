"""kubectl modelops' requests: a write that loses to another writer (409) is read, checked
and written again; a request that waits for the operator is never written over."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from modelops_operator import plugin
from modelops_operator.requests import ANNOTATION


class FakeClient:
    """The plugin's Client as the API server answers it: ``conflicts`` writes lose (409)
    before one goes through; the operator then records the request it finds; ``between``
    runs on every read (another writer's change)."""

    def __init__(self, conflicts: int, between: Any = None) -> None:
        self.conflicts = conflicts
        self.between = between
        self.obj: dict[str, Any] = {
            "metadata": {"name": "wine", "namespace": "models", "resourceVersion": "1"},
            "status": {},
        }
        self.reads = 0
        self.writes: list[str] = []  # the resourceVersion each write was conditional on

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        if self.between is not None:
            self.between(self.obj)
        return json.loads(json.dumps(self.obj))

    def whoami(self) -> str:
        return "ann"

    def patch_annotation(self, obj: dict[str, Any], value: str) -> None:
        self.writes.append(obj["metadata"]["resourceVersion"])
        if self.conflicts:
            self.conflicts -= 1
            self.obj["metadata"]["resourceVersion"] = str(
                int(obj["metadata"]["resourceVersion"]) + 1
            )
            raise plugin.ObjectChangedError("the object kept changing: ask again")
        request = json.loads(value)
        self.obj["status"]["lastRequest"] = {**request, "accepted": True, "message": "done"}


def args() -> argparse.Namespace:
    return argparse.Namespace(namespace="models", name="wine", verb="abort", timeout=5.0)


@pytest.fixture(autouse=True)
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "CONFLICT_BACKOFF_SECONDS", 0.0)
    monkeypatch.setattr(plugin, "POLL_SECONDS", 0.0)


def test_a_write_that_lost_to_another_writer_is_made_again_on_a_fresh_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = FakeClient(conflicts=plugin.CONFLICT_ATTEMPTS - 1)

    assert plugin.cmd_request(client, args()) == 0  # type: ignore[arg-type]

    # each attempt wrote on the resourceVersion the previous loser left behind
    assert client.writes == [str(v) for v in range(1, plugin.CONFLICT_ATTEMPTS + 1)]
    assert capsys.readouterr().out == "abort by ann: accepted: done\n"


def test_after_the_last_attempt_the_user_is_told_to_ask_again() -> None:
    client = FakeClient(conflicts=plugin.CONFLICT_ATTEMPTS)

    with pytest.raises(plugin.ObjectChangedError, match="ask again"):
        plugin.cmd_request(client, args())  # type: ignore[arg-type]
    assert len(client.writes) == plugin.CONFLICT_ATTEMPTS


def test_a_request_that_came_in_meanwhile_is_not_written_over() -> None:
    def someone_else_asks(obj: dict[str, Any]) -> None:
        if len(client.writes) == 1:  # after the first write lost
            waiting = {"id": "other", "verb": "promote", "by": "bob", "at": ""}
            obj["metadata"]["annotations"] = {ANNOTATION: json.dumps(waiting)}

    client = FakeClient(conflicts=1, between=someone_else_asks)

    with pytest.raises(plugin.PluginError, match="a promote by bob waits for the operator"):
        plugin.cmd_request(client, args())  # type: ignore[arg-type]
    assert client.writes == ["1"]
