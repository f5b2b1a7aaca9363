"""Every query on jobs and their results."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    CTE,
    Insert,
    Select,
    Update,
    any_,
    bindparam,
    delete,
    insert,
    select,
    true,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from app.db import on_postgres, utcnow
from app.events import TASKS_CHANNEL, announce, notify_column, notifying
from app.ids import looks_like_id
from app.jobs import ledger
from app.logs import request_id
from app.models import Job, JobResult, ProviderSubmission, Task, table_of
from app.queue import repository as queue
from app.queue.repository import ClaimedTask


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    provider: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor("cursor is not one this API returned") from None
    if not looks_like_id(job_id) or created_at.tzinfo is None:
        raise InvalidCursor("cursor is not one this API returned")
    return created_at, job_id


async def get_for_client(session: AsyncSession, client_id: str, job_id: str) -> Job | None:
    # populate_existing: a status UPDATE made in this session must show on a re-read.
    query = select(Job).where(Job.id == job_id, Job.client_id == client_id)
    return await session.scalar(query.execution_options(populate_existing=True))


async def get(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id)


async def list_for_client(
    session: AsyncSession, client_id: str, filters: JobFilter, limit: int, cursor: str | None
) -> tuple[Sequence[Job], str | None]:
    """A page of a client's jobs, newest first, and the cursor of the next page."""
    query = select(Job).where(Job.client_id == client_id)
    if filters.status:
        query = query.where(Job.status == filters.status)
    if filters.provider:
        query = query.where(Job.provider == filters.provider)
    if filters.created_after:
        query = query.where(Job.created_at > filters.created_after)
    if filters.created_before:
        query = query.where(Job.created_at < filters.created_before)
    if cursor:
        created_at, job_id = decode_cursor(cursor)
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, job_id))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    jobs = list(await session.scalars(query))
    if len(jobs) > limit:
        return jobs[:limit], encode_cursor(jobs[limit - 1])
    return jobs, None


def _column_values(job: Job, prefix: str = "") -> dict[str, Any]:
    return {
        prefix + attr.columns[0].name: getattr(job, attr.key)
        for attr in sa_inspect(Job).column_attrs
    }


def _new_job_cte() -> CTE:
    jobs = table_of(Job)
    return (
        insert(jobs)
        .values({c.name: bindparam(f"job_{c.name}", type_=c.type) for c in jobs.columns})
        .returning(jobs.c.id)
        .cte("new_job")
    )


def _first_task_of(new_job: CTE) -> Insert:
    tasks = table_of(Task)
    return (
        insert(tasks)
        .from_select(
            ["job_id", *_TASK_COLUMNS],
            select(
                new_job.c.id,
                *(bindparam(f"task_{name}", type_=tasks.c[name].type) for name in _TASK_COLUMNS),
            ),
        )
        .returning(tasks.c.id)
    )


@functools.cache
def _insert_job_and_task() -> Insert:
    """One statement that writes a job and its first task (PostgreSQL).

    Built once with bound parameters: building SQLAlchemy statements costs more
    than executing a cached one, and this is the hottest write of the API.
    """
    return _first_task_of(_new_job_cte())


@functools.cache
def _insert_job_task_and_submission() -> Select[Any]:
    """As _insert_job_and_task, with the job's ledger row opened in the same statement."""
    submissions = table_of(ProviderSubmission)
    new_job = _new_job_cte()
    new_task = _first_task_of(new_job).cte("new_task")
    columns = ("provider", "started_at")
    new_submission = (
        insert(submissions)
        .from_select(
            ["job_id", *columns],
            select(new_job.c.id, *(bindparam(f"submission_{name}") for name in columns)),
        )
        .returning(submissions.c.id)
        .cte("new_submission")
    )
    # One row each: joined on nothing.
    return select(new_task.c.id, new_submission.c.id).select_from(
        new_task.join(new_submission, true())
    )


_TASK_COLUMNS = ("kind", "run_at", "created_at", "request_id", "attempts", "claim_token")


@dataclass(frozen=True)
class Lease:
    """The first task is taken by the request itself: leased until ``until``."""

    token: str
    until: datetime


def _first_task_values(job: Job, task_kind: str, lease: Lease | None) -> dict[str, Any]:
    return {
        "kind": task_kind,
        "run_at": lease.until if lease else job.created_at,
        "created_at": job.created_at,
        "request_id": request_id.get(),
        "attempts": 1 if lease else 0,
        "claim_token": lease.token if lease else None,
    }


async def insert_with_first_task(
    session: AsyncSession, job: Job, task_kind: str, lease: Lease | None = None
) -> int:
    """Write a new job and its first task atomically, in as few round trips as the
    database allows: one statement on PostgreSQL (a data-modifying CTE, so it
    needs no transaction around it), two in the caller's transaction on SQLite.
    With a ``lease`` the task is claimed already (no worker takes it before the
    lease runs out). Returns the task's id.
    """
    task = _first_task_values(job, task_kind, lease)
    if on_postgres(session):
        params = _column_values(job, "job_") | {f"task_{k}": v for k, v in task.items()}
        task_id = (await session.execute(_insert_job_and_task(), params)).scalar_one()
    else:
        task_id = await _insert_one_by_one(session, job, task)
    if lease is None:
        await announce(session, TASKS_CHANNEL, by_trigger=True)
    return int(task_id)


