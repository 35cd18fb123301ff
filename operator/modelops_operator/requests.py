"""Requests of `kubectl modelops` (pure): read once from an annotation, applied, recorded.

The plugin writes one request as JSON into the annotation `modelops.io/request` of the
ModelDeployment: `{"id", "verb", "full", "by", "at"}`. A pass of the operator consumes it:

- promote [--full] and abort go to the state machine (rollout.py) as the observation's
  request, and win over the analysis: a step on (or straight to promotion), or a rollback;
- retry forgets the rolled-back mark, so the release the spec asks for canaries again;
- pause / resume set or clear status.pause, which holds a rollout like spec.paused
  (`Observation.paused`), without editing the spec a GitOps tool owns.

The pass records it in status.lastRequest (by its id: a request is acted on once, even when
the operator restarts before it removes the annotation) and in status.history with who
asked (result `Request`, reason the verb). A request that does not apply (promote with no
canary or on an A/B test, resume with nothing paused) is recorded as not accepted, and says
why; so is any request a pass finds while the object is Degraded by an invalid spec or a
failed render (`reject`), which would otherwise act long after, once the spec is fixed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from pydantic import ValidationError

from modelops_operator.constants import GROUP
from modelops_operator.models import (
    HistoryEntry,
    ModelDeploymentStatus,
    Pause,
    RequestRecord,
    Verb,
)
from modelops_operator.reasons import REQUEST_RESULT
from modelops_operator.rollout import Observation, State, derive_state

ANNOTATION = f"{GROUP}/request"
NOT_ACCEPTED = "not accepted: "  # how a history entry says its request was refused


def read_request(annotations: Mapping[str, str] | None) -> RequestRecord | None:
    """The request in the annotation, or None; ValueError (one line: an Event's message, the
    plugin's error) when it is not one."""
    raw = (annotations or {}).get(ANNOTATION)
    if raw is None:
        return None
    try:
        return RequestRecord.model_validate(json.loads(raw))
    except ValidationError as exc:
        why = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"annotation {ANNOTATION} is not a request: {why}") from exc
    except ValueError as exc:  # not JSON
        raise ValueError(f"annotation {ANNOTATION} is not a request: {exc}") from exc


def is_new(request: RequestRecord, status: ModelDeploymentStatus) -> bool:
    return status.last_request is None or status.last_request.id != request.id


def apply_request(
    obs: Observation, request: RequestRecord, now: str
) -> tuple[Observation, RequestRecord]:
    """The observation this pass decides on, and the request as consumed."""
    status, spec = obs.status, obs.spec
    version = spec.model.version
    state = derive_state(status)
    canary = status.canary
    in_canary = state == State.CANARY and canary is not None and canary.model == spec.model

    def done(
        accepted: bool, message: str, new: Observation = obs
    ) -> tuple[Observation, RequestRecord]:
        return new, request.model_copy(update={"accepted": accepted, "message": message})

    if request.verb in (Verb.PROMOTE, Verb.ABORT):
        if not in_canary:
            return done(False, f"no canary of version {version} in progress (phase {status.phase})")
        # an A/B test has no steps to move on: the user's pick ends it (abort still rolls B back)
        if request.verb == Verb.PROMOTE and spec.rollout.ab:
            return done(
                False,
                f"an A/B test is promoted only by its winner: set spec.rollout.abTest.winner "
                f"to {version}",
            )
        what = "promote --full" if request.verb == Verb.PROMOTE and request.full else request.verb
        return done(True, f"{what} canary {version}", dataclasses.replace(obs, request=request))
    if request.verb == Verb.RETRY:
        if state != State.ROLLED_BACK or status.rolled_back != spec.model:
            return done(False, f"version {version} is not rolled back")
        retried = status.model_copy(update={"rolled_back": None})
        return done(True, f"version {version} again", dataclasses.replace(obs, status=retried))
    if request.verb == Verb.PAUSE:
        if status.pause is not None:
            return done(False, f"already paused by {status.pause.by} at {status.pause.at}")
        paused = status.model_copy(update={"pause": Pause(by=request.by, at=now)})
        return done(True, "rollout paused until resume", dataclasses.replace(obs, status=paused))
    # resume
    if status.pause is None:
        return done(
            False, "not paused" + (" (spec.paused holds it: edit the spec)" if spec.paused else "")
        )
    resumed = status.model_copy(update={"pause": None})
    note = "; spec.paused still holds it" if spec.paused else ""
    return done(True, f"resumed{note}", dataclasses.replace(obs, status=resumed))


def reject(request: RequestRecord, reason: str, message: str) -> RequestRecord:
    """The request as consumed by a pass that could not act on anything (Degraded by
    `reason`): refused, with why, so the plugin hears it and a later pass never acts on it."""
    return request.model_copy(
        update={"accepted": False, "message": f"the object is Degraded ({reason}): {message}"}
    )


def _history_reason(request: RequestRecord) -> str:
    return "PromoteFull" if request.verb == Verb.PROMOTE and request.full else request.verb.title()


def record(
    status: ModelDeploymentStatus, request: RequestRecord, version: str, history_limit: int
) -> ModelDeploymentStatus:
    """The status with the consumed request as lastRequest and in the history."""
    message = ("" if request.accepted else NOT_ACCEPTED) + request.message
    entry = HistoryEntry(version=version, result=REQUEST_RESULT, at=request.at,
                         reason=_history_reason(request), message=message,
                         by=request.by)  # fmt: skip
    history = (*status.history, entry)[-history_limit:]
    return status.model_copy(update={"last_request": request, "history": history})


def answer(status: ModelDeploymentStatus, request: RequestRecord) -> RequestRecord | None:
    """How the operator answered `request`, or None while it waits.

    status.lastRequest when it is this one; else the history entry record() wrote for it,
    since another request may be consumed before the plugin looks again. The history keeps
    no request id (the CRD has none), so who asked, when (to the second) and the verb
    identify it.
    """
    last = status.last_request
    if last is not None and last.id == request.id:
        return last
    for entry in reversed(status.history):
        if entry.result == REQUEST_RESULT and (entry.by, entry.at, entry.reason) == (
            request.by,
            request.at,
            _history_reason(request),
        ):
            accepted = not entry.message.startswith(NOT_ACCEPTED)
            message = entry.message.removeprefix(NOT_ACCEPTED)
            return request.model_copy(update={"accepted": accepted, "message": message})
    return None
