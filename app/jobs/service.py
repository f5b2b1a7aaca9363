"""The job state machine: every change of a job's status goes through here.

    queued ──▶ processing ──▶ completed | failed | canceled
       ▲          │
       └──────────┘  falling back to the job's next provider
       └──────────────────────▶ completed | failed | canceled

Terminal statuses never change again: each transition is a conditional
UPDATE, so a late worker, a duplicate callback or a racing cancel loses.

Terminal transitions are counted in the metrics only when the UPDATE moved the
job, and only once the caller's transaction commits (``metrics.after_commit``):
a rolled-back transition is never counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.events import JOBS_CHANNEL, announce
from app.jobs import ledger, repository
from app.jobs.schemas import TERMINAL_STATUSES, JobStatus
from app.metrics import after_commit, job_finished
from app.models import Job
from app.notify import deliveries
from app.providers.base import ProviderResult
from app.queue import repository as queue
from app.queue.repository import ClaimedTask
from app.storage import LocalStorage, artifact_key

ACTIVE = (JobStatus.queued.value, JobStatus.processing.value)
SUBMIT_TASK = "submit"
POLL_TASK = "poll"
CANCEL_TASK = "cancel"  # cancel the vendor's task too


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


async def _move(
    session: AsyncSession,
    job_id: str,
    from_statuses: tuple[str, ...],
    values: dict[str, Any],
    provider: str | None = None,
) -> bool:
    # The UPDATE sends the NOTIFY itself: no round trip of its own.
    moved = await repository.set_status(
        session,
        job_id,
        from_statuses=from_statuses,
        values={**values, "updated_at": utcnow()},
        provider=provider,
        announce_on=JOBS_CHANNEL,
    )
    if moved:
        await announce(session, JOBS_CHANNEL, job_id, by_trigger=True)
    return moved


async def _end(session: AsyncSession, job_id: str, values: dict[str, Any]) -> Job | None:
    """Move an active job to a terminal status: the job as it now is, or None.
    Its event and its metrics are made from the row the UPDATE returns."""
    job = await repository.set_status_returning(
        session,
        job_id,
        from_statuses=ACTIVE,
        values={**values, "updated_at": utcnow()},
        announce_on=JOBS_CHANNEL,
    )
    if job is not None:
        await announce(session, JOBS_CHANNEL, job_id, by_trigger=True)
    return job


def _count_on_commit(
    session: AsyncSession, job: Job, status: str, completed_at: datetime | None = None
) -> None:
    """Count a terminal transition (and, for a completion, its time since creation)
    when the transaction commits."""
    provider = job.provider
    seconds = (completed_at - job.created_at).total_seconds() if completed_at else None
    after_commit(session, lambda: job_finished(provider, status, seconds))


async def mark_processing(
    session: AsyncSession, job_id: str, provider_job_id: str | None, provider_status: str | None
) -> bool:
    return await _move(
        session,
        job_id,
        ACTIVE,
        {
            "status": JobStatus.processing.value,
            "provider_job_id": provider_job_id,
            "provider_status": provider_status,
        },
    )


async def note_provider_status(session: AsyncSession, job_id: str, provider_status: str) -> None:
    """The vendor's own word changed while the job is still processing."""
    await _move(
        session, job_id, (JobStatus.processing.value,), {"provider_status": provider_status}
    )


def store_artifacts(storage: LocalStorage, job_id: str, result: ProviderResult) -> list[dict]:
    """Write the vendor's outputs to storage (before the completing transaction)."""
    listed = []
    for artifact in result.artifacts:
        storage.write_bytes(artifact_key(job_id, artifact.name), artifact.data)
        listed.append(
            {
                "name": artifact.name,
                "content_type": artifact.content_type,
                "size": len(artifact.data),
            }
        )
    return listed


