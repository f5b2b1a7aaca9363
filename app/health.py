"""Liveness and readiness: no API key, for load balancers and orchestrators."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from app.deps import Ctx
from app.errors import ServiceUnavailable, problem_response_doc
from app.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"
    migration: str | None  # the Alembic revision the database is at (the head)


_NOT_READY = problem_response_doc(
    "The database is not reachable, or its schema is not at the head revision",
    headers={"Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}},
)


@router.get("/healthz", operation_id="healthz", summary="Liveness", response_model=Liveness)
async def healthz() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: database reachable, migrations at head",
    response_model=Readiness,
    responses={503: _NOT_READY},
)
async def readyz(ctx: Ctx) -> Readiness:
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
    return Readiness(migration=revision)
