"""Wake-ups inside and across processes: "a task is due" and "a job changed".

A change is announced inside the transaction that makes it. On PostgreSQL that
is a ``pg_notify``, which the server delivers only on commit, to every process
listening; in this process the announcement is dispatched right after commit.
Either may be lost (a listener reconnecting): waiters also poll, so a lost
wake-up costs latency, never correctness.

A task scheduled for later (a poll, a retry) wakes nobody when it is written:
this process's worker notes when it falls due and wakes itself then, instead
of finding it at its next poll (up to WORKER_POLL_SECONDS late).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql import ColumnElement

from app.db import CONNECT_TIMEOUT_SECONDS, on_postgres, utcnow

log = logging.getLogger(__name__)

TASKS_CHANNEL = "stt_tasks"
JOBS_CHANNEL = "stt_jobs"
_PENDING = "pending_announcements"


class EventHub:
    """One per process: the worker's wake-up and the waiters on each job."""

    def __init__(self) -> None:
        self.tasks_due = asyncio.Event()
        self._later: list[datetime] = []  # a heap: when tasks this process scheduled fall due
        self._job_waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    def dispatch(self, channel: str, payload: str) -> None:
        if channel == TASKS_CHANNEL:
            due = datetime.fromisoformat(payload) if payload else None
            if due is not None and due > utcnow():
                sooner = not self._later or due < self._later[0]
                heapq.heappush(self._later, due)
                if not sooner:
                    return  # the worker sleeps until an earlier time already
            self.tasks_due.set()  # due now, or the worker must shorten its sleep
        elif channel == JOBS_CHANNEL:
            for waiter in self._job_waiters.get(payload, ()):
                waiter.set()

    def seconds_to_next_task(self, longest: float) -> float:
        """How long a worker may sleep before a task this process scheduled falls
        due (at most ``longest``). The times that have passed are forgotten: the
        claim that follows takes their tasks."""
        now = utcnow()
        while self._later and self._later[0] <= now:
            heapq.heappop(self._later)
        if not self._later:
            return longest
        return min(longest, (self._later[0] - now).total_seconds())

    async def wait_for_job(self, job_id: str, max_seconds: float) -> None:
        """Return when ``job_id`` is announced as changed, or after ``max_seconds``."""
        waiter = asyncio.Event()
        self._job_waiters[job_id].add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), max_seconds)
        finally:
            waiters = self._job_waiters.get(job_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._job_waiters[job_id]


async def announce(
    session: AsyncSession, channel: str, payload: str = "", *, by_trigger: bool = False
) -> None:
    """Announce a change made in ``session``'s transaction, delivered on commit.

    ``by_trigger``: the database sends the NOTIFY itself (a trigger on inserts
    into tasks, see migration 0002, or a ``notify_column`` in the statement that
    made the change), so only this process's waiters are left to wake.
    """
    if not by_trigger and on_postgres(session):
        await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})
    session.info.setdefault(_PENDING, []).append((channel, payload))


def notifying(session: AsyncSession, channel: str | None) -> str | None:
    """The channel a statement may NOTIFY itself (``notify_column``): PostgreSQL's
    only; None elsewhere."""
    return channel if on_postgres(session) else None


def notify_column(
    channel: str | None, payload: ColumnElement[str] | QueryableAttribute[str]
) -> list[ColumnElement[Any]]:
    """``pg_notify(channel, payload)`` to add to a statement's RETURNING (nothing
    without a channel, see ``notifying``): the NOTIFY then rides on the change
    itself instead of costing a round trip of its own. Announce with
    ``by_trigger=True``."""
    return [func.pg_notify(channel, payload)] if channel else []


async def commit(session: AsyncSession, hub: EventHub) -> None:
    """Commit, then wake this process's waiters for what the transaction announced."""
    await session.commit()
    for channel, payload in session.info.pop(_PENDING, []):
        hub.dispatch(channel, payload)


def discard_announcements(session: AsyncSession) -> None:
    session.info.pop(_PENDING, None)


class PostgresListener:
    """LISTENs on both channels from one dedicated connection, reconnecting forever."""

    def __init__(self, dsn: str, hub: EventHub, connect: Callable[[str], Awaitable[Any]]):
        self._dsn = dsn
        self._hub = hub
        self._connect = connect
        self.connected = asyncio.Event()

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._hub.dispatch(channel, payload)

    async def run(self) -> None:
        while True:
            try:
                conn = await asyncio.wait_for(self._connect(self._dsn), CONNECT_TIMEOUT_SECONDS)
            except Exception as exc:  # refused, timed out, or the server still starting up
                log.warning("LISTEN connection failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(2)
                continue
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _conn, closed=closed: closed.set())
            try:
                for channel in (TASKS_CHANNEL, JOBS_CHANNEL):
                    await conn.add_listener(channel, self._on_notify)
                self.connected.set()
                # Whatever was announced while we were away: let the pollers look now.
                self._hub.tasks_due.set()
                await closed.wait()
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
            log.warning("LISTEN connection lost; reconnecting")
            await asyncio.sleep(1)
