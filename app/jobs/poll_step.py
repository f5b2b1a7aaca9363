"""Ask the provider how a job it has accepted is going, until it is done."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.events import commit
from app.jobs import ledger, service
from app.jobs.step import JobStep, error_fields
from app.models import Job
from app.providers.base import (
    PermanentProviderError,
    Provider,
    ProviderUpdate,
    RetryableProviderError,
)
from app.providers.guard import VendorUnavailable
from app.queue import repository as queue
from app.queue.repository import ClaimedTask

log = logging.getLogger(__name__)


class PollStep(JobStep):
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
        if update.status == "failed" and update.error is not None and update.error.retryable:
            await self._vendor_failed(job, task, provider, update, update.error)
            return
        await self._apply(job, task, update)

    async def _vendor_failed(
        self,
        job: Job,
        task: ClaimedTask,
        provider: Provider,
        update: ProviderUpdate,
        error: PermanentProviderError,
    ) -> None:
        """The vendor took the job, then failed it in a way an identical request
        may cure: send it again (VENDOR_FAILURE_RESUBMITS times, after a pause
        that grows), then try the next provider, and only then fail the job."""
        settings = self.ctx.settings
        taken = 0
        if ledger.is_kept_for(provider):  # the ledger counts what the vendor took
            async with self.ctx.autocommit_sessions() as session:
                taken = await ledger.accepted_count(session, job.id, job.provider)
        if 0 < taken <= settings.vendor_failure_resubmits:
            run_at = utcnow() + timedelta(seconds=5 * settings.poll_min_seconds * taken)
            deadline = timedelta(seconds=settings.provider_deadline_seconds)
            async with self.ctx.sessions() as session:
                moved = await service.resubmit(session, job, run_at, deadline)
                await commit(session, self.ctx.hub)
            if not moved:  # canceled, or moved on, meanwhile
                return
            log.warning(
                "job %s: %s failed it (%s); sending it again (%d of %d)",
                job.id,
                job.provider,
                update.provider_status or error.code,
                taken,
                settings.vendor_failure_resubmits,
            )
            return
        if service.next_provider(job) is not None:
            await self._give_up_on_provider(job, task, error_fields(error))
            return
        await self._apply(job, task, update)

    async def _still_processing(
        self, session: AsyncSession, job: Job, task: ClaimedTask, update: ProviderUpdate
    ) -> None:
        if update.provider_status and update.provider_status != job.provider_status:
            await service.note_provider_status(session, job.id, update.provider_status)
        run_at = await self._next_poll_at(session, job, update.poll_after)
        # Still working is not a failure: the attempt count starts again.
        await queue.reschedule(session, task, run_at, reset_attempts=True)
