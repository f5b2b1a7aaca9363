"""Submit a job to its provider: once, written down in the submit ledger first."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from app.audio.sniff import MEDIA_TYPES
from app.db import retry_while_unreachable
from app.events import commit
from app.jobs import ledger, repository, service
from app.jobs.held import HeldSubmit
from app.jobs.sources import download_source
from app.jobs.step import JobEnded, JobStep
from app.links import callback_url, media_url
from app.models import Job
from app.providers.base import (
    PermanentProviderError,
    Provider,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.guard import VendorUnavailable
from app.queue import repository as queue
from app.queue.repository import ClaimedTask
from app.storage import audio_key

log = logging.getLogger(__name__)


class SubmitStep(JobStep):
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
                update = await self._before_deadline(
                    job, self._unless_ended(job, provider, provider.submit(request))
                )
        except JobEnded:
            await self._ended(job, task, provider, submission)
            return
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

    async def _ended(
        self, job: Job, task: ClaimedTask, provider: Provider, submission: int | None
    ) -> None:
        """The job was canceled or deleted while the provider worked on it, and
        its work was stopped: nothing is written for the job."""
        log.info("job %s ended while %s worked on it: its work was stopped", job.id, provider.name)
        async with self.ctx.sessions() as session:
            if submission is not None:  # the vendor may have had it
                await ledger.settle(session, submission, ledger.IN_DOUBT)
            await queue.finish(session, task)
            await session.commit()

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
                # No provider_status: such a vendor has no status word to keep (a
                # made-up "running" outlived the job's end).
                await service.mark_processing(session, job.id, job.id, None)
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
            # The sniffed format decides (older jobs kept what the client declared).
            content_type=MEDIA_TYPES[job.audio_format]
            if job.audio_format in MEDIA_TYPES
            else job.source.get("content_type"),
            source_url=job.source.get("url"),
            language=job.language,
            options=options,
        )

    async def _fetch_source(self, job: Job) -> None:
        key = audio_key(job.id)
        writer = self.ctx.storage.writer(key)
        try:
            fmt = await download_source(
                self.ctx.client_urls_http,
                job.source["url"],
                writer,
                max_bytes=self.ctx.settings.max_source_url_bytes,
                allow_private=self.ctx.settings.allow_private_urls,
                max_seconds=self.ctx.settings.source_url_timeout_seconds,
            )
            await writer.commit()
        except BaseException:
            await writer.discard()
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
        run_at = await self._next_poll_at(session, job, update.poll_after)
        await queue.enqueue(session, service.POLL_TASK, job.id, run_at=run_at)
