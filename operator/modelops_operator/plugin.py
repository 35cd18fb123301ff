"""`kubectl modelops`: a kubectl plugin (the executable `kubectl-modelops`) for rollouts.

    kubectl modelops status NAME [-n NS] [--watch] [--timeout 10m]
    kubectl modelops promote NAME [--full]      kubectl modelops abort NAME
    kubectl modelops retry NAME                 kubectl modelops pause|resume NAME
    kubectl modelops history NAME

`status` exits 0 when the version the spec asks for is Ready at the current generation, 1
when it was rolled back, 2 otherwise (with --watch: it polls until 0 or 1, or 2 at the
timeout). Every other verb but `history` is a request: one JSON annotation
(`modelops.io/request`, requests.py) with who asks (the API server's answer to a
SelfSubjectReview), written conditionally on the object's resourceVersion (read again and
written again when another writer got there first) and refused while another request
waits; the operator consumes it once and records it in status.lastRequest and
status.history. The plugin waits for that record and exits 0 when the request was
accepted, 1 when not (the message says why), 2 when the operator did not answer in time.
An error (no usable kubeconfig, the API server unreachable or refusing) is one line on
stderr and exit 2, never 1: 1 always means RolledBack or not accepted. While the plugin
waits (`status --watch`, a request's answer) it asks again after an answer that may pass
(429, 5xx, no connection) until its timeout.

Credentials and the default namespace come from the kubeconfig (`KUBECONFIG`, `--context`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from modelops_operator.constants import GROUP, PLURAL, VERSION
from modelops_operator.models import RequestRecord, Verb, isoformat, parse_duration, parse_status
from modelops_operator.plugin_view import Verdict, history_text, status_text, verdict
from modelops_operator.requests import ANNOTATION, answer, read_request

POLL_SECONDS = 1.0
CONFLICT_ATTEMPTS = 5  # writes of a request that lost to another writer, in all
CONFLICT_BACKOFF_SECONDS = 0.1  # times the attempt: 0.1, 0.2, 0.3 ... seconds between them


class PluginError(Exception):
    """Something the user must hear about (exit 2)."""


class ObjectChangedError(PluginError):
    """The conditional write lost to another writer (409): read again and retry."""


class TransientError(PluginError):
    """An answer that may pass (429, 5xx, no connection): a wait asks again."""


TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@contextmanager
def _api(what: str) -> Iterator[None]:
    """The API client's errors as one line about `what` (urllib3's carry the whole retry
    story), transient or not."""
    try:
        yield
    except ApiException as exc:
        error = TransientError if exc.status in TRANSIENT_STATUSES else PluginError
        raise error(f"{what}: {exc.status} {exc.reason}") from exc
    except urllib3.exceptions.HTTPError as exc:
        cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
        raise TransientError(f"{what}: API server unreachable: {cause}") from exc


class Client:
    def __init__(self, context: str | None) -> None:
        try:
            kubernetes.config.load_kube_config(context=context)
            contexts, active = kubernetes.config.list_kube_config_contexts()
        except ConfigException as exc:
            raise PluginError(f"kubeconfig: {exc}") from exc
        self.api = kubernetes.client.ApiClient()
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        chosen = next((c for c in contexts if c["name"] == context), active) if context else active
        self.default_namespace = (chosen or {}).get("context", {}).get("namespace", "default")
        self.context_user = (chosen or {}).get("context", {}).get("user", "")

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        with _api(f"modeldeployment {namespace}/{name}"):
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        assert isinstance(obj, dict)
        return obj

    def patch_annotation(self, obj: dict[str, Any], value: str) -> None:
        meta = obj["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"],
                              "annotations": {ANNOTATION: value}}}  # fmt: skip
        with _api("could not write the request"):
            try:
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], patch
                )
            except ApiException as exc:
                if exc.status == 409:
                    raise ObjectChangedError("the object kept changing: ask again") from exc
                raise

    def whoami(self) -> str:
        """The user name the API server authenticates these credentials as."""
        with _api("SelfSubjectReview"):  # no API server: the request cannot be written either
            try:
                review = kubernetes.client.AuthenticationV1Api(self.api).create_self_subject_review(
                    kubernetes.client.V1SelfSubjectReview()
                )
            except ApiException:  # an API server without SelfSubjectReview, or refusing it
                review = None
        user = review.status.user_info if review is not None and review.status else None
        return str(user.username) if user is not None and user.username else self.context_user


def _wait(
    client: Client, namespace: str, name: str, done: Callable[[dict[str, Any]], bool],
    timeout: float, on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """Poll until `done(obj)`; the object then, or None at the timeout. A transient error
    is asked again until the timeout (a 503 must not end a 10-minute watch), then raised."""
    deadline = time.monotonic() + timeout
    seen, said = None, ""
    while True:
        try:
            obj = client.get(namespace, name)
        except TransientError as exc:
            if time.monotonic() >= deadline:
                raise
            if str(exc) != said:  # once per cause: the user learns why nothing moves
                said = str(exc)
                print(f"kubectl modelops: {exc}; asking again until the timeout", file=sys.stderr)
            time.sleep(POLL_SECONDS)
            continue
        version = obj["metadata"].get("resourceVersion")
        if on_change is not None and version != seen:
            on_change(obj)
        seen = version
        if done(obj):
            return obj
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_SECONDS)


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    if not args.watch:
        obj = client.get(args.namespace, args.name)
        print(status_text(obj))
        return int(verdict(obj))

    def show(changed: dict[str, Any]) -> None:
        print(status_text(changed), end="\n\n", flush=True)

    final = _wait(client, args.namespace, args.name,
                  lambda o: verdict(o) != Verdict.UNDECIDED, args.timeout, show)  # fmt: skip
    if final is None:
        print(f"timed out after {args.timeout:.0f}s", file=sys.stderr)
        return int(Verdict.UNDECIDED)
    result = verdict(final)
    print("Ready" if result == Verdict.READY else "RolledBack")
    return int(result)


def cmd_history(client: Client, args: argparse.Namespace) -> int:
    print(history_text(client.get(args.namespace, args.name)))
    return 0


def cmd_request(client: Client, args: argparse.Namespace) -> int:
    request = RequestRecord(
        id=str(uuid.uuid4()),
        verb=Verb(args.verb),
        full=bool(getattr(args, "full", False)),
        by=client.whoami(),
        at=isoformat(datetime.now(UTC)),
    )
    body = request.model_dump(mode="json", include={"id", "verb", "full", "by", "at"})
    # The operator writes the object's status on every step of a rollout, so a write made
    # on what was read can lose to it (409): read again, check again, write again, as
    # client-go's RetryOnConflict does.
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        obj = client.get(args.namespace, args.name)
        status = parse_status(obj.get("status"))
        try:
            waiting = read_request(obj["metadata"].get("annotations"))
        except ValueError as exc:
            raise PluginError(f"{exc}: the operator drops it on its next pass; ask again") from exc
        if waiting is not None and (
            status.last_request is None or status.last_request.id != waiting.id
        ):
            raise PluginError(f"a {waiting.verb} by {waiting.by} waits for the operator; try again")
        try:
            client.patch_annotation(obj, json.dumps(body, separators=(",", ":")))
            break
        except ObjectChangedError:
            if attempt == CONFLICT_ATTEMPTS:
                raise
            time.sleep(CONFLICT_BACKOFF_SECONDS * attempt)

    def answered(o: dict[str, Any]) -> RequestRecord | None:
        return answer(parse_status(o.get("status")), request)

    final = _wait(client, args.namespace, args.name, lambda o: answered(o) is not None,
                  args.timeout)  # fmt: skip
    if final is None:
        print(f"{args.verb}: written; the operator has not consumed it in {args.timeout:.0f}s",
              file=sys.stderr)  # fmt: skip
        return 2
    said = answered(final)
    assert said is not None
    print(f"{args.verb} by {said.by}: {'accepted' if said.accepted else 'not accepted'}: "
          f"{said.message}")  # fmt: skip
    return 0 if said.accepted else 1


def duration(text: str) -> float:
    """--timeout: parse_duration's own message ("use e.g. 30s, 5m") rather than argparse's."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubectl modelops", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="verb", required=True)

    def verb(name: str, help_text: str, timeout: str | None) -> argparse.ArgumentParser:
        """A subcommand; `timeout` None: it never waits, so it takes no --timeout."""
        p = sub.add_parser(name, help=help_text)
        p.add_argument("name", help="the ModelDeployment")
        p.add_argument("-n", "--namespace", help="default: the kubeconfig context's")
        p.add_argument("--context", help="kubeconfig context")
        if timeout is not None:
            waits = "--watch" if name == "status" else "the operator's answer"
            p.add_argument("--timeout", type=duration, default=parse_duration(timeout),
                           help=f"how long to wait for {waits} (default {timeout})")  # fmt: skip
        return p

    status = verb("status", "steps, figures against thresholds; exit 0 Ready, 1 RolledBack", "10m")
    status.add_argument("--watch", "-w", action="store_true", help="until Ready or RolledBack")
    status.set_defaults(run=cmd_status)
    verb("history", "finished rollouts and requests, with who asked", None).set_defaults(
        run=cmd_history
    )
    helps = {
        Verb.PROMOTE: "the canary one step on, past its analysis (--full: promote it now)",
        Verb.ABORT: "roll the canary back now",
        Verb.RETRY: "canary a rolled-back version again without editing the spec",
        Verb.PAUSE: "hold the rollout where it is",
        Verb.RESUME: "go on after pause",
    }
    for name, text in helps.items():
        p = verb(name.value, text, "60s")
        if name == Verb.PROMOTE:
            p.add_argument("--full", action="store_true", help="promote to 100% now")
        p.set_defaults(run=cmd_request)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        client = Client(args.context)
        args.namespace = args.namespace or client.default_namespace
        return int(args.run(client, args))
    except PluginError as exc:
        print(f"kubectl modelops: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
