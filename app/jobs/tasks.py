"""The job's background steps: submit to the provider, poll it, store its results.

Each step reads in one short transaction, calls the vendor with no
transaction open, and writes the outcome together with the end of its task
in one more: a crash in between repeats the step, never half of it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import GatewayContext
from app.db import utcnow
from app.events import commit
from app.jobs import repository, service
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
    SubmitRequest,
)
from app.queue import repository as queue
from app.queue.repository import ClaimedTask
from app.queue.worker import TaskHandler
from app.storage import audio_key

log = logging.getLogger(__name__)


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
        async with self.ctx.sessions() as session:
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
    def _options(job: Job, provider: Provider) -> BaseModel:
        """The job's options as the provider's options_model has them."""
        try:
            return provider.options_model.model_validate(job.options)
        except ValidationError as exc:  # options were checked at creation; settings changed?
            raise PermanentProviderError("invalid_options", str(exc)) from None

    async def _apply(self, job: Job, task: ClaimedTask, update: ProviderUpdate) -> None:
        """Record what the vendor said, and end or reschedule this task, atomically."""
        artifacts: list[dict] = []
        if update.status == "completed" and update.result is not None:
            artifacts = service.store_artifacts(self.ctx.storage, job.id, update.result)
        async with self.ctx.sessions() as session:
            if update.status == "completed" and update.result is not None:
                await service.complete(
                    session,
                    job.id,
                    update.result,
                    artifacts,
                    update.provider_job_id or job.provider_job_id,
                    update.provider_status,
                )
                await queue.finish(session, task)
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
        self, job_id: str, task: ClaimedTask, error: PermanentProviderError
    ) -> None:
        async with self.ctx.sessions() as session:
            await self._fail(session, job_id, error, None)
            await queue.finish(session, task)
            await commit(session, self.ctx.hub)

    async def give_up(self, session: AsyncSession, task: ClaimedTask, error: Exception) -> None:
        message = error.message if isinstance(error, ProviderError) else "an internal error"
        await service.fail(
            session,
            task.job_id,
            code="provider_unavailable",
            retryable=True,
            message=f"gave up after {task.attempts} attempts: {message}",
            provider_detail=getattr(error, "provider_detail", None),
        )


class SubmitStep(_JobStep):
    async def run(self, task: ClaimedTask) -> None:
        job = await self._load(task)
        if job is None:
            return
        try:
            provider = self._provider(job)
            request = await self._request(job, provider)
            if provider.capabilities.synchronous:
                # The engine works while we wait: the client should see it is in hand.
                async with self.ctx.sessions() as session:
                    await service.mark_processing(session, job.id, job.id, "running")
                    await commit(session, self.ctx.hub)
            update = await provider.submit(request)
        except PermanentProviderError as exc:
            await self._fail_and_finish(job.id, task, exc)
            return
        await self._apply(job, task, update)

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
            update = await provider.fetch(job.provider_job_id, self._options(job, provider))
        except PermanentProviderError as exc:
            await self._fail_and_finish(job.id, task, exc)
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
