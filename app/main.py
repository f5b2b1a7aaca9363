"""create_app(): the API, its error handling, and the process's background work."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app import health
from app.callbacks.endpoints import router as callbacks_router
from app.config import Settings, get_settings
from app.context import GatewayContext
from app.errors import install_error_handlers
from app.heap import freeze_startup_objects
from app.jobs.endpoints import router as jobs_router
from app.jobs.stream import router as job_events_router
from app.logs import RequestId
from app.metrics.endpoint import router as metrics_router
from app.metrics.middleware import HttpMetrics
from app.middleware import RefuseBadUrls
from app.notify.endpoints import router as deliveries_router
from app.notify.webhook_doc import document_webhooks
from app.openai_compat.endpoints import router as openai_router
from app.openapi_doc import build_openapi
from app.providers.endpoints import router as providers_router
from app.runtime import background

DESCRIPTION = """One asynchronous `/jobs` API in front of many speech-to-text vendors.

Authenticate with `Authorization: Bearer <api_key>` (create keys with
`stt-gateway keys create --name NAME`). Errors are `application/problem+json`.
"""


def create_app(settings: Settings | None = None, *, freeze_heap: bool = False) -> FastAPI:
    """``freeze_heap``: for a process of its own (``stt-gateway serve``), keep what
    start-up made out of later garbage collections (app/heap.py)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = GatewayContext.build(settings)
        app.state.ctx = ctx
        try:
            async with background(ctx, run_worker=settings.run_worker):
                if freeze_heap:
                    freeze_startup_objects()
                yield
        finally:
            await ctx.aclose()

    # No redirect from /jobs/ to /jobs: its absolute http:// Location is wrong behind
    # a TLS proxy, and a client is better told the path is not one of ours.
    app = FastAPI(
        title="stt-gateway",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.add_middleware(RefuseBadUrls)
    app.add_middleware(RequestId)  # X-Request-ID in, out, and on every log line
    app.add_middleware(HttpMetrics)  # added last, so outermost: counts those refusals too
    app.include_router(jobs_router)
    app.include_router(job_events_router)
    app.include_router(providers_router)
    app.include_router(callbacks_router)
    app.include_router(deliveries_router)
    app.include_router(openai_router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    document_webhooks(app)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
