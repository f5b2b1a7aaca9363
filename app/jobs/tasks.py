"""The job's background steps: submit to the provider, poll it, store its results.

Each step reads in one short transaction, calls the vendor with no
transaction open, and writes the outcome together with the end of its task
in one more: a crash in between repeats the step, never half of it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import GatewayContext
from app.db import retry_while_unreachable, utcnow
from app.events import commit
from app.jobs import ledger, repository, service
from app.jobs.held import HeldSubmit
from app.jobs.sources import download_source
from app.links import callback_url, media_url
from app.models import Job
from app.notify.deliveries import DELIVER_TASK
from app.notify.step import DeliverStep
from app.providers.base import (
    PermanentProviderError,
    Provider,
    ProviderError,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.guard import VendorUnavailable
from app.queue import repository as queue
from app.queue.repository import ClaimedTask
from app.queue.worker import TaskHandler
from app.storage import audio_key

log = logging.getLogger(__name__)
T = TypeVar("T")


def poll_delay(job: Job, hint: float | None) -> float:
    """Poll young jobs often and old ones rarely: a tenth of the job's age, 1 s to 60 s."""
    if hint is not None:
        return max(0.5, min(hint, 300.0))
    age = (utcnow() - job.created_at).total_seconds()
    return max(1.0, min(age / 10, 60.0))


class _JobStep:
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
        artifacts: list[dict] = []
        if update.status == "completed" and update.result is not None:
            artifacts = service.store_artifacts(self.ctx.storage, job.id, update.result)
        async with self.ctx.sessions() as session:
            if submission is not None:
                outcome = ledger.REFUSED if update.status == "failed" else ledger.ACCEPTED
                await ledger.settle(session, submission, outcome, update.provider_job_id)
            if update.status == "completed" and update.result is not None:
                completed = await service.complete(
                    session,
                    job.id,
                    update.result,
                    artifacts,
                    update.provider_job_id or job.provider_job_id,
                    update.provider_status,
                )
                await queue.finish(session, task)
                if isinstance(task.held, HeldSubmit) and completed is not None:
                    task.held.completed = completed
                    task.held.transcript = update.result.transcript
            elif update.status == "failed":
                error = update.error or PermanentProviderError(
                    "provider_failed", "the provider reported the job as failed"
                )
                await self._fail(session, job.id, error, update.provider_status)
                await queue.finish(session, task)
            else:
                await self._still_processing(session, job, task, update)
            await commit(session, self.ctx.hub)

    async def _still_processing(
        self, session: AsyncSession, job: Job, task: ClaimedTask, update: ProviderUpdate
    ) -> None:
        raise NotImplementedError

    @staticmethod
    async def _fail(
        session: AsyncSession, job_id: str, error: ProviderError, provider_status: str | None
    ) -> None:
        await service.fail(
            session,
            job_id,
            code=error.code if isinstance(error, PermanentProviderError) else "provider_error",
            retryable=error.retryable if isinstance(error, PermanentProviderError) else True,
            message=error.message,
            provider_detail=error.provider_detail,
            provider_status=provider_status,
        )

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
        return {
            "code": "deadline_exceeded",
            "message": f"provider {job.provider!r} kept failing for {seconds} s "
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
                "code": "provider_unavailable",
                "retryable": True,
                "message": f"gave up after {task.attempts} attempts: {message}",
                "provider_detail": getattr(error, "provider_detail", None),
            },
        )