async def insert_submitting(
    session: AsyncSession, job: Job, task_kind: str, lease: Lease
) -> tuple[int, int]:
    """As insert_with_first_task with a lease, and the job's submit written down
    in the ledger as started (the caller submits at once). (task id, ledger row id)."""
    task = _first_task_values(job, task_kind, lease)
    started = {"provider": job.provider, "started_at": job.created_at}
    if on_postgres(session):
        params = (
            _column_values(job, "job_")
            | {f"task_{k}": v for k, v in task.items()}
            | {f"submission_{k}": v for k, v in started.items()}
        )
        row = (await session.execute(_insert_job_task_and_submission(), params)).one()
        return int(row[0]), int(row[1])
    task_id = await _insert_one_by_one(session, job, task)
    inserted = insert(table_of(ProviderSubmission)).values(job_id=job.id, **started)
    submission_id = (await session.execute(inserted.returning(ProviderSubmission.id))).scalar_one()
    return task_id, int(submission_id)


async def _insert_one_by_one(session: AsyncSession, job: Job, task: dict[str, Any]) -> int:
    """SQLite: the job, then its task (in the caller's transaction)."""
    await session.execute(insert(table_of(Job)).values(_column_values(job)))
    inserted = insert(table_of(Task)).values(job_id=job.id, **task).returning(Task.id)
    return int((await session.execute(inserted)).scalar_one())


async def set_status(
    session: AsyncSession,
    job_id: str,
    *,
    from_statuses: Sequence[str],
    values: dict[str, Any],
    provider: str | None = None,
    announce_on: str | None = None,
) -> bool:
    """Move a job on only if it is still in one of ``from_statuses`` (and, when
    given, still with ``provider``): a late or duplicated event can never move
    a job that has gone past them.

    ``announce_on``: the same statement NOTIFYs this channel with the job's id
    (PostgreSQL; see ``events.notify_column``)."""
    change = _move_job(
        tuple(values), provider is not None, notifying(session, announce_on), on_postgres(session)
    )
    moved = await session.execute(change, _change_params(job_id, from_statuses, values, provider))
    return moved.first() is not None


async def set_status_returning(
    session: AsyncSession,
    job_id: str,
    *,
    from_statuses: Sequence[str],
    values: dict[str, Any],
    announce_on: str | None = None,
) -> Job | None:
    """``set_status``, answering the job as the change left it (None: not moved),
    so what follows in the transaction need not read it again."""
    change = _as_job(
        _moved_job(tuple(values), notifying(session, announce_on), on_postgres(session))
    )
    moved = await session.execute(change, _change_params(job_id, from_statuses, values))
    return moved.scalar_one_or_none()


def _change_params(
    job_id: str, from_statuses: Sequence[str], values: dict[str, Any], provider: str | None = None
) -> dict[str, Any]:
    # Every name is prefixed: an UPDATE takes a parameter named as one of its
    # table's columns for a column to set (see ``complete``, which runs others beside).
    params = {
        "job": job_id,
        "job_from_statuses": list(from_statuses),
        **{f"job_{name}": value for name, value in values.items()},
    }
    if provider is not None:
        params["job_if_provider"] = provider
    return params


@functools.cache
def _change_job(columns: tuple[str, ...], by_provider: bool, postgres: bool) -> Update:
    """Set ``columns`` (bound as job_<column>) on the job ``job`` if it is in one of
    ``job_from_statuses`` (and, ``by_provider``, with the provider ``job_if_provider``).
    Built once per shape, with bound parameters: no statement to build per change.
    ``postgres``: the statuses go as one array; SQLite's expanding IN is rendered
    again at each execution."""
    jobs = table_of(Job)
    statuses: BindParameter[Any] = bindparam("job_from_statuses", expanding=not postgres)
    condition: ColumnElement[bool] = (
        jobs.c.status == any_(type_coerce(statuses, ARRAY(jobs.c.status.type)))
        if postgres
        else jobs.c.status.in_(statuses)
    )
    if by_provider:
        condition &= jobs.c.provider == bindparam("job_if_provider")
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("job"), condition)
        .values({name: bindparam(f"job_{name}", type_=jobs.c[name].type) for name in columns})
    )


@functools.cache
def _move_job(
    columns: tuple[str, ...], by_provider: bool, notify_on: str | None, postgres: bool
) -> ReturningUpdate[Any]:
    """The change, returning the job's id if it moved (and sending its NOTIFY)."""
    jobs = table_of(Job)
    return _change_job(columns, by_provider, postgres).returning(
        jobs.c.id, *notify_column(notify_on, jobs.c.id)
    )


