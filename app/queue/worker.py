"""The worker loop: claim due tasks, run them with a bounded concurrency, retry.

It wakes when a task is announced (NOTIFY on PostgreSQL, in-process on
SQLite), when a task this process scheduled for later falls due, or when its
polling timer fires, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import logs
from app.config import Settings
from app.db import database_unreachable, retry_while_unreachable, utcnow
from app.events import EventHub, commit
from app.queue import repository as queue
from app.queue.backoff import retry_delay
from app.queue.repository import ClaimedTask

log = logging.getLogger(__name__)


class TaskHandler(Protocol):
    async def run(self, task: ClaimedTask) -> None:
        """Do the work; finish or reschedule the task in the final transaction."""

    async def give_up(self, session: AsyncSession, task: ClaimedTask, error: Exception) -> None:
        """The task failed too often: record it on the job (same transaction as the finish)."""


class Worker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hub: EventHub,
        handlers: Mapping[str, TaskHandler],
        settings: Settings,
        *,
        claim_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        # A claim is one statement: in autocommit it needs no BEGIN and COMMIT
        # round trips around it (a third of the queue's traffic at load).
        self._claim_sessions = claim_sessions or sessions
        self._hub = hub
        self._handlers = handlers
        self._settings = settings
        self._lease = timedelta(seconds=settings.task_lease_seconds)
        self._running: dict[asyncio.Task[None], ClaimedTask] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        log.info("worker started (concurrency %d)", self._settings.worker_concurrency)
        while not self._stopping.is_set():
            free = self._settings.worker_concurrency - len(self._running)
            claimed: list[ClaimedTask] = []
            if free > 0:
                self._hub.tasks_due.clear()
                claimed = await self._claim(free)
                if self._stopping.is_set():
                    # stop() came during the claim: these would start after its grace
                    # period began, and run on into the process's shutdown.
                    await self._release(claimed)
                    break
                for task in claimed:
                    runner = asyncio.create_task(self._execute(task))
                    self._running[runner] = task
            if free > 0 and len(claimed) == free:
                await asyncio.sleep(0)  # more may be due: claim again at once
                continue
            await self._wait_for_work()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let running tasks finish for ``grace`` s, hand back the rest."""
        self._stopping.set()
        self._hub.tasks_due.set()
        if self._running:
            _, pending = await asyncio.wait(list(self._running), timeout=grace)
            left = [self._running[t] for t in pending]
            for runner in pending:
                runner.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self._release(left)

    async def _release(self, tasks: list[ClaimedTask]) -> None:
        """Hand tasks back for another worker now (else their leases run out first)."""
        if not tasks:
            return
        with contextlib.suppress(SQLAlchemyError, OSError):
            async with self._sessions() as session:
                await queue.release(session, tasks)
                await session.commit()

    async def execute(self, task: ClaimedTask) -> None:
        """Run a task this process claimed itself, outside the loop (the OpenAI
        route runs a synchronous provider's submit in the request): with the
        loop's heartbeat, and its retry handling if it fails."""
        await self._execute(task)

    async def _claim(self, limit: int) -> list[ClaimedTask]:
        try:
            async with self._claim_sessions() as session:
                tasks = await queue.claim(session, limit, self._lease)
                await session.commit()
                return tasks
        except (SQLAlchemyError, OSError) as exc:
            log.warning("claiming tasks failed (%s); will retry", type(exc).__name__)
            return []

    async def _wait_for_work(self) -> None:
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._hub.tasks_due.wait())]
        if self._running and len(self._running) >= self._settings.worker_concurrency:
            waits.append(
                asyncio.ensure_future(
                    asyncio.wait(list(self._running), return_when=asyncio.FIRST_COMPLETED)
                )
            )
        try:
            await asyncio.wait(
                waits,
                timeout=self._hub.seconds_to_next_task(self._settings.worker_poll_seconds),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _execute(self, task: ClaimedTask) -> None:
        # This asyncio task has its own context: every log line of the run (and
        # every task it enqueues) carries the job and the request that caused it.
        logs.job_id.set(task.job_id)
        logs.request_id.set(task.request_id)
        heartbeat = asyncio.create_task(self._heartbeat(task))
        try:
            handler = self._handlers[task.kind]
            await handler.run(task)
            log.info("task %s of job %s done", task.kind, task.job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._after_failure(task, exc)
        finally:
            heartbeat.cancel()
            # A task run by execute() held no slot of the loop: nothing to wake it for.
            if self._running.pop(asyncio.current_task(), None) is not None:  # type: ignore[arg-type]
                self._hub.tasks_due.set()  # a slot is free

    async def _heartbeat(self, task: ClaimedTask) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            try:
                async with self._sessions() as session:
                    await queue.extend_lease(session, task, self._lease)
                    await session.commit()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("lease heartbeat failed (%s)", type(exc).__name__)

    async def _after_failure(self, task: ClaimedTask, exc: Exception) -> None:
        retry_after = getattr(exc, "retry_after", None)
        message = f"{type(exc).__name__}: {exc}"[:1000]
        outage = database_unreachable(exc)
        if outage:
            # Not a bug: no traceback, and the error's text may name the host.
            message = f"the database is unreachable ({type(exc).__name__})"
        if not outage and retry_after is None and not hasattr(exc, "retry_after"):
            log.error(
                "task %s (%s) of job %s failed: %s",
                task.id,
                task.kind,
                task.job_id,
                message,
                exc_info=exc,
            )
        else:
            log.warning(
                "task %s (%s) of job %s will be retried: %s",
                task.id,
                task.kind,
                task.job_id,
                message,
            )

        async def record() -> None:
            async with self._sessions() as session:
                if task.attempts >= self._settings.task_max_attempts:
                    await self._handlers[task.kind].give_up(session, task, exc)
                    await queue.finish(session, task)
                else:
                    delay = retry_delay(
                        task.attempts,
                        base=self._settings.retry_base_seconds,
                        cap=self._settings.retry_max_seconds,
                        retry_after=retry_after,
                    )
                    # A job's deadline: the last retry comes at it, not after it.
                    not_after = getattr(exc, "retry_not_after", None)
                    if not_after is not None:
                        delay = min(delay, max(0.0, (not_after - utcnow()).total_seconds()))
                    await queue.reschedule(
                        session, task, utcnow() + timedelta(seconds=delay), error=message
                    )
                await commit(session, self._hub)

        try:
            # Through a short outage, so the task comes back on its backoff rather
            # than only when its lease runs out.
            await retry_while_unreachable(
                record, what=f"task {task.id}", give_up_after=self._lease.total_seconds()
            )
        except (SQLAlchemyError, OSError) as db_exc:
            # The lease runs out and the task is claimed again: nothing is lost.
            log.warning(
                "recording the failure of task %s failed (%s)", task.id, type(db_exc).__name__
            )
