"""Client-side pacing for vendors that document a request rate per endpoint.

Each endpoint gets one ``Spacing`` for the whole process, shared by every
adapter instance (the vendor counts requests per account, not per instance).
"""

from __future__ import annotations

import asyncio
import threading
import time


class Spacing:
    """Request starts at least 1/``per_second`` apart, measured when each goes:
    a caller sleeps until the next free moment and looks again (so a loop stalled
    past several slots does not release a burst). The lock is a threading one,
    held for no await, so loops in several threads can share it."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    async def wait(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                if now >= self._next:
                    self._next = now + self._interval
                    return
                delay = self._next - now
            await asyncio.sleep(delay)


_SPACINGS: dict[tuple[str, float], Spacing] = {}
_SPACINGS_LOCK = threading.Lock()


def spacing(endpoint: str, per_second: float) -> Spacing:
    """The process's pacing of ``endpoint`` at ``per_second`` requests a second."""
    with _SPACINGS_LOCK:
        return _SPACINGS.setdefault((endpoint, per_second), Spacing(per_second))
