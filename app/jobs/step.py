"""What every step of a job shares: load the job, call the vendor, record its answer.

Each step reads in one short transaction, calls the vendor with no
transaction open, and writes the outcome together with the end of its task
in one more: a crash in between repeats the step, never half of it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import GatewayContext
from app.db import utcnow
from app.events import commit
from app.jobs import ledger, repository, service
from app.jobs.held import HeldSubmit
from app.jobs.sources import SourceFailing
from app.models import Job
from app.providers.base import (
    PermanentProviderError,
    Provider,
    ProviderError,
    ProviderResult,
    ProviderUpdate,
    RetryableProviderError,
)
from app.providers.guard import VendorUnavailable
from app.queue import repository as queue
from app.queue.repository import ClaimedTask

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobEnded(Exception):
    """The job was canceled or deleted while its provider worked on it."""


def poll_delay(job: Job, hint: float | None, shortest: float) -> float:
    """Poll young jobs often and old ones rarely: a tenth of the job's age,
    ``shortest`` (POLL_MIN_SECONDS) to 60 s; a vendor's own hint, 0.5 s to 300 s."""
    if hint is not None:
        return max(0.5, min(hint, 300.0))
    age = (utcnow() - job.created_at).total_seconds()
    return max(shortest, min(age / 10, 60.0))


def error_fields(error: ProviderError) -> dict[str, Any]:
    """A vendor's error as a job's ``error`` (and a fallback's record) has it."""
    if isinstance(error, PermanentProviderError):
        code, retryable = error.code, error.retryable
    else:
        code, retryable = "provider_error", True
    return {
        "code": code,
        "message": error.message,
        "retryable": retryable,
        "provider_detail": error.provider_detail,
    }


