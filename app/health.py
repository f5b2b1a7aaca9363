"""Liveness and readiness: no API key, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.deps import Ctx
from app.errors import ServiceUnavailable
from app.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", operation_id="readyz", summary="Readiness: database reachable, migrations at head"
)
async def readyz(ctx: Ctx) -> JSONResponse:
    try:
        revision = await current_revision(ctx.engine)
    except (SQLAlchemyError, OSError):
        raise ServiceUnavailable(
            "the database is not reachable", headers={"Retry-After": "5"}
        ) from None
    head = head_revision()
    if revision != head:
        raise ServiceUnavailable(
            f"the database schema is at {revision}, not at {head}: run stt-gateway migrate",
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ready", "database": "ok", "migration": revision})
