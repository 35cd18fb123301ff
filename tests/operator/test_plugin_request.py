"""kubectl modelops' glue: a write that loses to another writer (409) is read, checked and
written again; a request that waits for the operator is never written over; an answer is
found even after another request's; errors are one line and exit 2; a wait outlasts a
transient error."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import kubernetes.config.kube_config
import pytest
import urllib3.exceptions
from kubernetes.client.rest import ApiException

from modelops_operator import plugin
from modelops_operator.models import RequestRecord, Verb, dump, parse_status
from modelops_operator.requests import ANNOTATION, record


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


def test_a_request_answered_before_another_is_reported_as_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Busy(FakeClient):
        """The operator consumes ours, then bob's, before the plugin looks again."""

        def patch_annotation(self, obj: dict[str, Any], value: str) -> None:
            status = parse_status(self.obj["status"])
            mine = RequestRecord.model_validate_json(value)
            for asked in (mine, RequestRecord(id="bob-1", verb=Verb.PAUSE, by="bob", at="x")):
                answered = asked.model_copy(update={"accepted": True, "message": "done"})
                status = record(status, answered, "2", 10)
            self.obj["status"] = dump(status)

    assert plugin.cmd_request(Busy(conflicts=0), args()) == 0  # type: ignore[arg-type]
    assert capsys.readouterr().out == "abort by ann: accepted: done\n"


class Custom:
    """CustomObjectsApi's get, answering from a list: an object, or an error to raise."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)

    def get_namespaced_custom_object(self, *_: Any) -> dict[str, Any]:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return json.loads(json.dumps(answer))


def client_of(custom: Custom) -> plugin.Client:
    """The plugin's Client on a fake API (no kubeconfig)."""
    client = plugin.Client.__new__(plugin.Client)
    client.custom = custom  # type: ignore[assignment]
    client.default_namespace = "models"
    return client


READY_OBJ = {
    "metadata": {"name": "wine", "namespace": "models", "resourceVersion": "2", "generation": 2},
    "spec": {"model": {"name": "wine", "version": "2"}},
    "status": {"observedGeneration": 2, "phase": "Ready", "stableVersion": "2",
               "conditions": [{"type": "Ready", "status": "True", "reason": "Available",
                               "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
}  # fmt: skip
UNAVAILABLE = ApiException(status=503, reason="Service Unavailable")
UNREACHABLE = urllib3.exceptions.MaxRetryError(
    None,
    "/apis",
    urllib3.exceptions.NewConnectionError(None, "Connection refused"),  # type: ignore[arg-type]
)


def watch(client: plugin.Client, timeout: float) -> int:
    status = argparse.Namespace(namespace="models", name="wine", watch=True, timeout=timeout)
    return plugin.cmd_status(client, status)


@pytest.mark.parametrize("error", [UNAVAILABLE, UNREACHABLE], ids=["503", "unreachable"])
def test_a_watch_asks_again_after_a_transient_error(
    error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    client = client_of(Custom(error, error, READY_OBJ))

    assert watch(client, timeout=600) == 0
    out, err = capsys.readouterr()
    assert out.endswith("Ready\n")
    assert err.count("asking again until the timeout") == 1  # once per cause


def test_a_watch_gives_up_on_a_transient_error_at_its_timeout() -> None:
    with pytest.raises(plugin.TransientError, match="503 Service Unavailable"):
        watch(client_of(Custom(UNAVAILABLE)), timeout=0.01)


def test_a_refusal_is_not_asked_again() -> None:
    forbidden = ApiException(status=403, reason="Forbidden")
    client = client_of(Custom(forbidden, READY_OBJ))

    with pytest.raises(plugin.PluginError, match="403 Forbidden") as caught:
        watch(client, timeout=600)
    assert not isinstance(caught.value, plugin.TransientError)


DEAD_CLUSTER = """apiVersion: v1
kind: Config
clusters: [{name: dead, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: dead, context: {cluster: dead, user: u, namespace: models}}]
current-context: dead
"""


@pytest.mark.parametrize(
    ("kubeconfig", "argv", "said"),
    [
        (None, ["status", "wine"], "kubeconfig: Invalid kube-config file"),
        (DEAD_CLUSTER, ["status", "wine", "--context", "nope"], "name nope"),
        (DEAD_CLUSTER, ["status", "wine"], "API server unreachable"),
        (DEAD_CLUSTER, ["history", "wine"], "API server unreachable"),
        (DEAD_CLUSTER, ["pause", "wine"], "API server unreachable"),
    ],
    ids=["no-kubeconfig", "unknown-context", "status", "history", "request"],
)
def test_no_kubeconfig_or_api_server_is_one_line_and_exit_2_not_1(
    kubeconfig: str | None, argv: list[str], said: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path = tmp_path / "kubeconfig"
    if kubeconfig is not None:
        path.write_text(kubeconfig)
    # what KUBECONFIG names (the client reads the variable once, at import)
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))

    assert plugin.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kubectl modelops: ")
    assert said in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("value", ["promote", '{"verb": "explode"}', '"x"'])
def test_a_malformed_request_waiting_is_one_line_and_exit_2(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient(conflicts=0)
    client.obj["metadata"]["annotations"] = {ANNOTATION: value}
    client.default_namespace = "models"  # type: ignore[attr-defined]
    monkeypatch.setattr(plugin, "Client", lambda context: client)

    assert plugin.main(["abort", "wine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kubectl modelops: annotation {ANNOTATION} is not a request: ")
    assert err.count("\n") == 1
    assert client.writes == []


def test_timeout_says_how_to_write_a_duration_and_history_takes_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        plugin.parser().parse_args(["status", "wine", "--watch", "--timeout", "5"])
    assert "use e.g. 30s, 5m" in capsys.readouterr().err
    assert plugin.parser().parse_args(["abort", "wine", "--timeout", "90s"]).timeout == 90
    with pytest.raises(SystemExit):
        plugin.parser().parse_args(["history", "wine", "--timeout", "5s"])
