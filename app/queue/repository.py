"""Every query on the task queue.

A task is due when ``run_at <= now``. Claiming moves ``run_at`` to the end of
the lease and stamps a fresh ``claim_token``; the claimant finishes or
reschedules the task only while the token is still its own. A worker that
dies simply lets its lease run out, and the task is due again (no reaper).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Delete,
    Insert,
    Integer,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import ReturningUpdate

from app.db import utcnow
from app.events import TASKS_CHANNEL, announce, notify_column, notifying
from app.logs import request_id
from app.models import Task, table_of


@dataclass(frozen=True)
class ClaimedTask:
    id: int
    kind: str
    job_id: str
    attempts: int  # including this one
    claim_token: str
    ref: str | None = None
    request_id: str | None = None  # of the request that caused it, for the logs
    # What the process that claimed the task hands its handler in memory (a
    # request running its own job's submit: app.jobs.held); never stored.
    held: object | None = None


async def enqueue(
    session: AsyncSession,
    kind: str,
    job_id: str,
    *,
    run_at: datetime | None = None,
    ref: str | None = None,
) -> None:
    """Add a task in the caller's transaction; workers are woken when it commits."""
    run_at = run_at or utcnow()
    values = {
        "kind": kind,
        "job_id": job_id,
        "run_at": run_at,
        "ref": ref,
        "request_id": request_id.get(),
    }
    await session.execute(_insert_task(), values)
    await _announce_task(session, run_at, by_trigger=True)


def new_claim_token() -> str:
    """What marks a claim as its claimant's: a worker's, or a request's that runs
    its own task (the OpenAI route)."""
    return secrets.token_hex(16)


async def claim(session: AsyncSession, limit: int, lease: timedelta) -> list[ClaimedTask]:
    """Take up to ``limit`` due tasks. One statement; SKIP LOCKED on PostgreSQL
    lets concurrent claimers pass each other without waiting or sharing."""
    now = utcnow()
    token = new_claim_token()
    rows = await session.execute(
        _claim_due(), {"now": now, "limit": limit, "until": now + lease, "token": token}
    )
    return [
        ClaimedTask(r.id, r.kind, r.job_id, r.attempts, token, r.ref, r.request_id) for r in rows
    ]


def _owned(task: ClaimedTask) -> ColumnElement[bool]:
    return (Task.id == task.id) & (Task.claim_token == task.claim_token)


async def finish(session: AsyncSession, task: ClaimedTask) -> bool:
    """Remove a done task; False if its lease was lost to another worker."""
    result = await session.execute(finish_statement(), finish_params(task))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# The three statements every task goes through, built once with bound parameters
# and on the table rather than the mapped class: building a statement, and the
# ORM's unit of work around it, cost more than running a cached one.


def _tasks() -> Table:
    return table_of(Task)


@functools.cache
def _insert_task() -> Insert:
    columns = ("kind", "job_id", "run_at", "ref", "request_id")
    return insert(_tasks()).values({name: bindparam(name) for name in columns})


@functools.cache
def _claim_due() -> ReturningUpdate[int, str, str, int, str | None, str | None]:
    tasks = _tasks().c
    due = (
        select(tasks.id)
        .where(tasks.run_at <= bindparam("now"))
        .order_by(tasks.run_at)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(_tasks())
        .where(tasks.id.in_(due))
        .values(
            run_at=bindparam("until"), attempts=tasks.attempts + 1, claim_token=bindparam("token")
        )
        .returning(tasks.id, tasks.kind, tasks.job_id, tasks.attempts, tasks.ref, tasks.request_id)
    )


def finish_params(task: ClaimedTask) -> dict[str, object]:
    """The bound parameters of ``finish_statement``."""
    return {"task_id": task.id, "task_token": task.claim_token}


@functools.cache
def finish_statement() -> Delete:
    tasks = _tasks().c
    return delete(_tasks()).where(
        tasks.id == bindparam("task_id"), tasks.claim_token == bindparam("task_token")
    )


async def reschedule(
    session: AsyncSession,
    task: ClaimedTask,
    run_at: datetime,
    *,
    error: str | None = None,
    reset_attempts: bool = False,
) -> bool:
    values: dict[str, object] = {"run_at": run_at, "claim_token": None, "last_error": error}
    if reset_attempts:
        values["attempts"] = 0
    result = await session.execute(
        update(Task)
        .where(_owned(task))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await _announce_task(session, run_at)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def defer(session: AsyncSession, task: ClaimedTask, run_at: datetime) -> bool:
    """Put a task back untried (nothing was attempted): its claim is not counted."""
    result = await session.execute(
        update(Task)
        .where(_owned(task))
        .values(run_at=run_at, claim_token=None, attempts=Task.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    await _announce_task(session, run_at)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _announce_task(
    session: AsyncSession, run_at: datetime, *, by_trigger: bool = False
) -> None:
    """A task due now wakes the workers; one due later only tells this process's
    worker when to wake (``EventHub.seconds_to_next_task``): waking every worker
    now would only have them claim nothing."""
    if run_at <= utcnow():
        await announce(session, TASKS_CHANNEL, by_trigger=by_trigger)
    else:
        await announce(session, TASKS_CHANNEL, run_at.isoformat(), by_trigger=True)


async def extend_lease(session: AsyncSession, task: ClaimedTask, lease: timedelta) -> bool:
    result = await session.execute(
        update(Task)
        .where(_owned(task))
        .values(run_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, tasks: Sequence[ClaimedTask]) -> None:
    """Hand tasks back at shutdown so another worker need not wait for the lease."""
    for task in tasks:
        await reschedule(session, task, utcnow(), error="released at shutdown")


async def make_due_now(session: AsyncSession, job_id: str, kind: str) -> bool:
    """Bring a job's waiting task forward. One being run is left alone, and so
    is one backing off after an error (a 429's Retry-After, a 5xx): a vendor's
    callback must not make us call the vendor sooner than it asked."""
    result = await session.execute(
        update(Task)
        .where(
            Task.job_id == job_id,
            Task.kind == kind,
            Task.claim_token.is_(None),
            Task.last_error.is_(None),
        )
        .values(run_at=utcnow())
        # The statement sends the NOTIFY itself: no round trip of its own.
        .returning(Task.id, *notify_column(notifying(session, TASKS_CHANNEL), literal("")))
        .execution_options(synchronize_session=False)
    )
    if result.first() is not None:
        await announce(session, TASKS_CHANNEL, by_trigger=True)
        return True
    return False


async def cancel_for_job(session: AsyncSession, job_id: str, kinds: Sequence[str]) -> None:
    await session.execute(delete(Task).where(Task.job_id == job_id, Task.kind.in_(kinds)))


async def queue_stats(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many tasks are due now, and the run_at of the oldest of them."""
    now = utcnow()
    row = (
        await session.execute(select(func.count(), func.min(Task.run_at)).where(Task.run_at <= now))
    ).one()
    return int(row[0]), row[1]