class JobStep:
    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx

    async def _load(self, task: ClaimedTask) -> Job | None:
        """The job, or None (and the task finished) when there is nothing left to do."""
        # Autocommit: one read (or one delete) needs no BEGIN and ROLLBACK around it.
        async with self.ctx.autocommit_sessions() as session:
            job = await repository.get(session, task.job_id)
            if job is not None and not service.is_terminal(job.status):
                return job
            await queue.finish(session, task)
            await session.commit()
            return None

    async def _next_poll_at(self, session: AsyncSession, job: Job, hint: float | None) -> datetime:
        """When to poll next: now if the vendor called back while we were asking
        it (its callback found no poll to make due, and left a mark on the job)."""
        calls_back = self._provider(job).capabilities.callbacks
        if calls_back and await repository.take_vendor_signal(session, job.id):
            return utcnow()
        return utcnow() + timedelta(
            seconds=poll_delay(job, hint, self.ctx.settings.poll_min_seconds)
        )

    def _provider(self, job: Job) -> Provider:
        provider = self.ctx.providers.get(job.provider)
        if provider is None:
            raise PermanentProviderError(
                "provider_unavailable", self.ctx.providers.why_unavailable(job.provider)
            )
        return provider

    @staticmethod
    async def _before_deadline(job: Job, call: Awaitable[T]) -> T:
        """A vendor that hangs is cut off at the job's deadline (the adapters'
        own timeouts are long: a synchronous transcription may take minutes)."""
        left = (job.deadline_at - utcnow()).total_seconds() if job.deadline_at else 0.0
        if left <= 0:  # no deadline running (or its last call): the adapter's timeouts
            return await call
        try:
            return await asyncio.wait_for(call, timeout=left)
        except TimeoutError:
            raise RetryableProviderError(
                f"provider {job.provider!r} did not answer before the job's deadline"
            ) from None

    async def _unless_ended(self, job: Job, provider: Provider, call: Coroutine[Any, Any, T]) -> T:
        """``call``, the provider's work on ``job``. For a provider whose work is
        the gateway's own (``stop_when_job_ends``: the local engine), ``call`` is
        canceled, which stops that work, once the job is canceled or deleted, in
        whichever process; then JobEnded. The job's announcements wake the watch
        (a NOTIFY across processes); a read every WORKER_POLL_SECONDS covers a
        lost one."""
        if not getattr(provider, "stop_when_job_ends", False):
            return await call
        work = asyncio.ensure_future(call)
        try:
            while True:
                watch = asyncio.ensure_future(
                    self.ctx.hub.wait_for_job(job.id, self.ctx.settings.worker_poll_seconds)
                )
                try:
                    await asyncio.wait((work, watch), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    watch.cancel()
                if work.done():
                    return work.result()
                if await self._has_ended(job.id):
                    raise JobEnded(job.id)
        finally:
            if not work.done():
                work.cancel()
                await asyncio.wait((work,))  # the provider stops its work
            if not work.cancelled():
                work.exception()  # retrieved: an answer that came too late is dropped

    async def _has_ended(self, job_id: str) -> bool:
        try:
            async with self.ctx.autocommit_sessions() as session:
                job = await repository.get(session, job_id)
        except (SQLAlchemyError, OSError) as exc:  # the database is away: keep working
            log.warning("job %s: could not check for a cancel (%s)", job_id, type(exc).__name__)
            return False
        return job is None or service.is_terminal(job.status)

    @staticmethod
    def _options(job: Job, provider: Provider) -> BaseModel:
        """The job's options as the provider's options_model has them. They were
        given for the job's first provider: a fallback runs with its defaults."""
        try:
            return provider.options_model.model_validate(
                {} if job.provider_attempts else job.options
            )
        except ValidationError as exc:  # options were checked at creation; settings changed?
            raise PermanentProviderError("invalid_options", str(exc)) from None

    async def _apply(
        self,
        job: Job,
        task: ClaimedTask,
        update: ProviderUpdate,
        submission: int | None = None,
    ) -> None:
        """Record what the vendor said, and end or reschedule this task, atomically."""
        if update.status == "completed" and update.result is not None:
            await self._complete(job, task, update, update.result, submission)
            return
        async with self.ctx.sessions() as session:
            if submission is not None:
                outcome = ledger.REFUSED if update.status == "failed" else ledger.ACCEPTED
                await ledger.settle(session, submission, outcome, update.provider_job_id)
            if update.status == "failed":
                error = update.error or PermanentProviderError(
                    "provider_failed", "the provider reported the job as failed"
                )
                await self._fail(session, job.id, error, update.provider_status)
                await queue.finish(session, task)
            else:
                await self._still_processing(session, job, task, update)
            await commit(session, self.ctx.hub)

    async def _complete(
        self,
        job: Job,
        task: ClaimedTask,
        update: ProviderUpdate,
        result: ProviderResult,
        submission: int | None,
    ) -> None:
        artifacts = service.store_artifacts(self.ctx.storage, job.id, result)
        settlement = None
        if submission is not None:
            settlement = ledger.Settlement(submission, ledger.ACCEPTED, update.provider_job_id)
        # One statement on PostgreSQL, unless a webhook delivery is written beside it.
        sessions = self.ctx.sessions_for(one_statement=not job.callback_url)
        async with sessions() as session:
            completed = await service.complete(
                session,
                job.id,
                result,
                artifacts,
                update.provider_job_id or job.provider_job_id,
                update.provider_status,
                task=task,
                settlement=settlement,
            )
            await commit(session, self.ctx.hub)
        if isinstance(task.held, HeldSubmit) and completed is not None:
            task.held.completed = completed
            task.held.transcript = result.transcript

    async def _still_processing(
        self, session: AsyncSession, job: Job, task: ClaimedTask, update: ProviderUpdate
    ) -> None:
        raise NotImplementedError

    @staticmethod
    async def _fail(
        session: AsyncSession, job_id: str, error: ProviderError, provider_status: str | None
    ) -> None:
        await service.fail(session, job_id, **error_fields(error), provider_status=provider_status)

    async def _fail_and_finish(
        self,
        job_id: str,
        task: ClaimedTask,
        error: PermanentProviderError,
        submission: int | None = None,
    ) -> None:
        async with self.ctx.sessions() as session:
            if submission is not None:
                await ledger.settle(session, submission, ledger.REFUSED)
            await self._fail(session, job_id, error, None)
            await queue.finish(session, task)
            await commit(session, self.ctx.hub)

    async def _retryable(
        self, job: Job, task: ClaimedTask, exc: RetryableProviderError, submission: int | None
    ) -> None:
        """The vendor failed in a way worth retrying: retry (raise, and the worker
        backs off) until the job's deadline for this vendor, then move on."""
        if submission is not None:
            await self._settle(submission, ledger.RETRYABLE)
        deadline = job.deadline_at
        if deadline is not None and task.kind == service.POLL_TASK and task.attempts == 1:
            deadline = await self._restart_deadline(job)
        if deadline is not None:
            now = utcnow()
            wait = timedelta(seconds=exc.retry_after or 0)
            if now >= deadline or now + wait > deadline:
                await self._give_up_on_provider(job, task, self._deadline_error(job, exc))
                return
            exc.retry_not_after = deadline  # type: ignore[attr-defined]
        raise exc

    async def _settle(self, submission: int, outcome: str) -> None:
        async with self.ctx.autocommit_sessions() as session:
            await ledger.settle(session, submission, outcome)
            await session.commit()

    async def _restart_deadline(self, job: Job) -> datetime:
        """The poll before this one went well (a poll's attempts restart at each
        good answer): a vendor may work on a job for hours, so for a job it has
        accepted the deadline counts from the first of a run of failures."""
        deadline = utcnow() + timedelta(seconds=self.ctx.settings.provider_deadline_seconds)
        async with self.ctx.sessions() as session:
            await repository.set_deadline(session, job.id, deadline)
            await session.commit()
        job.deadline_at = deadline
        return deadline

    def _deadline_error(self, job: Job, exc: ProviderError) -> dict[str, Any]:
        seconds = int(self.ctx.settings.provider_deadline_seconds)
        failing = (
            "the source_url" if isinstance(exc, SourceFailing) else f"provider {job.provider!r}"
        )
        return {
            "code": SourceFailing.code if isinstance(exc, SourceFailing) else "deadline_exceeded",
            "message": f"{failing} kept failing for {seconds} s "
            f"(its deadline); last error: {exc.message}",
            "retryable": True,
            "provider_detail": exc.provider_detail,
        }

    async def _vendor_unavailable(
        self, job: Job, task: ClaimedTask, exc: VendorUnavailable, *, before_submit: bool
    ) -> None:
        """The vendor was not called (its breaker is open, or our cap on calls to it
        is reached). A job not yet at the vendor moves to its next provider when
        the breaker is open; otherwise the task waits, without counting a try."""
        if exc.reason == "circuit_open":
            error = {
                "code": "provider_unavailable",
                "message": f"provider {job.provider!r} keeps failing: calls to it are "
                "paused (circuit breaker open)",
                "retryable": True,
                "provider_detail": None,
            }
            past_deadline = job.deadline_at is not None and utcnow() >= job.deadline_at
            if (before_submit and service.next_provider(job)) or past_deadline:
                await self._give_up_on_provider(job, task, error)
                return
        run_at = utcnow() + timedelta(seconds=exc.retry_in * random.uniform(1.0, 1.2))
        if exc.reason == "circuit_open" and job.deadline_at is not None:
            run_at = min(run_at, job.deadline_at)  # to give up on time, not to call sooner
        async with self.ctx.sessions() as session:
            await queue.defer(session, task, run_at)
            await session.commit()

    async def _give_up_on_provider(
        self, job: Job, task: ClaimedTask, error: dict[str, Any]
    ) -> None:
        async with self.ctx.sessions() as session:
            await self._move_on(session, job, error)
            await queue.finish(session, task)
            await commit(session, self.ctx.hub)

    async def _move_on(self, session: AsyncSession, job: Job, error: dict[str, Any]) -> None:
        """To the job's next provider if it has one, else the job fails with ``error``."""
        if service.next_provider(job) is not None:
            deadline = timedelta(seconds=self.ctx.settings.provider_deadline_seconds)
            if await service.fall_back(session, job, error, deadline):
                log.warning(
                    "job %s: giving up on %s (%s), trying %s",
                    job.id,
                    job.provider,
                    error["code"],
                    service.next_provider(job),
                )
            return
        await service.fail(session, job.id, **error)

    async def give_up(self, session: AsyncSession, task: ClaimedTask, error: Exception) -> None:
        message = error.message if isinstance(error, ProviderError) else "an internal error"
        job = await repository.get(session, task.job_id)
        if job is None:
            return
        await self._move_on(
            session,
            job,
            {
                # The source's own failure is not the provider's (it was never asked).
                "code": SourceFailing.code
                if isinstance(error, SourceFailing)
                else "provider_unavailable",
                "retryable": True,
                "message": f"gave up after {task.attempts} attempts: {message}",
                "provider_detail": getattr(error, "provider_detail", None),
            },
        )
