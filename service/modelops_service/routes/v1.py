"""POST /v1/predict: one instance or {"instances": [...]}, validated against the card."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from modelops_service.artifact import Prediction
from modelops_service.card import ModelCard
from modelops_service.decoding import decode_v1
from modelops_service.routes.common import (
    JSON,
    PredictRoute,
    ServiceDep,
    error_responses,
    predict_step,
)
from modelops_service.validation import Decoded, FeatureSchema


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


def answer_v1(card: ModelCard) -> Callable[[Decoded, Prediction], dict[str, Any]]:
    classes = card.target.classes
    model = {"model": card.name, "version": card.version}

    def answer(decoded: Decoded, prediction: Prediction) -> dict[str, Any]:
        body: dict[str, Any] = {**model, "predictions": prediction.predictions}
        if prediction.probabilities is not None:
            body["classes"] = classes
            body["probabilities"] = prediction.probabilities
        if decoded.batch.warnings:
            body["warnings"] = [w.as_dict() for w in decoded.batch.warnings]
        return body

    return answer


def build_router(card: ModelCard, schema: FeatureSchema) -> APIRouter:
    router = APIRouter(tags=["predict"])
    answer = answer_v1(card)

    def decode(body: bytes) -> Decoded:
        return decode_v1(body, schema)

    async def predict(request: Request, svc: ServiceDep) -> Response:
        return await predict_step(request, svc, decode, answer)

    example = {f.name: round(f.mean, 4) for f in card.features}
    router.add_api_route(
        "/v1/predict",
        predict,
        methods=["POST"],
        route_class_override=PredictRoute,
        summary=f"Predict with {card.name} v{card.version}",
        description=card.description,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": request_schema(card, schema.max_instances),
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
