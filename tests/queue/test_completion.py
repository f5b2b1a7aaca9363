"""Completing a job writes its status, its result, the end of the task that
learnt it and the settled ledger row together (one statement on PostgreSQL,
one by one on SQLite); a job that had already ended keeps what it had."""

from __future__ import annotations

from sqlalchemy import insert, select

from app.db import utcnow
from app.jobs import ledger, service
from app.models import Job, JobResult, ProviderSubmission, Task
from app.providers.base import ProviderResult
from app.queue.repository import ClaimedTask, new_claim_token
from app.transcripts import Transcript

RESULT = ProviderResult(
    transcript=Transcript(text="hello there", language="en", duration=1.5, provider="local"),
    raw={"text": "hello there", "vendor": "says"},
)


async def _running(sessions, status: str = "processing") -> tuple[ClaimedTask, int]:
    """job_1 in ``status``, with a claimed submit task and an open ledger row."""
    token = new_claim_token()
    async with sessions() as session:
        job = await session.get(Job, "job_1")
        job.status = status
        task_id = await session.scalar(
            insert(Task)
            .values(kind="submit", job_id="job_1", run_at=utcnow(), attempts=1, claim_token=token)
            .returning(Task.id)
        )
        submission = await ledger.begin(session, "job_1", "local")
        await session.commit()
    return ClaimedTask(task_id, "submit", "job_1", 1, token), submission


async def _complete(sessions, task: ClaimedTask, submission: int) -> Job | None:
    async with sessions() as session:
        completed = await service.complete(
            session,
            "job_1",
            RESULT,
            [{"name": "notes.mid", "content_type": "audio/midi", "size": 3}],
            "vendor-job-7",
            "done",
            task=task,
            settlement=ledger.Settlement(submission, ledger.ACCEPTED, "vendor-request-9"),
        )
        await session.commit()
    return completed


async def _stored(sessions) -> tuple[Job, JobResult | None, list[Task], ProviderSubmission]:
    async with sessions() as session:
        job = await session.get(Job, "job_1")
        result = await session.get(JobResult, "job_1")
        tasks = list(await session.scalars(select(Task)))
        submission = await session.scalar(select(ProviderSubmission))
    return job, result, tasks, submission


async def test_completing_writes_the_job_its_result_the_task_and_the_ledger(sessions):
    task, submission = await _running(sessions)

    completed = await _complete(sessions, task, submission)

    job, result, tasks, row = await _stored(sessions)
    assert completed is not None and completed.status == job.status == "completed"
    # Only the completion's columns changed: each value went where it belongs.
    assert (job.id, job.client_id, job.provider) == ("job_1", "cli_1", "local")
    assert (job.provider_job_id, job.provider_status, job.error) == ("vendor-job-7", "done", None)
    assert job.artifacts == [{"name": "notes.mid", "content_type": "audio/midi", "size": 3}]
    assert job.completed_at is not None and job.updated_at == job.completed_at
    assert completed.completed_at == job.completed_at
    assert result is not None and result.raw == RESULT.raw
    assert result.transcript["text"] == "hello there" and result.created_at is not None
    assert tasks == []
    assert (row.id, row.job_id, row.outcome) == (submission, "job_1", ledger.ACCEPTED)
    assert row.provider_job_id == "vendor-request-9" and row.finished_at is not None


async def test_a_late_answer_leaves_an_ended_job_as_it_was_and_still_ends_its_task(sessions):
    task, submission = await _running(sessions, status="canceled")

    assert await _complete(sessions, task, submission) is None

    job, result, tasks, row = await _stored(sessions)
    assert (job.status, job.provider_job_id, job.completed_at) == ("canceled", None, None)
    assert result is None
    assert tasks == []  # the task's work is done either way
    assert row.outcome == ledger.ACCEPTED  # the vendor did take it (and may bill it)


async def test_a_task_whose_lease_was_lost_is_left_to_its_new_owner(sessions):
    task, submission = await _running(sessions)
    lost = ClaimedTask(task.id, task.kind, task.job_id, task.attempts, new_claim_token())

    await _complete(sessions, lost, submission)

    job, _, tasks, _ = await _stored(sessions)
    assert job.status == "completed"
    assert [t.claim_token for t in tasks] == [task.claim_token]
