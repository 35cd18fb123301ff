"""Liveness, readiness, the model card and the drift report."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from modelops_service.routes.common import ServiceDep, json_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves HTTP")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: the model is loaded and a warm-up prediction ran",
    responses={503: {"description": "Not ready yet"}},
)
async def readyz(svc: ServiceDep) -> Response:
    body = {"model": svc.name, "version": svc.version}
    if svc.ready:
        return json_response({"status": "ready", **body})
    return json_response({"status": "not ready", **body}, 503)


@router.get("/v1/model", tags=["model"], summary="The model card of the loaded model")
async def model_card(svc: ServiceDep) -> Response:
    s = svc.settings
    return json_response(
        {
            **svc.card.model_dump(mode="json"),
            "ready": svc.ready,
            "serving": {
                "range_policy": s.range_policy,
                "range_tolerance": s.range_tolerance,
                "max_instances": s.max_instances,
                "max_body_bytes": s.max_body_bytes,
                "drift_window": s.drift_window,
                "drift_min_rows": s.drift_min_rows,
                "outputs": list(svc.output_names),
            },
        }
    )


@router.get(
    "/v1/drift",
    tags=["model"],
    summary="PSI and KS per feature and for the predictions over the sliding window",
)
def drift_report(svc: ServiceDep) -> Response:
    # a plain def: FastAPI runs it in a worker thread, off the event loop
    report = svc.drift.report()
    return json_response({"model": svc.name, "version": svc.version, **report.as_dict()})