class SubmitStep(_JobStep):
    async def run(self, task: ClaimedTask) -> None:
        # A request running its own job's submit holds the job, already started.
        held = task.held if isinstance(task.held, HeldSubmit) else None
        job = held.job if held else await self._load(task)
        if job is None:
            return
        submission = held.submission if held else None
        try:
            provider = self._provider(job)
            request = await self._request(job, provider)
            with self.ctx.guard.slot(provider.name):
                if held is None:
                    started, submission = await self._start(job, task, provider)
                    if not started:
                        return
                update = await self._before_deadline(job, provider.submit(request))
        except PermanentProviderError as exc:
            await self._keep(job, partial(self._fail_and_finish, job.id, task, exc, submission))
            return
        except VendorUnavailable as exc:
            if submission is not None:  # held: its ledger row was opened, nothing was sent
                await self._settle(submission, ledger.RETRYABLE)
            await self._vendor_unavailable(job, task, exc, before_submit=True)
            return
        except RetryableProviderError as exc:
            await self._keep(job, partial(self._retryable, job, task, exc, submission))
            return
        await self._keep(job, partial(self._apply, job, task, update, submission))

    @staticmethod
    async def _keep(job: Job, write: Callable[[], Awaitable[None]]) -> None:
        """The vendor's answer to a submit cannot be had again: if the database is
        down when it comes, wait for the database rather than lose the answer
        (and leave the ledger row open, which would make the job fail as in doubt)."""
        what = f"job {job.id}: recording {job.provider}'s answer"
        await retry_while_unreachable(write, what=what)

    async def _start(
        self, job: Job, task: ClaimedTask, provider: Provider
    ) -> tuple[bool, int | None]:
        """In one transaction: write the submit down in the ledger (unless
        sending it twice is free), and show a synchronous provider's job as in
        hand. False when an earlier submit was cut off and the job failed."""
        ledgered = ledger.is_kept_for(provider)
        submission = None
        async with self.ctx.sessions() as session:
            if ledgered:
                interrupted = await ledger.open_submission(session, job.id, job.provider)
                if interrupted is not None:
                    await ledger.settle(session, interrupted, ledger.IN_DOUBT)
                    if not self.ctx.settings.resubmit_in_doubt:
                        await self._fail_interrupted(session, job, task)
                        await commit(session, self.ctx.hub)
                        return False, None
                    log.warning("job %s: resubmitting a submit cut off by a restart", job.id)
                submission = await ledger.begin(session, job.id, job.provider)
            if provider.capabilities.synchronous:
                # The engine works while we wait: the client should see it is in hand.
                await service.mark_processing(session, job.id, job.id, "running")
            await commit(session, self.ctx.hub)
        return True, submission

    async def _fail_interrupted(self, session: AsyncSession, job: Job, task: ClaimedTask) -> None:
        """A submit to this vendor was started and never settled: the gateway died
        while the vendor had the request, which it may have accepted and billed.
        Unless RESUBMIT_IN_DOUBT is set, the job fails rather than pay twice."""
        await service.fail(
            session,
            job.id,
            code="submit_interrupted",
            retryable=True,
            message=f"the gateway stopped while submitting to {job.provider!r}; the vendor "
            "may have the job (and bill it), so it was not sent again. Create a new job "
            "to try again.",
        )
        await queue.finish(session, task)
        log.warning("job %s: a submit to %s was cut off by a restart", job.id, job.provider)

    async def _request(self, job: Job, provider: Provider) -> SubmitRequest:
        options = self._options(job, provider)
        if provider.needs_local_audio and job.audio_key is None:
            await self._fetch_source(job)
        audio_path = self.ctx.storage.path(job.audio_key) if job.audio_key else None
        if job.audio_format and job.audio_format not in provider.capabilities.formats:
            raise PermanentProviderError(
                "unsupported_media",
                f"provider {provider.name!r} does not take {job.audio_format} audio",
            )
        settings, signer = self.ctx.settings, self.ctx.signer
        callbacks = provider.capabilities.callbacks
        return SubmitRequest(
            callback_url=callback_url(settings, signer, job.provider, job.id)
            if callbacks
            else None,
            media_url=media_url(settings, signer, job.id) if job.audio_key else None,
            job_id=job.id,
            audio_path=audio_path,
            audio_format=job.audio_format,  # type: ignore[arg-type]
            filename=job.source.get("filename"),
            content_type=job.source.get("content_type"),
            source_url=job.source.get("url"),
            language=job.language,
            options=options,
        )

    async def _fetch_source(self, job: Job) -> None:
        key = audio_key(job.id)
        writer = self.ctx.storage.writer(key)
        try:
            fmt = await download_source(
                self.ctx.http,
                job.source["url"],
                writer,
                max_bytes=self.ctx.settings.max_source_url_bytes,
                allow_private=self.ctx.settings.allow_private_urls,
                max_seconds=self.ctx.settings.source_url_timeout_seconds,
            )
            await writer.commit()
        except BaseException:
            writer.abort()
            raise
        async with self.ctx.sessions() as session:
            stored = await repository.get(session, job.id)
            if stored is not None:
                stored.audio_key, stored.audio_format = key, fmt
            await session.commit()
        job.audio_key, job.audio_format = key, fmt

    async def _still_processing(
        self, session: AsyncSession, job: Job, task: ClaimedTask, update: ProviderUpdate
    ) -> None:
        await service.mark_processing(
            session, job.id, update.provider_job_id, update.provider_status
        )
        await queue.finish(session, task)
        run_at = utcnow() + timedelta(seconds=poll_delay(job, update.poll_after))
        await queue.enqueue(session, service.POLL_TASK, job.id, run_at=run_at)


class PollStep(_JobStep):
    async def run(self, task: ClaimedTask) -> None:
        job = await self._load(task)
        if job is None:
            return
        try:
            provider = self._provider(job)
            if job.provider_job_id is None:
                raise PermanentProviderError("internal", "the job has no provider job id to poll")
            with self.ctx.guard.slot(provider.name):
                options = self._options(job, provider)
                update = await self._before_deadline(
                    job, provider.fetch(job.provider_job_id, options)
                )
        except PermanentProviderError as exc:
            await self._fail_and_finish(job.id, task, exc)
            return
        except VendorUnavailable as exc:
            await self._vendor_unavailable(job, task, exc, before_submit=False)
            return
        except RetryableProviderError as exc:
            await self._retryable(job, task, exc, None)
            return
        await self._apply(job, task, update)

    async def _still_processing(
        self, session: AsyncSession, job: Job, task: ClaimedTask, update: ProviderUpdate
    ) -> None:
        if update.provider_status and update.provider_status != job.provider_status:
            await service.note_provider_status(session, job.id, update.provider_status)
        run_at = utcnow() + timedelta(seconds=poll_delay(job, update.poll_after))
        # Still working is not a failure: the attempt count starts again.
        await queue.reschedule(session, task, run_at, reset_attempts=True)


class CancelStep:
    """Asks the vendor to stop a job the client canceled (the job is canceled already)."""

    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx

    async def run(self, task: ClaimedTask) -> None:
        async with self.ctx.sessions() as session:
            job = await repository.get(session, task.job_id)
        provider = self.ctx.providers.get(job.provider) if job else None
        if job is not None and provider is not None and job.provider_job_id:
            try:
                await provider.cancel(job.provider_job_id)
            except PermanentProviderError as exc:
                log.warning("%s refused to cancel job %s: %s", job.provider, job.id, exc.message)
        async with self.ctx.sessions() as session:
            await queue.finish(session, task)
            await session.commit()

    async def give_up(self, session: AsyncSession, task: ClaimedTask, error: Exception) -> None:
        log.warning("gave up canceling job %s at its vendor: %s", task.job_id, error)


def job_handlers(ctx: GatewayContext) -> dict[str, TaskHandler]:
    return {
        service.SUBMIT_TASK: SubmitStep(ctx),
        service.POLL_TASK: PollStep(ctx),
        service.CANCEL_TASK: CancelStep(ctx),
        DELIVER_TASK: DeliverStep(ctx),
    }
