"""The FastAPI application: ``create_app(settings)``.

Building the app reads only the model card (JSON, for metric labels, the
validation schema and the OpenAPI request schema). The model itself is
verified and unpickled in the lifespan; the warm-up prediction runs right
after startup, and /readyz turns 200 when it has.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import prometheus_client
from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from modelops_service import __version__
from modelops_service.card import read_card
from modelops_service.middleware import HttpLayer
from modelops_service.routes import health, metrics, v1, v2
from modelops_service.service import ModelService
from modelops_service.settings import Settings
from modelops_service.telemetry import HttpMetrics
from modelops_service.workers import mark_dead_workers, multiproc_dir, use_fixed_pid_values


def _registry(shared_dir: Path | None) -> CollectorRegistry:
    """The registry /metrics exposes; with several workers, it reads every worker's
    files. The process_*, python_* and gc series then describe the worker that answers
    the scrape (prometheus_client has no multiprocess form of them)."""
    # _created series add nothing the dashboards use and double the counter series.
    prometheus_client.disable_created_metrics()
    registry = CollectorRegistry()
    if shared_dir is not None:
        MultiProcessCollector(registry, path=str(shared_dir))
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
        # FastAPI's own stack minus ExceptionTelemetryMiddleware and Starlette's error
        # middleware (the HttpLayer create_app adds, outermost, answers the 500s): the
        # user middleware, the exception handlers, the exit stack FastAPI's request
        # handlers close uploaded files with, the router.
        app: ASGIApp = AsyncExitStackMiddleware(self.router)
        app = ExceptionMiddleware(app, handlers=self.exception_handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    card = read_card(settings.model_dir)
    shared_dir = multiproc_dir()
    if shared_dir is not None:
        use_fixed_pid_values()
        mark_dead_workers(shared_dir)
    registry = _registry(shared_dir)
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

    app.add_middleware(
        HttpLayer,
        routes=app.routes,
        metrics=HttpMetrics(service.metrics_registry, card.name, card.version),
        model=card.name,
        version=card.version,
        log_features=settings.log_features,
        max_connection_age=settings.max_connection_age_seconds,
    )
    return app
