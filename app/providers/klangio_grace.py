"""When the Klangio adapter first saw a job COMPLETED with some of its files missing.

Klangio's status answer is only ``{"status": …}``: no time of completion to
measure a grace from, and ``fetch`` gets no attempt count. So each adapter keeps
this small memory of its own. It is in memory only: a restart, or a poll landing
on another worker process, starts the grace again there. That costs at most one
more grace for the job, never a file, which is why it is acceptable.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# Far more jobs than are ever inside their grace at once: each entry is a job id
# and a float, so the memory stays small however long the process runs.
FIRST_SEEN_LIMIT = 10_000


class FirstSeen:
    """Job id -> when it was first noted. Past ``limit`` entries the oldest go first."""

    def __init__(
        self, limit: int = FIRST_SEEN_LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def waited(self, key: str) -> float:
        """Seconds since ``key`` was first noted; the first call notes it (0.0)."""
        now = self._clock()
        first = self._seen.setdefault(key, now)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return now - first

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
