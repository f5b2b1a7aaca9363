"""Background machinery of one process: the LISTEN connection and the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url

from app.context import GatewayContext
from app.events import PostgresListener
from app.heap import freeze_startup_objects
from app.jobs.tasks import job_handlers
from app.queue.worker import Worker
from app.retention import run_sweeper

log = logging.getLogger(__name__)


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def background(ctx: GatewayContext, *, run_worker: bool) -> AsyncIterator[Worker | None]:
    """Run the listener (PostgreSQL) and, if asked, the worker and the retention
    sweeper, for the block's duration."""
    tasks: list[asyncio.Task[None]] = []
    if ctx.engine.dialect.name == "postgresql":
        listener = PostgresListener(
            asyncpg_dsn(ctx.settings.database_url), ctx.hub, asyncpg.connect
        )
        tasks.append(asyncio.create_task(listener.run(), name="listen"))
    worker = None
    if run_worker:
        worker = Worker(
            ctx.sessions,
            ctx.hub,
            job_handlers(ctx),
            ctx.settings,
            claim_sessions=ctx.autocommit_sessions,
        )
        # Requests may run a task themselves (the OpenAI route's synchronous
        # submits); not in `serve --no-worker`, which does no background work.
        ctx.task_runner = worker
        tasks.append(asyncio.create_task(worker.run(), name="worker"))
        tasks.append(asyncio.create_task(run_sweeper(ctx), name="retention"))
    try:
        yield worker
    finally:
        if worker is not None:
            await worker.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_worker_forever(ctx: GatewayContext) -> None:
    """``stt-gateway worker``: only the background work, until cancelled."""
    async with background(ctx, run_worker=True):
        freeze_startup_objects()
        await asyncio.Event().wait()
