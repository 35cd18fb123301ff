"""The FastAPI application: ``create_app(settings)``.

Building the app reads only the model card (JSON, for metric labels, the
validation schema and the OpenAPI request schema). The model itself is
verified and unpickled in the lifespan; the warm-up prediction runs right
after startup, and /readyz turns 200 when it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import prometheus_client
from fastapi import FastAPI, Request
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelops_service import __version__
from modelops_service.card import read_card
from modelops_service.connections import ConnectionAge
from modelops_service.middleware import RequestTelemetry
from modelops_service.routes import health, metrics, v1, v2
from modelops_service.routes.common import PredictRoute, PredictRoutes, json_response
from modelops_service.service import ModelService
from modelops_service.settings import Settings
from modelops_service.telemetry import HttpMetrics
from modelops_service.workers import (
    PodProcessCollector,
    mark_dead_workers,
    multiproc_dir,
    use_fixed_pid_values,
)

log = logging.getLogger("modelops_service")


def _registry(shared_dir: Path | None, workers: int) -> CollectorRegistry:
    """The registry /metrics exposes; with several workers, it reads every worker's
    files, and process_* (CPU, memory) sums the workers and their supervisor. The
    python_* and gc series describe the worker that answers the scrape (prometheus_client
    has no multiprocess form of them)."""
    # _created series add nothing the dashboards use and double the counter series.
    prometheus_client.disable_created_metrics()
    registry = CollectorRegistry()
    if shared_dir is not None:
        MultiProcessCollector(registry, path=str(shared_dir))
    if shared_dir is not None and workers > 1:
        # a worker's parent is uvicorn's supervisor, the entry point
        registry.register(PodProcessCollector(shared_dir, supervisor=os.getppid()))
    else:
        ProcessCollector(registry=registry)  # process_resident_memory_bytes and friends
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class ServiceApp(FastAPI):
    """FastAPI with its OpenTelemetry bridge switched off, the service exports Prometheus
    metrics of its own: the bridge asked the global providers on every request, and its
    exception observer was one more layer around every request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(telemetry={"tracing": False, "metrics": False, "logs": False}, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An HTTP request goes straight to the middleware stack: FastAPI's __call__ would
        # ask its (switched off) telemetry whether it is on, then call Starlette's, two
        # more frames every await of the request resumes through.
        if scope["type"] == "http" and self.middleware_stack is not None:
            if self.root_path:
                scope["root_path"] = self.root_path
            scope["app"] = self
            await self.middleware_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        # FastAPI's own stack minus ExceptionTelemetryMiddleware: the 500 handler
        # outermost, then the user middleware, the prediction routes, the exception
        # handlers, the exit stack FastAPI's request handlers close uploaded files
        # with, the router.
        handlers = {k: h for k, h in self.exception_handlers.items() if k not in (500, Exception)}
        error_handler = self.exception_handlers.get(Exception, self.exception_handlers.get(500))
        app: ASGIApp = AsyncExitStackMiddleware(self.router)
        app = ExceptionMiddleware(app, handlers=handlers, debug=self.debug)
        app = PredictRoutes(app, [r for r in self.routes if isinstance(r, PredictRoute)])
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    card = read_card(settings.model_dir)
    shared_dir = multiproc_dir()
    if shared_dir is not None:
        use_fixed_pid_values()
        mark_dead_workers(shared_dir)
    registry = _registry(shared_dir, settings.workers)
    service = ModelService(settings, card, registry, shared_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.load()  # ArtifactRejectedError here fails startup: nothing is ever served
        await service.prepare()
        warm_up = asyncio.create_task(service.warm_up())
        try:
            yield
        finally:
            warm_up.cancel()
            await service.aclose()

    # One flat route table, the predict routes first: FastAPI's include_router would
    # nest each router behind a matcher of its own, on every request.
    routers = [
        v1.build_router(card, service.schema),
        v2.build_infer_router(card, service.schema, service.output_names),
        v2.router,
        health.router,
        metrics.router,
    ]
    app = ServiceApp(
        title=f"modelops model service: {card.name} v{card.version}",
        version=__version__,
        description=f"{card.description}\n\nTask: {card.task}. Features: "
        + ", ".join(card.feature_names)
        + ".",
        lifespan=lifespan,
        routes=[route for router in routers for route in router.routes],
    )
    app.state.service = service

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error(
            "unhandled error",
            exc_info=exc,
            extra={"fields": {"request_id": request.state.request_id, "path": request.url.path}},
        )
        return json_response(
            {"error": "internal error", "request_id": request.state.request_id}, 500
        )

    app.add_middleware(ConnectionAge, max_age=settings.max_connection_age_seconds)
    app.add_middleware(  # added last: outermost, its latency covers all the rest
        RequestTelemetry,
        routes=app.routes,
        metrics=HttpMetrics(service.metrics_registry, card.name, card.version),
        model=card.name,
        version=card.version,
        log_features=settings.log_features,
    )
    return app
