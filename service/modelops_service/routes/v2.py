"""Open Inference Protocol (KServe v2) REST: health, metadata and infer.

Clients written for KServe, MLServer or Triton send either one [N, F] tensor
or one [N] tensor per feature (named by feature). Validation, metrics and
drift are the same as for /v1/predict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from modelops_service import __version__
from modelops_service.artifact import Prediction
from modelops_service.card import ModelCard
from modelops_service.routes.common import (
    JSON,
    ServiceDep,
    error_responses,
    input_error_response,
    json_response,
    not_ready_response,
    prediction_failed_response,
    read_json,
)
from modelops_service.service import ModelService, PredictionError
from modelops_service.validation import InputError, batch_from_v2

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


async def _infer(request: Request, svc: ModelService) -> Response:
    if not svc.ready:
        return not_ready_response(svc)
    try:
        payload = await read_json(request, svc.settings.max_body_bytes)
        parsed = batch_from_v2(payload, svc.schema, svc.output_names)
    except InputError as error:
        return input_error_response(request, svc, error)
    request.state.batch_size = len(parsed.batch)
    if svc.settings.log_features:
        request.state.features = parsed.batch.features
    try:
        prediction = await svc.predict(parsed.batch)
    except PredictionError as error:
        return prediction_failed_response(request, svc, error)
    body: dict[str, Any] = {
        "model_name": svc.name,
        "model_version": svc.version,
        "outputs": _outputs(prediction, parsed.outputs),
    }
    if parsed.id is not None:
        body["id"] = parsed.id
    if parsed.batch.warnings:
        body["parameters"] = {"warnings": [w.as_dict() for w in parsed.batch.warnings]}
    return json_response(body)


def build_router(card: ModelCard) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])
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
    infer_extra = {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": infer_schema(card), "example": example}},
        }
    }

    @router.get("", summary="Server metadata")
    async def server_metadata() -> Response:
        return json_response({"name": SERVER_NAME, "version": __version__, "extensions": []})

    @router.get("/health/live", summary="Server liveness")
    async def live() -> Response:
        return json_response({"live": True})

    @router.get("/health/ready", summary="Server readiness")
    async def ready(svc: ServiceDep) -> Response:
        return json_response({"ready": svc.ready}, 200 if svc.ready else 503)

    not_found = {404: {"description": "No such model or version"}}
    infer_responses = {
        200: {
            "description": "Output tensors (row-major, flat data)",
            "content": {JSON: {"schema": infer_response_schema(card)}},
        },
        **not_found,
        **error_responses(),
    }

    @router.get("/models/{model_name}", summary="Model metadata", responses=not_found)
    async def model_metadata(svc: ServiceDep, model_name: str) -> Response:
        return _unknown(svc, model_name, None) or json_response(metadata(svc))

    @router.get(
        "/models/{model_name}/versions/{model_version}",
        summary="Model metadata (of one version)",
        responses=not_found,
    )
    async def model_version_metadata(
        svc: ServiceDep, model_name: str, model_version: str
    ) -> Response:
        return _unknown(svc, model_name, model_version) or json_response(metadata(svc))

    @router.get("/models/{model_name}/ready", summary="Model readiness", responses=not_found)
    async def model_ready(svc: ServiceDep, model_name: str) -> Response:
        return _unknown(svc, model_name, None) or _ready(svc)

    @router.get(
        "/models/{model_name}/versions/{model_version}/ready",
        summary="Model readiness (of one version)",
        responses=not_found,
    )
    async def model_version_ready(svc: ServiceDep, model_name: str, model_version: str) -> Response:
        return _unknown(svc, model_name, model_version) or _ready(svc)

    @router.post(
        "/models/{model_name}/infer",
        summary=f"Infer with {card.name} v{card.version}",
        openapi_extra=infer_extra,
        responses=infer_responses,
    )
    async def model_infer(request: Request, svc: ServiceDep, model_name: str) -> Response:
        return _unknown(svc, model_name, None) or await _infer(request, svc)

    @router.post(
        "/models/{model_name}/versions/{model_version}/infer",
        summary=f"Infer with {card.name} v{card.version} (naming the version)",
        openapi_extra=infer_extra,
        responses=infer_responses,
    )
    async def model_version_infer(
        request: Request, svc: ServiceDep, model_name: str, model_version: str
    ) -> Response:
        return _unknown(svc, model_name, model_version) or await _infer(request, svc)

    return router
