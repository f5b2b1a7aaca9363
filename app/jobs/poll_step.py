"""Ask the provider how a job it has accepted is going, until it is done."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs import service
from app.jobs.step import JobStep
from app.models import Job
from app.providers.base import PermanentProviderError, ProviderUpdate, RetryableProviderError
from app.providers.guard import VendorUnavailable
from app.queue import repository as queue
from app.queue.repository import ClaimedTask


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
        await self._apply(job, task, update)

    async def _still_processing(
        self, session: AsyncSession, job: Job, task: ClaimedTask, update: ProviderUpdate
    ) -> None:
        if update.provider_status and update.provider_status != job.provider_status:
            await service.note_provider_status(session, job.id, update.provider_status)
        run_at = await self._next_poll_at(session, job, update.poll_after)
        # Still working is not a failure: the attempt count starts again.
        await queue.reschedule(session, task, run_at, reset_attempts=True)
