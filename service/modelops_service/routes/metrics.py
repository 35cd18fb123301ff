"""GET /metrics: the Prometheus exposition of the app's registry."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from modelops_service.routes.common import ServiceDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
def metrics(svc: ServiceDep) -> Response:
    """Endpoint that serves Prometheus metrics."""
    # A plain def: FastAPI runs it in a worker thread, and drift scores are computed on scrape.
    return Response(generate_latest(svc.registry), media_type=CONTENT_TYPE_LATEST)
