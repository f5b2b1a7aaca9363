"""Ask the vendor to stop a job the client canceled."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.context import GatewayContext
from app.jobs import repository
from app.providers.base import PermanentProviderError
from app.queue import repository as queue
from app.queue.repository import ClaimedTask

log = logging.getLogger(__name__)


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
