"""Retention: the sweeper that deletes old audio, old jobs and expired idempotency keys.

Periods count from a job's ``completed_at``, which is set when it becomes
terminal (completed, failed or canceled); a job still in flight is never touched.

- ``AUDIO_RETENTION_HOURS`` after that, the job's audio blob is deleted and its
  ``audio_key`` cleared; the job, its ``source`` description and its results stay.
- ``RESULT_RETENTION_DAYS`` after it (0: never), the whole job goes, as with
  ``DELETE /jobs/{id}``: its files, then its row (results, tasks, deliveries and
  the rest cascade).
- Idempotency keys are deleted once older than ``IDEMPOTENCY_TTL`` (24 hours).

Work goes in batches of ``BATCH`` rows, one short transaction each. Files are
deleted before the rows that point to them: a crash in between leaves a row
pointing at a missing file, which the next sweep finishes, and every reader of
a blob already answers a missing one with a 404. Deleting a missing file is a
no-op, so several workers sweeping at the same moment only repeat each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Result, delete, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from app.context import GatewayContext
from app.db import utcnow
from app.jobs.idempotency import IDEMPOTENCY_TTL
from app.jobs.schemas import TERMINAL_STATUSES
from app.models import IdempotencyKey, Job
from app.storage import LocalStorage, job_prefix

log = logging.getLogger(__name__)

BATCH = 500  # rows per statement: bounded transactions, however much is due

_TERMINAL = sorted(status.value for status in TERMINAL_STATUSES)


@dataclass(frozen=True)
class SweepReport:
    audio_deleted: int = 0  # jobs whose audio was deleted
    jobs_deleted: int = 0
    idempotency_keys_deleted: int = 0

    def __bool__(self) -> bool:
        return bool(self.audio_deleted or self.jobs_deleted or self.idempotency_keys_deleted)

    def __str__(self) -> str:
        return (
            f"audio of {self.audio_deleted} job(s), {self.jobs_deleted} job(s), "
            f"{self.idempotency_keys_deleted} idempotency key(s)"
        )


async def sweep_once(ctx: GatewayContext, now: datetime) -> SweepReport:
    """Delete everything past its retention at ``now``; the counts of what went."""
    settings = ctx.settings
    jobs_deleted = 0
    if settings.result_retention_days > 0:
        # First, so that no audio is swept one by one from jobs about to go whole.
        cutoff = now - timedelta(days=settings.result_retention_days)
        jobs_deleted = await _delete_expired_jobs(ctx, cutoff)
    audio_deleted = await _delete_old_audio(
        ctx, now - timedelta(hours=settings.audio_retention_hours)
    )
    keys_deleted = await _delete_expired_idempotency_keys(ctx, now - IDEMPOTENCY_TTL)
    return SweepReport(audio_deleted, jobs_deleted, keys_deleted)


def _terminal_before(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    # completed_at is set exactly when a job becomes terminal; the status test is a
    # second guard, so that a job in flight can never lose its audio.
    return (Job.completed_at < cutoff, Job.status.in_(_TERMINAL))


async def _in_batches(
    ctx: GatewayContext, batch: Callable[[AsyncSession], Awaitable[tuple[int, int]]]
) -> int:
    """Run ``batch`` (a session each) until it finds fewer than BATCH rows due;
    ``batch`` answers (rows found, rows changed). The rows changed in all."""
    changed = 0
    while True:
        async with ctx.sessions() as session:
            found, done = await batch(session)
        changed += done
        if found < BATCH:
            return changed


def _rowcount(result: Result[Any]) -> int:
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


async def _delete_expired_jobs(ctx: GatewayContext, cutoff: datetime) -> int:
    async def batch(session: AsyncSession) -> tuple[int, int]:
        ids = list(
            await session.scalars(
                select(Job.id)
                .where(*_terminal_before(cutoff))
                .order_by(Job.completed_at)
                .limit(BATCH)
            )
        )
        await session.commit()  # no transaction open while the files go
        if not ids:
            return 0, 0
        await asyncio.to_thread(_delete_job_files, ctx.storage, ids)
        result = await session.execute(
            delete(Job).where(Job.id.in_(ids)).execution_options(synchronize_session=False)
        )
        await session.commit()
        return len(ids), _rowcount(result)

    return await _in_batches(ctx, batch)


async def _delete_old_audio(ctx: GatewayContext, cutoff: datetime) -> int:
    async def batch(session: AsyncSession) -> tuple[int, int]:
        rows = (
            await session.execute(
                select(Job.id, Job.audio_key)
                .where(Job.audio_key.is_not(None), *_terminal_before(cutoff))
                .order_by(Job.completed_at)
                .limit(BATCH)
            )
        ).all()
        await session.commit()
        if not rows:
            return 0, 0
        await asyncio.to_thread(_delete_blobs, ctx.storage, [row.audio_key for row in rows])
        result = await session.execute(
            update(Job)
            .where(Job.id.in_([row.id for row in rows]), Job.audio_key.is_not(None))
            # Nothing the client sees has changed: keep updated_at as it was.
            .values(audio_key=None, updated_at=Job.updated_at)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return len(rows), _rowcount(result)

    return await _in_batches(ctx, batch)


async def _delete_expired_idempotency_keys(ctx: GatewayContext, cutoff: datetime) -> int:
    expired = (
        select(IdempotencyKey.client_id, IdempotencyKey.key)
        .where(IdempotencyKey.created_at < cutoff)
        .limit(BATCH)
    )

    async def batch(session: AsyncSession) -> tuple[int, int]:
        result = await session.execute(
            delete(IdempotencyKey)
            .where(
                tuple_(IdempotencyKey.client_id, IdempotencyKey.key).in_(expired),
                # Checked again on the row itself: a request may have just taken
                # the expired key over (a fresh created_at), and keeps it.
                IdempotencyKey.created_at < cutoff,
            )
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        deleted = _rowcount(result)
        return deleted, deleted

    return await _in_batches(ctx, batch)


def _delete_job_files(storage: LocalStorage, job_ids: Sequence[str]) -> None:
    for job_id in job_ids:
        storage.delete_prefix(job_prefix(job_id))  # what DELETE /jobs/{id} does


def _delete_blobs(storage: LocalStorage, keys: Sequence[str]) -> None:
    for key in keys:
        try:
            storage.path(key).unlink(missing_ok=True)
        except ValueError:
            # Not a key the gateway made: there is no file of ours to delete.
            log.warning("audio key %r is not a valid blob key; clearing it", key[:100])


async def run_sweeper(ctx: GatewayContext) -> None:
    """Sweep now and every ``RETENTION_SWEEP_SECONDS``, until cancelled (with the worker)."""
    interval = ctx.settings.retention_sweep_seconds
    while True:
        try:
            report = await sweep_once(ctx, utcnow())
        except (SQLAlchemyError, OSError) as exc:
            log.warning(
                "retention sweep failed (%s); next try in %g s", type(exc).__name__, interval
            )
        except Exception:
            # A bug must not stop retention for the life of the process: log it, go on.
            log.exception("retention sweep failed; next try in %g s", interval)
        else:
            if report:
                log.info("retention sweep deleted the %s", report)
        await asyncio.sleep(interval)
