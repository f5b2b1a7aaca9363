"""The task queue on real databases: exclusive claims, leases, retries."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from app.db import utcnow
from app.models import Task
from app.queue import repository as queue


async def _add_tasks(factory, count: int) -> set[int]:
    async with factory() as session:
        tasks = [Task(kind="submit", job_id="job_1", run_at=utcnow()) for _ in range(count)]
        session.add_all(tasks)
        await session.commit()
        return {t.id for t in tasks}


async def test_concurrent_claimers_never_share_a_task(sessions):
    created = await _add_tasks(sessions, 300)
    lease = timedelta(minutes=5)

    async def claimer() -> list[int]:
        taken: list[int] = []
        while True:
            async with sessions() as session:
                batch = await queue.claim(session, 7, lease)
                await session.commit()
            if not batch:
                return taken
            taken += [t.id for t in batch]
            await asyncio.sleep(0)

    results = await asyncio.gather(*(claimer() for _ in range(4)))
    everything = [task_id for taken in results for task_id in taken]
    assert len(everything) == len(set(everything)) == 300
    assert set(everything) == created


async def test_an_open_claim_is_skipped_not_waited_for(postgres_sessions):
    factory = postgres_sessions
    await _add_tasks(factory, 10)
    lease = timedelta(minutes=5)
    async with factory() as first, factory() as second:
        a = await queue.claim(first, 5, lease)  # transaction left open: rows stay locked
        b = await asyncio.wait_for(queue.claim(second, 10, lease), timeout=5)
        assert len(a) == 5 and len(b) == 5
        assert not {t.id for t in a} & {t.id for t in b}
        await second.commit()
        await first.commit()


async def test_a_dead_workers_task_is_claimed_again_after_its_lease(sessions):
    (task_id,) = await _add_tasks(sessions, 1)
    async with sessions() as session:
        (dead,) = await queue.claim(session, 10, timedelta(seconds=0.5))
        await session.commit()
        assert await queue.claim(session, 10, timedelta(seconds=30)) == []  # leased
        await session.commit()
    await asyncio.sleep(0.7)
    async with sessions() as session:
        (again,) = await queue.claim(session, 10, timedelta(seconds=30))
        await session.commit()
    assert again.id == dead.id == task_id
    assert again.attempts == 2
    async with sessions() as session:
        assert await queue.finish(session, dead) is False  # the dead worker lost its claim
        assert await queue.finish(session, again) is True
        await session.commit()
        assert (await session.scalars(select(Task))).all() == []


async def test_rescheduled_task_is_not_due_before_its_time(sessions):
    await _add_tasks(sessions, 1)
    async with sessions() as session:
        (task,) = await queue.claim(session, 1, timedelta(seconds=30))
        await queue.reschedule(session, task, utcnow() + timedelta(seconds=1), error="boom")
        await session.commit()
        assert await queue.claim(session, 1, timedelta(seconds=30)) == []
        await session.commit()
    await asyncio.sleep(1.1)
    async with sessions() as session:
        (task,) = await queue.claim(session, 1, timedelta(seconds=30))
        await session.commit()
        stored = await session.get(Task, task.id)
        assert stored is not None and stored.last_error == "boom" and stored.attempts == 2
