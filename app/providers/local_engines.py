"""The local engine's processes, each a pool of its own, so one job's work can be stopped.

A shared ``ProcessPoolExecutor`` cannot stop a call once it has started: a
canceled or deleted job's recognition ran to its end, holding its process
(with LOCAL_ENGINE_PROCESSES=1, a canceled 97 s clip kept the next job waiting
for 40 s). Here every engine process is a single-worker pool, a job takes a
free one (or waits for one), and stopping the job kills that process and
starts another in its place at once.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


class EngineStopped(Exception):
    """The job's work was stopped on purpose (``EnginePool.stop``)."""


class Engine:
    """One engine process, in a pool of its own."""

    def __init__(self, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
        self.pool = ProcessPoolExecutor(
            max_workers=1,
            # Not fork: the parent runs an event loop and threads a child must not inherit.
            mp_context=multiprocessing.get_context("spawn"),
            initializer=initializer,
            initargs=initargs,
        )
        # Started now rather than at its first job: spawning the process and
        # loading the model take about a second.
        self.pool.submit(os.getpid)

    def kill(self) -> None:
        for process in list((self.pool._processes or {}).values()):
            process.kill()
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class EnginePool:
    """``size`` engines, started when first needed; a job runs on a free one.

    Not bound to one event loop (a waiter is a future of the loop that waits),
    but used from one thread.
    """

    def __init__(self, size: int, start: Callable[[], Engine]) -> None:
        self._start = start
        self._engines: list[Engine | None] = [None] * size
        self._free = list(range(size))
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._jobs: dict[str, int] = {}  # job id → the engine working on it
        self._stopped: set[str] = set()

    @property
    def started(self) -> bool:
        return any(engine is not None for engine in self._engines)

    def running(self, job_id: str) -> bool:
        return job_id in self._jobs

    async def run(self, job_id: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a free engine. Canceled (the caller gave up on the job:
        canceled, deleted, past its deadline), it kills the engine, which is
        replaced. Raises ``EngineStopped`` after ``stop(job_id)``, and
        ``BrokenProcessPool`` when the engine died of something else."""
        index = await self._acquire()
        engine = self._engines[index] or self._replace(index)
        self._jobs[job_id] = index
        try:
            future = engine.pool.submit(fn, *args)
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                if not future.cancelled():  # it had started: only a kill stops it
                    self._replace(index, engine)
                raise
        except BrokenProcessPool:
            if self._engines[index] is engine:
                self._replace(index, engine)
            if job_id in self._stopped:
                raise EngineStopped(job_id) from None
            raise
        finally:
            if self._jobs.get(job_id) == index:
                del self._jobs[job_id]
            self._stopped.discard(job_id)
            self._release(index)

    def stop(self, job_id: str) -> bool:
        """Kill the engine working on ``job_id`` (False: none is, in this process)."""
        index = self._jobs.pop(job_id, None)
        if index is None:
            return False
        engine = self._engines[index]
        self._stopped.add(job_id)
        if engine is not None:
            self._replace(index, engine)
        return True

    def close(self) -> None:
        for index, engine in enumerate(self._engines):
            if engine is not None:
                engine.close()
                self._engines[index] = None

    def _replace(self, index: int, dead: Engine | None = None) -> Engine:
        if dead is not None:
            dead.kill()
        engine = self._engines[index] = self._start()
        return engine

    async def _acquire(self) -> int:
        if self._free and not self._waiters:
            return self._free.pop()
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over as the wait was canceled
            raise

    def _release(self, index: int) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(index)
                return
        self._free.append(index)