@functools.cache
def _moved_job(
    columns: tuple[str, ...], notify_on: str | None, postgres: bool
) -> ReturningUpdate[Any]:
    """The change, returning the whole job (its NOTIFY after its columns)."""
    jobs = table_of(Job)
    change = _change_job(columns, by_provider=False, postgres=postgres)
    return change.returning(*jobs.c, *notify_column(notify_on, jobs.c.id))


async def save_result(session: AsyncSession, job_id: str, transcript: Any, raw: Any) -> None:
    await session.execute(
        _insert_result(), {"job_id": job_id, "transcript": transcript, "raw": raw}
    )


@functools.cache
def _insert_result() -> Insert:
    """Built once, on the table: no statement to build and no unit of work per job."""
    columns = ("job_id", "transcript", "raw")
    return insert(table_of(JobResult)).values({name: bindparam(name) for name in columns})


async def complete(
    session: AsyncSession,
    job_id: str,
    *,
    from_statuses: Sequence[str],
    values: dict[str, Any],
    transcript: Any,
    raw: Any,
    task: ClaimedTask,
    settlement: ledger.Settlement | None,
    announce_on: str,
) -> Job | None:
    """``set_status_returning`` for a job that ends with a result: also write the
    result (only if the job moved), end ``task`` and settle the submit's ledger
    row, whether the job moved or not. The job as it now is, or None.

    On PostgreSQL one statement does it all (data-modifying CTEs): this is the
    transaction every transcription ends with, and four statements made one
    took 2 ms off it in a micro-benchmark (1.2 ms end to end, README). Elsewhere
    the same statements run one by one."""
    params = {
        **_change_params(job_id, from_statuses, values),
        "result_transcript": transcript,
        "result_raw": raw,
        "result_created_at": utcnow(),
        **queue.finish_params(task),
        **(settlement.params() if settlement else {}),
    }
    columns = tuple(values)
    if on_postgres(session):
        in_one = _complete_in_one(columns, settlement is not None, announce_on)
        result = await session.execute(in_one, params)
        return result.scalar_one_or_none()
    if settlement is not None:
        await session.execute(ledger.settle_statement(), params)
    job = await set_status_returning(
        session, job_id, from_statuses=from_statuses, values=values, announce_on=announce_on
    )
    if job is not None:
        await save_result(session, job_id, transcript, raw)
    await session.execute(queue.finish_statement(), params)
    return job


def _as_job(statement: Any) -> ExecutableReturnsRows:
    """The ORM's Job from a statement that returns the jobs table's columns."""
    return select(Job).from_statement(statement).execution_options(populate_existing=True)


@functools.cache
def _complete_in_one(
    columns: tuple[str, ...], settles: bool, announce_on: str
) -> ExecutableReturnsRows:
    """``complete`` as one statement (PostgreSQL): the job's change, which also
    sends its NOTIFY, with the result's insert reading the changed row, and the
    task's end and the ledger's settlement beside them."""
    jobs, results = table_of(Job), table_of(JobResult)
    job = _moved_job(columns, announce_on, postgres=True).cte("changed_job")
    result = (
        insert(results)
        .from_select(
            ["job_id", "transcript", "raw", "created_at"],
            select(
                job.c.id,
                bindparam("result_transcript", type_=results.c.transcript.type),
                bindparam("result_raw", type_=results.c.raw.type),
                bindparam("result_created_at", type_=results.c.created_at.type),
            ),
        )
        .cte("saved_result")
    )
    alongside = [result, queue.finish_statement().cte("finished_task")]
    if settles:
        alongside.append(ledger.settle_statement().cte("settled_submission"))
    return _as_job(select(*(job.c[c.name] for c in jobs.columns)).add_cte(*alongside))


async def get_result(session: AsyncSession, job_id: str) -> JobResult | None:
    return await session.get(JobResult, job_id)


async def delete_job(session: AsyncSession, job_id: str) -> None:
    await session.execute(delete(Job).where(Job.id == job_id))


async def set_deadline(session: AsyncSession, job_id: str, deadline: datetime) -> None:
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(deadline_at=deadline)
        .execution_options(synchronize_session=False)
    )


async def note_vendor_signal(session: AsyncSession, job_id: str) -> None:
    """Mark that the vendor called back with no poll waiting to be made due
    (``take_vendor_signal`` reads the mark). The job's ``updated_at`` is left
    alone: nothing a client sees has changed."""
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(vendor_signalled_at=utcnow(), updated_at=Job.updated_at)
        .execution_options(synchronize_session=False)
    )


async def take_vendor_signal(session: AsyncSession, job_id: str) -> bool:
    """Clear the mark ``note_vendor_signal`` left: True if there was one. The
    UPDATE locks the job's row, so a callback writing its mark at the same
    moment either lands before (and is read here) or after this transaction
    commits (and finds the poll it schedules)."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.vendor_signalled_at.is_not(None))
        .values(vendor_signalled_at=None, updated_at=Job.updated_at)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None
