"""The worker's "deliver" task: one attempt per run, rescheduled until settled."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.context import GatewayContext
from app.events import commit
from app.metrics import after_commit, webhook_attempt
from app.notify import deliveries
from app.notify.deliveries import PENDING
from app.notify.sender import attempt_once, decide
from app.queue import repository as queue
from app.queue.repository import ClaimedTask

log = logging.getLogger(__name__)


class DeliverStep:
    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx

    async def run(self, task: ClaimedTask) -> None:
        # Autocommit: one read (or one delete) needs no BEGIN and ROLLBACK around it.
        async with self.ctx.autocommit_sessions() as session:
            target = await deliveries.target(session, task.ref)
            if target is None:  # deleted, or settled by someone else
                await queue.finish(session, task)
                await session.commit()
                return
        http = self.ctx.client_urls_http
        attempt, retry_after = await attempt_once(http, self.ctx.settings, target)
        decision = decide(attempt, retry_after, self.ctx.settings)
        log.info(
            "webhook %s for job %s, attempt %d: %s -> %s",
            target.delivery.id, task.job_id, attempt.attempt,
            attempt.status_code or attempt.error, decision.status,
        )  # fmt: skip
        async with self.ctx.sessions() as session:
            await deliveries.record_attempt(
                session, target.delivery.id, attempt,
                status=decision.status, next_attempt_at=decision.next_attempt_at,
            )  # fmt: skip
            if decision.next_attempt_at is None:
                await queue.finish(session, task)
            else:
                await queue.reschedule(session, task, decision.next_attempt_at, reset_attempts=True)
            await commit(session, self.ctx.hub)
        # Counted once recorded: succeeded, failed (given up) or retry (sent again later).
        webhook_attempt("retry" if decision.status == PENDING else decision.status)

    async def give_up(self, session: AsyncSession, task: ClaimedTask, error: Exception) -> None:
        await deliveries.mark_failed(session, task.ref)
        after_commit(session, lambda: webhook_attempt("failed"))
