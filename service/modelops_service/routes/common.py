"""What every router shares: the service dependency, JSON bodies in and out, errors."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelops_service.artifact import Prediction
from modelops_service.service import ModelService, PredictionError, PredictionTimeoutError
from modelops_service.validation import (
    Decoded,
    InputError,
    body_too_large,
    check_content_encoding,
    check_content_type,
)

log = logging.getLogger("modelops_service")

JSON = "application/json"
_JSON_BYTES = JSON.encode()
# nginx's "client closed request": nobody reads it, but the metrics and the access log
# see a 4xx, so a hang-up never counts toward the 5xx error ratio the canary analysis reads.
CLIENT_CLOSED_REQUEST = 499
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


async def get_service(request: Request) -> ModelService:
    # async on purpose: FastAPI would run a plain-def dependency in a worker thread,
    # a thread hop on every request.
    return request.app.state.service


ServiceDep = Annotated[ModelService, Depends(get_service)]


class PredictRoute(APIRoute):
    """The route class of the prediction endpoints, the hot path: FastAPI documents the
    operation from the endpoint's signature as usual, and each request calls
    ``endpoint(request, service, **path_params)`` straight away. Left out are the
    per-request dependency resolution and the exit stacks of dependencies with
    ``yield`` (a fifth of a single-row request's CPU time, to hand over the same two
    objects every time). ``PredictRoutes`` serves these routes ahead of the router.
    Only for endpoints of that signature whose path parameters are strings."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = self.serve

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        service = scope["app"].state.service
        response = await self.endpoint(request, service, **scope["path_params"])
        await response(scope, receive, send)


class PredictRoutes:
    """Serves the app's ``PredictRoute`` routes (the same objects the router holds) ahead
    of the exception middleware, FastAPI's exit stack and the router: a prediction uses
    none of them (no dependency to close, no HTTPException; ``predict_step`` answers a
    client that hangs up), and together they cost about 5% of a single-row request.
    Anything else, and a prediction route under a root path or with a method it does not
    allow (405), goes on to them."""

    def __init__(self, app: ASGIApp, routes: list[PredictRoute]) -> None:
        self.app = app
        self.routes = [(route, frozenset(route.methods or ())) for route in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path, method = scope["path"], scope["method"]
            for route, methods in self.routes:
                match = route.path_regex.match(path)
                if match is not None and method in methods:
                    # what the router's match would have put in the scope
                    scope["endpoint"] = route.endpoint
                    scope["route"] = route
                    scope["path_params"] = match.groupdict()
                    await route.serve(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _fallback(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):  # e.g. a non-contiguous array
        return value.tolist()
    raise TypeError(f"cannot serialize {type(value).__name__}")


class JsonResponse(Response):
    """A Response of JSON bytes already encoded, its two headers written at once (not
    Starlette's init_headers, which looks for them in the headers given first)."""

    media_type = JSON

    def __init__(self, content: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = content
        self.raw_headers = [
            (b"content-length", str(len(content)).encode("latin-1")),
            (b"content-type", _JSON_BYTES),
        ]


def json_response(body: Any, status_code: int = 200) -> Response:
    return JsonResponse(orjson.dumps(body, default=_fallback, option=_DUMPS_OPTIONS), status_code)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body of a JSON request; InputError for a wrong content type, a content
    encoding other than identity (the body is never decompressed) and a body over
    ``limit`` bytes (declared or actual). From the scope's headers and ``receive``
    straight away: Starlette's Headers object and stream generator cost more than the
    read (issue 21 goal 1)."""
    content_type = declared = encoding = None
    for key, value in request.scope["headers"]:  # one pass, the first of each
        if key == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif key == b"content-length" and declared is None:
            declared = value
        elif key == b"content-encoding":  # every one: a list may span header lines
            encoding = value if encoding is None else encoding + b"," + value
    check_content_type(content_type)
    if encoding is not None:
        check_content_encoding(encoding.decode("latin-1"))
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def predict_step(
    request: Request,
    svc: ModelService,
    decode: Callable[[bytes], Decoded],
    answer: Callable[[Decoded, Prediction], dict[str, Any]],
) -> Response:
    """POST a body, get predictions: the one step of every protocol (ready check, decode,
    predict, respond). ``decode`` turns the body into a checked batch or raises
    InputError; ``answer`` writes the protocol's body. Refusals and failures are answered
    and counted alike whatever the protocol."""
    if not svc.ready:
        return not_ready_response(svc)
    try:
        decoded = decode(await read_body(request, svc.settings.max_body_bytes))
    except InputError as error:
        return input_error_response(request, svc, error)
    except ClientDisconnect:
        return client_closed_response(request)
    batch = decoded.batch
    request.state.batch_size = len(batch)
    if svc.settings.log_features:
        request.state.features = batch.features
    try:
        prediction = await svc.predict(batch)
    except PredictionError as error:
        return prediction_failed_response(request, svc, error)
    return json_response(answer(decoded, prediction))


def input_error_response(request: Request, svc: ModelService, error: InputError) -> Response:
    """Count the refusal by reason and answer it with field-level detail."""
    svc.rejected(error)
    request.state.reasons = sorted(error.reasons)
    body = {"model": svc.name, "version": svc.version, **error.body()}
    return json_response(body, error.status)


def client_closed_response(request: Request) -> Response:
    """The client hung up while its body was being read: not our error, not a 5xx."""
    request.state.reasons = ["client_disconnected"]
    log.info(
        "client disconnected before its request body was read",
        extra={"fields": {"request_id": request.state.request_id, "path": request.url.path}},
    )
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def prediction_failed_response(
    request: Request, svc: ModelService, error: PredictionError
) -> Response:
    """500 when the model failed; 503 (retry later) when the request timed out in the
    batching queue, as the service is overloaded."""
    if isinstance(error, PredictionTimeoutError):
        request.state.reasons = ["prediction_timeout"]
        response = json_response(
            {
                "error": f"prediction timed out: {error}",
                "reasons": ["prediction_timeout"],
                "model": svc.name,
                "version": svc.version,
            },
            503,
        )
        response.headers["retry-after"] = str(max(1, math.ceil(error.timeout_seconds)))
        return response
    return json_response(
        {"error": "prediction failed", "model": svc.name, "version": svc.version}, 500
    )


def not_ready_response(svc: ModelService) -> Response:
    return json_response(
        {"error": "model not ready", "model": svc.name, "version": svc.version}, 503
    )


def error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "errors_total": {"type": "integer"},
            "detail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                        "msg": {"type": "string"},
                        "type": {"type": "string", "description": "the reason"},
                    },
                },
            },
        },
    }


def error_responses() -> dict[int | str, dict[str, Any]]:
    content = {JSON: {"schema": error_schema()}}
    return {
        400: {"description": "Malformed JSON", "content": content},
        413: {"description": "Body too large", "content": content},
        415: {
            "description": "Content type is not application/json, or a Content-Encoding "
            "other than identity (bodies are read uncompressed only)",
            "content": content,
        },
        422: {"description": "Invalid instances (field-level detail)", "content": content},
        503: {
            "description": "Model not ready yet, or overloaded: the request waited longer "
            "than MODELOPS_BATCH_TIMEOUT_MS for the model (retry after Retry-After seconds)",
            "content": content,
        },
    }