async def complete(
    session: AsyncSession,
    job_id: str,
    result: ProviderResult,
    artifacts: list[dict],
    provider_job_id: str | None,
    provider_status: str | None,
    *,
    task: ClaimedTask,
    settlement: ledger.Settlement | None = None,
) -> Job | None:
    """The job completed with ``result``, and ``task`` (which learnt it) is done:
    the job as it now is, or None if it had already ended (a late or repeated
    answer). ``settlement``: the submit's ledger row, settled in the same write."""
    now = utcnow()
    job = await repository.complete(
        session,
        job_id,
        from_statuses=ACTIVE,
        values={
            "status": JobStatus.completed.value,
            "provider_job_id": provider_job_id,
            "provider_status": provider_status,
            "artifacts": artifacts,
            "completed_at": now,
            "error": None,
            "updated_at": now,
        },
        transcript=result.transcript.model_dump(mode="json"),
        raw=result.raw,
        task=task,
        settlement=settlement,
        announce_on=JOBS_CHANNEL,
    )
    if job is None:
        return None
    await announce(session, JOBS_CHANNEL, job_id, by_trigger=True)
    await deliveries.record_event(session, job_id, "job.completed", job=job)
    _count_on_commit(session, job, JobStatus.completed.value, now)
    return job


async def fail(
    session: AsyncSession,
    job_id: str,
    *,
    code: str,
    message: str,
    retryable: bool = False,
    provider_detail: Any = None,
    provider_status: str | None = None,
) -> bool:
    values: dict[str, Any] = {
        "status": JobStatus.failed.value,
        "completed_at": utcnow(),
        "error": {
            "code": code,
            "message": message,
            "retryable": retryable,
            "provider_detail": provider_detail,
        },
    }
    if provider_status is not None:
        values["provider_status"] = provider_status
    job = await _end(session, job_id, values)
    if job is None:
        return False
    await deliveries.record_event(session, job_id, "job.failed", job=job)
    _count_on_commit(session, job, JobStatus.failed.value)
    return True


async def cancel(session: AsyncSession, job_id: str, *, at_vendor: bool = False) -> bool:
    """Cancel at once in the gateway; pending work for the job is dropped, and
    with ``at_vendor`` a task asks the vendor to cancel its side too."""
    job = await _end(
        session, job_id, {"status": JobStatus.canceled.value, "completed_at": utcnow()}
    )
    if job is None:
        return False
    await queue.cancel_for_job(session, job_id, (SUBMIT_TASK, POLL_TASK))
    if at_vendor:
        await queue.enqueue(session, CANCEL_TASK, job_id)
    await deliveries.record_event(session, job_id, "job.canceled", job=job)
    _count_on_commit(session, job, JobStatus.canceled.value)
    return True


async def resubmit(session: AsyncSession, job: Job, run_at: datetime, deadline: timedelta) -> bool:
    """The vendor failed the job it had taken: queue it to be sent to the same
    vendor again at ``run_at``, its vendor job forgotten and its deadline anew."""
    moved = await _move(
        session,
        job.id,
        (JobStatus.processing.value,),
        {
            "status": JobStatus.queued.value,
            "provider_job_id": None,
            "provider_status": None,
            "deadline_at": utcnow() + deadline,
        },
        provider=job.provider,  # not if the job has meanwhile moved to a fallback
    )
    if moved:
        await queue.cancel_for_job(session, job.id, (SUBMIT_TASK, POLL_TASK))
        await queue.enqueue(session, SUBMIT_TASK, job.id, run_at=run_at)
    return moved


def next_provider(job: Job) -> str | None:
    """The provider after the current one: the chain is [first, *fallback_providers]
    and the current one is at index len(provider_attempts)."""
    index = len(job.provider_attempts)
    return job.fallback_providers[index] if index < len(job.fallback_providers) else None


async def fall_back(
    session: AsyncSession, job: Job, error: dict[str, Any], deadline: timedelta
) -> bool:
    """Give up on the job's current provider (recording why) and queue it for the next."""
    following = next_provider(job)
    assert following is not None
    now = utcnow()
    tried = {"provider": job.provider, "error": error, "at": now.isoformat()}
    moved = await _move(
        session,
        job.id,
        ACTIVE,
        {
            "status": JobStatus.queued.value,
            "provider": following,
            "provider_attempts": [*job.provider_attempts, tried],
            "provider_job_id": None,
            "provider_status": None,
            "deadline_at": now + deadline,
        },
        provider=job.provider,
    )
    if moved:
        await queue.cancel_for_job(session, job.id, (SUBMIT_TASK, POLL_TASK))
        await queue.enqueue(session, SUBMIT_TASK, job.id)
    return moved
