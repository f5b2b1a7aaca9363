"""``Idempotency-Key`` on ``POST /jobs``, with Stripe's semantics.

The first request with a key claims it (a row with ``job_id`` NULL) before its
body is read, and binds it to the job in the transaction that stores the job.
A later request with the same key stores nothing: its body is read only for its
fingerprint, then it is answered with the bound job (a replay), a 422 when the
fingerprint differs, or a 409 while the first request is still running. A
request that fails frees its key, so a corrected retry may use it again.

While the first request runs, its row holds a random claim token in
``request_hash`` (the fingerprint replaces it once the job is stored), so a
claim that went stale and was taken over is never finished or freed by its
former owner. The owner refreshes ``created_at`` while it reads a long upload;
a claim not refreshed for ``ABANDONED_AFTER`` belongs to a request that died
with its process and may be taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, delete, or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import GatewayContext
from app.db import on_postgres, utcnow
from app.errors import Conflict, InvalidRequest
from app.jobs import repository
from app.jobs.schemas import JobFields
from app.models import IdempotencyKey, Job

if TYPE_CHECKING:
    from app.jobs.intake import StoredUpload

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
# A job answers replays of its key this long (the retention sweeper deletes older rows).
IDEMPOTENCY_TTL = timedelta(hours=24)
# An unfinished claim not refreshed this long was left by a request that died with its process.
ABANDONED_AFTER = timedelta(minutes=2)
_KEEPALIVE_SECONDS = 30.0
# How long a repeated request waits for the first one to finish before it answers 409.
_REPLAY_WAIT_SECONDS = 10.0
_REPLAY_POLL_SECONDS = 0.1

_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass(frozen=True)
class Claim:
    """A key this request holds until its job is stored (or it fails)."""

    client_id: str
    key: str
    token: str  # in request_hash while the claim is unfinished


def checked_key(value: str | None) -> str | None:
    """The header's value, or a 422 naming the header."""
    if value is None or _VALID_KEY.fullmatch(value):
        return value
    message = "must be 1 to 255 printable ASCII characters"
    raise InvalidRequest(
        f"the {HEADER} header {message}",
        errors=[{"field": HEADER, "message": message, "type": "header"}],
    )


def document_key(schema: dict[str, Any]) -> None:
    """Put the key's rules in its OpenAPI schema (``checked_key`` enforces them, with a
    clearer message than FastAPI's own validation would give)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch.update(minLength=1, maxLength=255, pattern="^[ -~]+$")


def fingerprint(fields: JobFields, upload: StoredUpload | None, source_url: str | None) -> str:
    """SHA-256 of what the request asks for, whatever its encoding (form or JSON,
    multipart boundary, key order); the file counts by its SHA-256 and name."""
    content: dict[str, Any] = fields.model_dump(mode="json", include=set(JobFields.model_fields))
    content["source_url"] = source_url
    content["file"] = (
        {"sha256": upload.sha256, "filename": upload.part.filename} if upload else None
    )
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _row(client_id: str, key: str) -> ColumnElement[bool]:
    return and_(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)


def _unfinished(claim: Claim) -> ColumnElement[bool]:
    return and_(
        _row(claim.client_id, claim.key),
        IdempotencyKey.request_hash == claim.token,
        IdempotencyKey.job_id.is_(None),
    )


async def claim(ctx: GatewayContext, client_id: str, key: str) -> Claim | None:
    """Take the key for this request, or None when it is in use (then replay)."""
    new = Claim(client_id, key, secrets.token_hex(32))
    now = utcnow()
    values = {"request_hash": new.token, "job_id": None, "created_at": now}
    async with ctx.autocommit_sessions() as session:
        # An expired row, or an abandoned claim, counts as absent: take it over.
        # Concurrent takers are serialised by the row lock; the WHERE is
        # re-checked after it, so only one of them matches.
        taken = await session.execute(
            update(IdempotencyKey)
            .where(
                _row(client_id, key),
                or_(
                    IdempotencyKey.created_at < now - IDEMPOTENCY_TTL,
                    and_(
                        IdempotencyKey.job_id.is_(None),
                        IdempotencyKey.created_at < now - ABANDONED_AFTER,
                    ),
                ),
            )
            .values(values)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount:  # type: ignore[attr-defined]
            return new
        dialect_insert = postgresql_insert if on_postgres(session) else sqlite_insert
        inserted = await session.execute(
            dialect_insert(IdempotencyKey)
            .values(client_id=client_id, key=key, **values)
            .on_conflict_do_nothing()
        )
        return new if inserted.rowcount else None  # type: ignore[attr-defined]


async def bind(session: AsyncSession, claim: Claim, request_hash: str, job_id: str) -> None:
    """Finish the claim with its job, in the transaction that stores the job."""
    bound = await session.execute(
        update(IdempotencyKey)
        .where(_unfinished(claim))
        .values(request_hash=request_hash, job_id=job_id, created_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not bound.rowcount:  # type: ignore[attr-defined]
        # Unrefreshed for minutes (the database was away), then taken over by a retry.
        raise _in_progress()


@contextlib.asynccontextmanager
async def held(ctx: GatewayContext, claim: Claim) -> AsyncIterator[None]:
    """Around the claiming request: keeps the claim fresh, and frees it if the request fails."""
    keeper = asyncio.create_task(_keep_fresh(ctx, claim))
    try:
        yield
    except BaseException:
        keeper.cancel()
        await _release(ctx, claim)
        raise
    finally:
        keeper.cancel()


async def _keep_fresh(ctx: GatewayContext, claim: Claim) -> None:
    while True:
        await asyncio.sleep(_KEEPALIVE_SECONDS)
        try:
            async with ctx.autocommit_sessions() as session:
                await session.execute(
                    update(IdempotencyKey)
                    .where(_unfinished(claim))
                    .values(created_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        except Exception as exc:  # the next beat may succeed; bind() notices a lost claim
            log.warning("could not refresh an idempotency key: %s", type(exc).__name__)


async def _release(ctx: GatewayContext, claim: Claim) -> None:
    # Stripe keeps no result of a failed request: a corrected retry may use the key.
    try:
        async with ctx.autocommit_sessions() as session:
            await session.execute(delete(IdempotencyKey).where(_unfinished(claim)))
    except Exception as exc:  # the claim goes stale and is taken over later
        log.warning("could not free an idempotency key: %s", type(exc).__name__)


async def replay(ctx: GatewayContext, client_id: str, key: str, request_hash: str) -> Job:
    """The job the key's first request made, waiting briefly while it is being made."""
    deadline = time.monotonic() + _REPLAY_WAIT_SECONDS
    while True:
        async with ctx.autocommit_sessions() as session:
            row = await session.get(IdempotencyKey, (client_id, key))
            if row is None:  # the first request failed (or its job was just deleted)
                raise _in_progress()
            if row.job_id is not None:
                if row.request_hash != request_hash:
                    raise InvalidRequest(
                        f"this {HEADER} was already used with a different request; "
                        "use a new key for a new job",
                        errors=[
                            {
                                "field": HEADER,
                                "message": "used with another request",
                                "type": "idempotency_key_reused",
                            }
                        ],
                    )
                job = await repository.get_for_client(session, client_id, row.job_id)
                if job is not None:
                    return job
        if time.monotonic() >= deadline:
            raise _in_progress()
        await asyncio.sleep(_REPLAY_POLL_SECONDS)


def _in_progress() -> Conflict:
    return Conflict(
        f"a request with this {HEADER} is in progress; retry it shortly",
        headers={"Retry-After": "1"},
    )
