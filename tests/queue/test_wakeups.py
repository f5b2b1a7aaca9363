"""Workers are woken for tasks they can claim, and only for those.

A task the OpenAI route inserts already leased, and runs in the request, is no
worker's to take: waking the workers for it costs every process a claim that
finds nothing (measured: about a tenth of the route's CPU per request).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from sqlalchemy import insert

from app.db import utcnow
from app.events import TASKS_CHANNEL, EventHub
from app.models import Task
from app.queue.repository import ClaimedTask, new_claim_token
from app.queue.worker import Worker
from app.runtime import asyncpg_dsn
from tests.support.gateway import gateway_settings


async def _insert_tasks(factory, *, leased: int, free: int) -> None:
    """One INSERT statement of ``leased`` claimed rows and ``free`` unclaimed ones."""
    now = utcnow()
    rows = [
        {"kind": "submit", "job_id": "job_1", "run_at": now + timedelta(minutes=5),
         "attempts": 1, "claim_token": new_claim_token()}
        for _ in range(leased)
    ] + [
        {"kind": "submit", "job_id": "job_1", "run_at": now, "attempts": 0, "claim_token": None}
        for _ in range(free)
    ]  # fmt: skip
    async with factory() as session:
        await session.execute(insert(Task), rows)
        await session.commit()


async def test_the_database_notifies_only_inserts_with_a_claimable_task(
    postgres_sessions, postgres_url
):
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(asyncpg_dsn(postgres_url))
    await listener.add_listener(TASKS_CHANNEL, lambda *args: heard.put_nowait(args[2]))
    try:
        await _insert_tasks(postgres_sessions, leased=1, free=0)  # silent
        await _insert_tasks(postgres_sessions, leased=0, free=1)  # one NOTIFY
        await _insert_tasks(postgres_sessions, leased=2, free=1)  # one NOTIFY for the statement
        await _insert_tasks(postgres_sessions, leased=3, free=0)  # silent
        await _insert_tasks(postgres_sessions, leased=0, free=2)  # one NOTIFY: the last
        # Notifications arrive in commit order: once the last insert's has come,
        # any from the silent ones would have come before it.
        for _ in range(3):
            await asyncio.wait_for(heard.get(), timeout=10)
        await asyncio.sleep(0.2)
        assert heard.empty()
    finally:
        await listener.close()


class _Finishes:
    async def run(self, task: ClaimedTask) -> None:
        await asyncio.sleep(0)

    async def give_up(self, session, task, error) -> None:
        raise AssertionError("not expected")


async def test_a_task_run_outside_the_loop_does_not_wake_it(sessions, database_url, tmp_path):
    hub = EventHub()
    settings = gateway_settings(database_url, tmp_path)
    worker = Worker(sessions, hub, {"submit": _Finishes()}, settings)
    task = ClaimedTask(1, "submit", "job_1", 1, new_claim_token())
    await worker.execute(task)  # as the OpenAI route runs its own job's submit
    assert not hub.tasks_due.is_set()
