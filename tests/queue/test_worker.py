"""The worker loop with handlers of the test's own: retries, Retry-After, give-up, leases."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from app.db import utcnow
from app.events import EventHub, commit
from app.models import Task
from app.providers.base import RetryableProviderError
from app.queue import repository as queue
from app.queue.repository import ClaimedTask
from app.queue.worker import Worker
from tests.support.gateway import gateway_settings


class Recorder:
    """Fails the first ``failures`` runs (Retry-After ``retry_after``), then finishes."""

    def __init__(self, factory, hub, failures: int, retry_after: float | None = None) -> None:
        self.factory, self.hub = factory, hub
        self.failures, self.retry_after = failures, retry_after
        self.runs: list[tuple[float, int]] = []
        self.gave_up: list[str] = []
        self.done = asyncio.Event()

    async def run(self, task: ClaimedTask) -> None:
        self.runs.append((time.monotonic(), task.attempts))
        if len(self.runs) <= self.failures:
            raise RetryableProviderError("vendor busy", retry_after=self.retry_after)
        async with self.factory() as session:
            await queue.finish(session, task)
            await commit(session, self.hub)
        self.done.set()

    async def give_up(self, session, task, error) -> None:
        self.gave_up.append(str(error))
        self.done.set()


@pytest.fixture
def setup(sessions, database_url, tmp_path):
    return sessions, lambda **kw: gateway_settings(database_url, tmp_path, **kw)


@contextlib.asynccontextmanager
async def _running(worker: Worker) -> AsyncIterator[None]:
    runner = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        await worker.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def _run_until(worker: Worker, event: asyncio.Event, seconds: float) -> None:
    async with _running(worker):
        await asyncio.wait_for(event.wait(), seconds)


async def _enqueue(factory, hub) -> None:
    async with factory() as session:
        await queue.enqueue(session, "test", "job_1")
        await commit(session, hub)


async def test_retry_after_is_honoured(setup):
    factory, settings = setup
    hub = EventHub()
    recorder = Recorder(factory, hub, failures=1, retry_after=1.5)
    worker = Worker(factory, hub, {"test": recorder}, settings(worker_poll_seconds=0.1))
    await _enqueue(factory, hub)
    await _run_until(worker, recorder.done, 20)
    (first, _), (second, attempts) = recorder.runs
    assert second - first >= 1.5
    assert attempts == 2


async def test_backoff_grows_then_the_handler_gives_up(setup):
    factory, settings = setup
    hub = EventHub()
    recorder = Recorder(factory, hub, failures=99)
    worker = Worker(
        factory,
        hub,
        {"test": recorder},
        settings(
            worker_poll_seconds=0.05,
            retry_base_seconds=0.2,
            retry_max_seconds=5,
            task_max_attempts=4,
        ),
    )
    await _enqueue(factory, hub)
    await _run_until(worker, recorder.done, 30)
    assert [attempts for _, attempts in recorder.runs] == [1, 2, 3, 4]
    gaps = [b[0] - a[0] for a, b in zip(recorder.runs, recorder.runs[1:], strict=False)]
    # Equal jitter: attempt n waits between half and all of 0.2·2^(n-1) seconds.
    for n, gap in enumerate(gaps, start=1):
        assert 0.1 * 2 ** (n - 1) - 0.05 <= gap <= 0.2 * 2 ** (n - 1) + 0.5, gaps
    assert recorder.gave_up == ["vendor busy"]
    async with factory() as session:
        assert await session.get(Task, 1) is None  # finished with the give-up


async def test_a_task_claimed_by_a_dead_worker_runs_after_the_lease(setup):
    factory, settings = setup
    hub = EventHub()
    await _enqueue(factory, hub)
    async with factory() as session:  # a worker claims it, then "dies"
        (claimed,) = await queue.claim(session, 1, timedelta(seconds=1))
        await session.commit()
    recorder = Recorder(factory, hub, failures=0)
    worker = Worker(factory, hub, {"test": recorder}, settings(worker_poll_seconds=0.1))
    started = time.monotonic()
    await _run_until(worker, recorder.done, 20)
    assert recorder.runs[0][1] == 2  # the second claim of the same task
    assert time.monotonic() - started >= 0.5
    del claimed


async def test_in_flight_tasks_are_bounded(setup):
    factory, settings = setup
    hub = EventHub()
    running = 0
    peak = 0
    finished = asyncio.Event()
    count = 0

    class Slow:
        async def run(self, task: ClaimedTask) -> None:
            nonlocal running, peak, count
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.1)
            async with factory() as session:
                await queue.finish(session, task)
                await session.commit()
            running -= 1
            count += 1
            if count == 12:
                finished.set()

        async def give_up(self, session, task, error) -> None:
            raise AssertionError(error)

    async with factory() as session:
        session.add_all([Task(kind="slow", job_id="job_1", run_at=utcnow()) for _ in range(12)])
        await session.commit()
    worker = Worker(factory, hub, {"slow": Slow()}, settings(worker_concurrency=3))
    await _run_until(worker, finished, 20)
    assert peak == 3


async def _enqueue_at(factory, hub, seconds: float) -> None:
    async with factory() as session:
        await queue.enqueue(session, "test", "job_1", run_at=utcnow() + timedelta(seconds=seconds))
        await commit(session, hub)


async def test_a_task_scheduled_for_later_runs_when_due_not_at_the_next_poll(setup):
    factory, settings = setup
    hub = EventHub()
    recorder = Recorder(factory, hub, failures=0)
    worker = Worker(factory, hub, {"test": recorder}, settings(worker_poll_seconds=60))
    async with _running(worker):
        await asyncio.sleep(0.2)  # the worker has found nothing and sleeps for its poll
        scheduled = time.monotonic()
        await _enqueue_at(factory, hub, 1.0)
        await asyncio.wait_for(recorder.done.wait(), 10)
    [(ran, _)] = recorder.runs
    assert 0.9 <= ran - scheduled < 3  # not before it is due, and not 60 s later


async def test_a_sooner_task_shortens_the_sleep_until_a_later_one(setup):
    factory, settings = setup
    hub = EventHub()
    recorder = Recorder(factory, hub, failures=0)
    worker = Worker(factory, hub, {"test": recorder}, settings(worker_poll_seconds=60))
    await _enqueue_at(factory, hub, 30.0)  # the worker will sleep until this one
    async with _running(worker):
        await asyncio.sleep(0.2)
        scheduled = time.monotonic()
        await _enqueue_at(factory, hub, 0.5)
        await asyncio.wait_for(recorder.done.wait(), 10)
    [(ran, _)] = recorder.runs
    assert 0.4 <= ran - scheduled < 3
