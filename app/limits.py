"""Per-client limits of the gateway itself, answered with 429 and ``Retry-After``.

Two of them, both off unless set (app.config):

* ``RATE_LIMIT_PER_SECOND`` / ``RATE_LIMIT_BURST``: a token bucket per client,
  taken from by every authenticated request (app.deps). The buckets live in
  this process's memory: with N gateway processes a client may make N times
  the setting. A shared store (Redis, PostgreSQL) would make it exact at the
  cost of a round trip per request.
* ``MAX_JOBS_IN_FLIGHT``: how many of a client's jobs may be queued or
  processing. Counted in the database when a job is asked for, before its
  upload is read, so it holds across processes; uploads that arrive at the
  same moment are each counted before any of them is stored, so a burst of
  them can pass the limit by a few.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.context import GatewayContext
from app.errors import RateLimited
from app.jobs.schemas import JobStatus
from app.metrics import rate_limited
from app.models import Job

# Clients remembered at once per process: about 2 MB at most. The least recently
# seen is forgotten first; its bucket has most likely refilled, so nothing is lost.
MAX_TRACKED_CLIENTS = 10_000

# A job takes seconds to hours: a client at its limit should look again soon, not spin.
IN_FLIGHT_RETRY_AFTER_SECONDS = 5
IN_FLIGHT_STATUSES = (JobStatus.queued.value, JobStatus.processing.value)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int  # whole requests left in the bucket
    retry_after: int  # whole seconds until one more is allowed; 0 when allowed


@dataclass
class _Bucket:
    tokens: float
    updated: float  # clock time of the last refill


class TokenBuckets:
    """One bucket per key: ``rate`` tokens a second, holding at most ``burst``.

    Lock-free: ``take`` never awaits, so on the event loop no other request can
    run in the middle of it. Call it only from the loop (async code), never
    from a thread pool.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst and max_keys >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently seen first

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> Decision:
        """Take one token for ``key`` if there is one; a refused request takes none."""
        now = self._clock()
        bucket = self._bucket(key, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return Decision(allowed=True, remaining=math.floor(bucket.tokens), retry_after=0)
        wait = (1 - bucket.tokens) / self.rate
        # Rounded up (Retry-After is whole seconds), so that waiting it is always enough.
        return Decision(allowed=False, remaining=0, retry_after=max(1, math.ceil(wait)))

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
            return bucket
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)
        bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        return bucket


def request_buckets(settings: Settings) -> TokenBuckets | None:
    """The buckets ``RATE_LIMIT_PER_SECOND`` asks for; ``None`` when it is off."""
    rate = settings.rate_limit_per_second
    if rate <= 0:
        return None
    burst = settings.rate_limit_burst or max(1, math.ceil(rate))
    return TokenBuckets(rate, burst)


def check_request_rate(buckets: TokenBuckets | None, client_id: str) -> None:
    """One request of ``client_id``: refused with a 429 when its bucket is empty."""
    if buckets is None:
        return
    decision = buckets.take(client_id)
    if decision.allowed:
        return
    rate_limited("requests_per_second")
    raise RateLimited(
        f"too many requests: this API key may make {buckets.rate:g} requests per second "
        f"(bursts of {buckets.burst}); try again in {decision.retry_after} s",
        retry_after=decision.retry_after,
        headers={
            "RateLimit-Limit": str(buckets.burst),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(decision.retry_after),
        },
    )


async def check_jobs_in_flight(ctx: GatewayContext, client_id: str) -> None:
    """Before a new job's body is read: a 429 when the client has its fill of jobs
    queued or processing. No query at all when ``MAX_JOBS_IN_FLIGHT`` is off."""
    limit = ctx.settings.max_jobs_in_flight
    if limit <= 0:
        return
    # A single read in autocommit: no transaction, the connection back at once.
    async with ctx.autocommit_sessions() as session:
        in_flight = await count_jobs_in_flight(session, client_id)
    if in_flight < limit:
        return
    rate_limited("jobs_in_flight")
    raise RateLimited(
        f"{in_flight} of your jobs are queued or processing, and the limit is {limit}: "
        "try again once one has finished (or cancel one)",
        retry_after=IN_FLIGHT_RETRY_AFTER_SECONDS,
    )


async def count_jobs_in_flight(session: AsyncSession, client_id: str) -> int:
    # Answered from the index ix_jobs_client_id_status_created_at_id.
    query = (
        select(func.count())
        .select_from(Job)
        .where(Job.client_id == client_id, Job.status.in_(IN_FLIGHT_STATUSES))
    )
    return int(await session.scalar(query) or 0)
