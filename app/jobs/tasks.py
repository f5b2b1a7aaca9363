"""The job's background steps, by task kind: submit to the provider, poll it,
cancel at it, and deliver the client's webhooks."""

from __future__ import annotations

from app.context import GatewayContext
from app.jobs import service
from app.jobs.cancel_step import CancelStep
from app.jobs.poll_step import PollStep
from app.jobs.submit_step import SubmitStep
from app.notify.deliveries import DELIVER_TASK
from app.notify.step import DeliverStep
from app.queue.worker import TaskHandler


def job_handlers(ctx: GatewayContext) -> dict[str, TaskHandler]:
    return {
        service.SUBMIT_TASK: SubmitStep(ctx),
        service.POLL_TASK: PollStep(ctx),
        service.CANCEL_TASK: CancelStep(ctx),
        DELIVER_TASK: DeliverStep(ctx),
    }
