"""Open Inference Protocol (KServe v2) REST: health, metadata and infer.

Clients written for KServe, MLServer or Triton send either one [N, F] tensor
or one [N] tensor per feature (named by feature). Validation, metrics and
drift are the same as for /v1/predict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from modelops_service import __version__
from modelops_service.artifact import Prediction
from modelops_service.card import ModelCard
from modelops_service.decoding import decode_v2
from modelops_service.routes.common import (
    JSON,
    PredictRoute,
    ServiceDep,
    error_responses,
    json_response,
    predict_step,
)
from modelops_service.service import ModelService
from modelops_service.validation import Decoded, FeatureSchema

SERVER_NAME = "modelops-service"
_DATATYPES = {"i": "INT64", "u": "UINT64", "f": "FP64", "b": "BOOL"}


def _datatype(array: np.ndarray) -> str:
    return _DATATYPES.get(array.dtype.kind, "FP64")


def _unknown(svc: ModelService, name: str, version: str | None) -> Response | None:
    if name != svc.name or (version is not None and version != svc.version):
        what = f"{name!r}" + (f" version {version!r}" if version is not None else "")
        return json_response(
            {
                "error": f"model {what} not found; this server has "
                f"{svc.name!r} version {svc.version!r}"
            },
            404,
        )
    return None


def metadata(svc: ModelService) -> dict[str, Any]:
    card = svc.card
    width = len(card.features)
    outputs = [
        {"name": "predict", "datatype": "INT64" if svc.is_classifier else "FP64", "shape": [-1]}
    ]
    if svc.is_classifier:
        k = len(card.target.classes or [])
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, k]})
    return {
        "name": card.name,
        "versions": [card.version],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, width]}],
        "outputs": outputs,
        "parameters": {
            "task": card.task,
            "feature_names": list(card.feature_names),
            "classes": card.target.classes,
        },
    }


def _outputs(prediction: Prediction, wanted: tuple[str, ...] | None) -> list[dict[str, Any]]:
    n = len(prediction)
    tensors = {
        "predict": {
            "name": "predict",
            "shape": [n],
            "datatype": _datatype(prediction.predictions),
            "data": prediction.predictions,
        }
    }
    if prediction.probabilities is not None:
        proba = prediction.probabilities
        tensors["predict_proba"] = {
            "name": "predict_proba",
            "shape": list(proba.shape),
            "datatype": "FP64",
            "data": proba.ravel(),
        }
    names = wanted if wanted else tuple(tensors)
    return [tensors[name] for name in names]


def infer_schema(card: ModelCard) -> dict[str, Any]:
    width = len(card.features)
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {
                "type": "array",
                "description": f"one tensor of shape [N, {width}] (columns: "
                + ", ".join(card.feature_names)
                + "), or one tensor of shape [N] per feature, named by feature",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string", "examples": ["FP64", "FP32"]},
                        "data": {"type": "array"},
                        "parameters": {"type": "object"},
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
        },
    }


def infer_response_schema(card: ModelCard) -> dict[str, Any]:
    classifier = card.task == "classification"
    names = ["predict", "predict_proba"] if classifier else ["predict"]
    return {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string", "const": card.name},
            "model_version": {"type": "string", "const": card.version},
            "id": {"type": "string", "description": "the request's id, when it sent one"},
            "parameters": {
                "type": "object",
                "description": "warnings: flagged values (range policy 'flag')",
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string", "enum": names},
                        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "datatype": {"type": "string", "enum": sorted(set(_DATATYPES.values()))},
                        "data": {"type": "array", "items": {"type": ["number", "boolean"]}},
                    },
                },
            },
        },
    }


def _ready(svc: ModelService) -> Response:
    return json_response({"name": svc.name, "ready": svc.ready}, 200 if svc.ready else 503)


def answer_v2(card: ModelCard) -> Callable[[Decoded, Prediction], dict[str, Any]]:
    model = {"model_name": card.name, "model_version": card.version}

    def answer(decoded: Decoded, prediction: Prediction) -> dict[str, Any]:
        body: dict[str, Any] = {**model, "outputs": _outputs(prediction, decoded.outputs)}
        if decoded.id is not None:
            body["id"] = decoded.id
        if decoded.batch.warnings:
            body["parameters"] = {"warnings": [w.as_dict() for w in decoded.batch.warnings]}
        return body

    return answer


TAGS: list[str | Enum] = ["open inference protocol (v2)"]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such model or version"}}
router = APIRouter(prefix="/v2", tags=TAGS)


@router.get("", summary="Server metadata")
async def server_metadata() -> Response:
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": []})


@router.get("/health/live", summary="Server liveness")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready", summary="Server readiness")
async def ready(svc: ServiceDep) -> Response:
    return json_response({"ready": svc.ready}, 200 if svc.ready else 503)


@router.get("/models/{model_name}", summary="Model metadata", responses=NOT_FOUND)
async def model_metadata(svc: ServiceDep, model_name: str) -> Response:
    return _unknown(svc, model_name, None) or json_response(metadata(svc))


@router.get(
    "/models/{model_name}/versions/{model_version}",
    summary="Model metadata (of one version)",
    responses=NOT_FOUND,
)
async def model_version_metadata(svc: ServiceDep, model_name: str, model_version: str) -> Response:
    return _unknown(svc, model_name, model_version) or json_response(metadata(svc))


@router.get("/models/{model_name}/ready", summary="Model readiness", responses=NOT_FOUND)
async def model_ready(svc: ServiceDep, model_name: str) -> Response:
    return _unknown(svc, model_name, None) or _ready(svc)


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    summary="Model readiness (of one version)",
    responses=NOT_FOUND,
)
async def model_version_ready(svc: ServiceDep, model_name: str, model_version: str) -> Response:
    return _unknown(svc, model_name, model_version) or _ready(svc)


def build_infer_router(
    card: ModelCard, schema: FeatureSchema, output_names: Sequence[str]
) -> APIRouter:
    """The two infer routes of the served model (their documentation names its schema)."""
    infer_router = APIRouter(prefix="/v2", tags=TAGS)
    answer = answer_v2(card)

    def decode(body: bytes) -> Decoded:
        return decode_v2(body, schema, output_names)

    async def model_infer(request: Request, svc: ServiceDep, model_name: str) -> Response:
        unknown = _unknown(svc, model_name, None)
        return unknown or await predict_step(request, svc, decode, answer)

    async def model_version_infer(
        request: Request, svc: ServiceDep, model_name: str, model_version: str
    ) -> Response:
        unknown = _unknown(svc, model_name, model_version)
        return unknown or await predict_step(request, svc, decode, answer)

    example = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [1, len(card.features)],
                "datatype": "FP64",
                "data": [round(f.mean, 4) for f in card.features],
            }
        ]
    }
    content = {JSON: {"schema": infer_schema(card), "example": example}}
    responses: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "Output tensors (row-major, flat data)",
            "content": {JSON: {"schema": infer_response_schema(card)}},
        },
        **NOT_FOUND,
        **error_responses(),
    }
    for path, endpoint, naming in (
        ("/models/{model_name}/infer", model_infer, ""),
        (
            "/models/{model_name}/versions/{model_version}/infer",
            model_version_infer,
            " (naming the version)",
        ),
    ):
        infer_router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            summary=f"Infer with {card.name} v{card.version}{naming}",
            openapi_extra={"requestBody": {"required": True, "content": content}},
            responses=responses,
            route_class_override=PredictRoute,
        )
    return infer_router
