"""POST /v1/predict: one instance or {"instances": [...]}, validated against the card."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from modelops_service.card import ModelCard
from modelops_service.routes.common import (
    JSON,
    ServiceDep,
    error_responses,
    input_error_response,
    json_response,
    not_ready_response,
    prediction_failed_response,
    read_body,
)
from modelops_service.service import ModelService, PredictionError
from modelops_service.validation import InputError, batch_from_v1_body


def instance_schema(card: ModelCard) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"{card.name} instance",
        "properties": {
            f.name: {
                "type": "number",
                "description": f"training range [{f.min:g}, {f.max:g}], mean {f.mean:g}",
                "examples": [round(f.mean, 4)],
            }
            for f in card.features
        },
        "required": list(card.feature_names),
        "additionalProperties": False,
    }


def request_schema(card: ModelCard, max_instances: int) -> dict[str, Any]:
    instance = instance_schema(card)
    positional = {
        "type": "array",
        "items": {"type": "number"},
        "minItems": len(card.features),
        "maxItems": len(card.features),
        "description": "values in this order: " + ", ".join(card.feature_names),
    }
    return {
        "oneOf": [
            instance,
            {
                "type": "object",
                "properties": {
                    "instances": {
                        "type": "array",
                        "items": {"oneOf": [instance, positional]},
                        "minItems": 1,
                        "maxItems": max_instances,
                    }
                },
                "required": ["instances"],
                "additionalProperties": False,
            },
        ]
    }


def response_schema(card: ModelCard) -> dict[str, Any]:
    classifier = card.task == "classification"
    properties: dict[str, Any] = {
        "model": {"type": "string", "const": card.name},
        "version": {"type": "string", "const": card.version},
        "predictions": {
            "type": "array",
            "items": {"type": "integer" if classifier else "number"},
            "description": "what model.predict returns, one per instance",
        },
        "warnings": {
            "type": "array",
            "description": "flagged values (range policy 'flag'), same shape as error detail",
        },
    }
    if classifier:
        properties["classes"] = {"type": "array", "items": {"type": "integer"}}
        properties["probabilities"] = {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}},
            "description": "per instance, one probability per class, in the order of 'classes'",
        }
    return {
        "type": "object",
        "properties": properties,
        "required": ["model", "version", "predictions"],
    }


PredictEndpoint = Callable[[Request, ModelService], Awaitable[Response]]


def predict_endpoint(card: ModelCard) -> PredictEndpoint:
    """The handler of POST /v1/predict: FastAPI's route and the fast lane both call it."""
    classes = card.target.classes

    async def predict(request: Request, svc: ServiceDep) -> Response:
        if not svc.ready:
            return not_ready_response(svc)
        try:
            body = await read_body(request, svc.settings.max_body_bytes)
            batch = batch_from_v1_body(body, svc.schema)
        except InputError as error:
            return input_error_response(request, svc, error)
        request.state.batch_size = len(batch)
        if svc.settings.log_features:
            request.state.features = batch.features
        try:
            prediction = await svc.predict(batch)
        except PredictionError as error:
            return prediction_failed_response(request, svc, error)
        body: dict[str, Any] = {
            "model": svc.name,
            "version": svc.version,
            "predictions": prediction.predictions,
        }
        if prediction.probabilities is not None:
            body["classes"] = classes
            body["probabilities"] = prediction.probabilities
        if batch.warnings:
            body["warnings"] = [w.as_dict() for w in batch.warnings]
        return json_response(body)

    return predict


def build_router(card: ModelCard, max_instances: int, endpoint: PredictEndpoint) -> APIRouter:
    router = APIRouter(tags=["predict"])
    example = {f.name: round(f.mean, 4) for f in card.features}
    router.add_api_route(
        "/v1/predict",
        endpoint,
        methods=["POST"],
        summary=f"Predict with {card.name} v{card.version}",
        description=card.description,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": request_schema(card, max_instances),
                        "examples": {
                            "one instance": {"value": example},
                            "batch": {"value": {"instances": [example, example]}},
                        },
                    }
                },
            }
        },
        responses={
            200: {
                "description": "Predictions",
                "content": {JSON: {"schema": response_schema(card)}},
            },
            **error_responses(),
        },
    )
    return router
