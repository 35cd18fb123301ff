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

Credentials and the default namespace come from the kubeconfig (`KUBECONFIG`, `--context`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.rest import ApiException

from modelops_operator.constants import GROUP, PLURAL, VERSION
from modelops_operator.models import Verb, isoformat, parse_duration, parse_status
from modelops_operator.plugin_view import Verdict, history_text, status_text, verdict
from modelops_operator.requests import ANNOTATION, read_request

POLL_SECONDS = 1.0
CONFLICT_ATTEMPTS = 5  # writes of a request that lost to another writer, in all
CONFLICT_BACKOFF_SECONDS = 0.1  # times the attempt: 0.1, 0.2, 0.3 ... seconds between them


class PluginError(Exception):
    """Something the user must hear about (exit 2)."""


class ObjectChangedError(PluginError):
    """The conditional write lost to another writer (409): read again and retry."""


class Client:
    def __init__(self, context: str | None) -> None:
        kubernetes.config.load_kube_config(context=context)
        self.api = kubernetes.client.ApiClient()
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        contexts, active = kubernetes.config.list_kube_config_contexts()
        chosen = next((c for c in contexts if c["name"] == context), active) if context else active
        self.default_namespace = (chosen or {}).get("context", {}).get("namespace", "default")
        self.context_user = (chosen or {}).get("context", {}).get("user", "")

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            raise PluginError(
                f"modeldeployment {namespace}/{name}: {exc.status} {exc.reason}"
            ) from exc
        assert isinstance(obj, dict)
        return obj

    def patch_annotation(self, obj: dict[str, Any], value: str) -> None:
        meta = obj["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"],
                              "annotations": {ANNOTATION: value}}}  # fmt: skip
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], patch
            )
        except ApiException as exc:
            if exc.status == 409:
                raise ObjectChangedError("the object kept changing: ask again") from exc
            raise PluginError(f"could not write the request: {exc.status} {exc.reason}") from exc

    def whoami(self) -> str:
        """The user name the API server authenticates these credentials as."""
        try:
            review = kubernetes.client.AuthenticationV1Api(self.api).create_self_subject_review(
                kubernetes.client.V1SelfSubjectReview()
            )
        except ApiException:
            review = None
        user = review.status.user_info if review is not None and review.status else None
        return str(user.username) if user is not None and user.username else self.context_user


def _wait(
    client: Client, namespace: str, name: str, done: Callable[[dict[str, Any]], bool],
    timeout: float, on_change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """Poll until `done(obj)`; the object then, or None at the timeout."""
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        obj = client.get(namespace, name)
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
    obj = client.get(args.namespace, args.name)
    if not args.watch:
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
    request = {
        "id": str(uuid.uuid4()),
        "verb": args.verb,
        "full": bool(getattr(args, "full", False)),
        "by": client.whoami(),
        "at": isoformat(datetime.now(UTC)),
    }
    # The operator writes the object's status on every step of a rollout, so a write made
    # on what was read can lose to it (409): read again, check again, write again, as
    # client-go's RetryOnConflict does.
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        obj = client.get(args.namespace, args.name)
        status = parse_status(obj.get("status"))
        waiting = read_request(obj["metadata"].get("annotations"))
        if waiting is not None and (
            status.last_request is None or status.last_request.id != waiting.id
        ):
            raise PluginError(f"a {waiting.verb} by {waiting.by} waits for the operator; try again")
        try:
            client.patch_annotation(obj, json.dumps(request, separators=(",", ":")))
            break
        except ObjectChangedError:
            if attempt == CONFLICT_ATTEMPTS:
                raise
            time.sleep(CONFLICT_BACKOFF_SECONDS * attempt)

    def recorded(o: dict[str, Any]) -> bool:
        last = parse_status(o.get("status")).last_request
        return last is not None and last.id == request["id"]

    final = _wait(client, args.namespace, args.name, recorded, args.timeout)
    if final is None:
        print(f"{args.verb}: written; the operator has not consumed it in {args.timeout:.0f}s",
              file=sys.stderr)  # fmt: skip
        return 2
    last = parse_status(final.get("status")).last_request
    assert last is not None
    print(f"{args.verb} by {last.by}: {'accepted' if last.accepted else 'not accepted'}: "
          f"{last.message}")  # fmt: skip
    return 0 if last.accepted else 1


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubectl modelops", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="verb", required=True)

    def verb(name: str, help_text: str, timeout: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("name", help="the ModelDeployment")
        p.add_argument("-n", "--namespace", help="default: the kubeconfig context's")
        p.add_argument("--context", help="kubeconfig context")
        p.add_argument("--timeout", type=parse_duration, default=parse_duration(timeout),
                       help=f"how long to wait (default {timeout})")  # fmt: skip
        return p

    status = verb("status", "steps, figures against thresholds; exit 0 Ready, 1 RolledBack", "10m")
    status.add_argument("--watch", "-w", action="store_true", help="until Ready or RolledBack")
    status.set_defaults(run=cmd_status)
    verb("history", "finished rollouts and requests, with who asked", "10s").set_defaults(
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
