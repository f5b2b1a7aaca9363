"""Keeps one bad vendor from hurting the others: a cap on calls in flight per
vendor, and a circuit breaker that stops calling a vendor that keeps failing.

Both live in the worker's memory, one set per process: each process learns a
vendor's health by itself, which costs at most ``failure_threshold`` failed
calls per process before its breaker opens.

Breaker states, per vendor::

    closed ──(threshold retryable failures in a row)──▶ open
    open ──(open_seconds later: one trial call allowed)──▶ half-open
    half-open ──success──▶ closed;  half-open ──failure──▶ open again

Only retryable failures count (timeouts, 5xx, 429, malformed answers): a
vendor that refuses one input is healthy.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from app.providers.base import RetryableProviderError


class VendorUnavailable(Exception):
    """The call was not made; try again in ``retry_in`` seconds."""

    def __init__(self, provider: str, reason: str, retry_in: float) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason  # "circuit_open" | "busy"
        self.retry_in = retry_in


@dataclass
class _Breaker:
    failures: int = 0  # retryable failures in a row
    open_until: float = 0.0  # closed when in the past
    trial_running: bool = False  # half-open: the one trial call is out


class VendorGuard:
    def __init__(
        self,
        *,
        max_in_flight: int,
        failure_threshold: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._threshold = failure_threshold
        self._open_seconds = open_seconds
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._breakers: dict[str, _Breaker] = {}

    def is_open(self, provider: str) -> bool:
        """True while calls to the vendor are refused (not in the half-open trial window)."""
        breaker = self._breakers.get(provider)
        return breaker is not None and self._clock() < breaker.open_until

    def has_room(self, provider: str, pending: int = 0) -> bool:
        """Whether a call could start now beside ``pending`` ones about to (the
        OpenAI route's early uploads): the breaker closed, a slot free for each."""
        breaker = self._breakers.get(provider)
        if breaker is not None and (
            self._clock() < breaker.open_until or breaker.failures >= self._threshold
        ):
            return False  # open, or half-open with its one trial call to make
        return self.in_flight(provider) + pending < self._max_in_flight

    def acquire(self, provider: str) -> None:
        """Take a call slot for the vendor, or raise VendorUnavailable at once."""
        breaker = self._breakers.setdefault(provider, _Breaker())
        now = self._clock()
        if now < breaker.open_until:
            raise VendorUnavailable(provider, "circuit_open", breaker.open_until - now)
        if breaker.failures >= self._threshold:  # half-open: one trial call at a time
            if breaker.trial_running:
                raise VendorUnavailable(provider, "circuit_open", 1.0)
            breaker.trial_running = True
        if self._in_flight.get(provider, 0) >= self._max_in_flight:
            breaker.trial_running = False
            raise VendorUnavailable(provider, "busy", 0.5)
        self._in_flight[provider] = self._in_flight.get(provider, 0) + 1

    def release(self, provider: str, *, failed: bool) -> None:
        """Give the slot back; ``failed``: the vendor failed in a retryable way."""
        self._in_flight[provider] -= 1
        breaker = self._breakers[provider]
        breaker.trial_running = False
        if not failed:
            breaker.failures, breaker.open_until = 0, 0.0
            return
        breaker.failures += 1
        if breaker.failures >= self._threshold:
            breaker.open_until = self._clock() + self._open_seconds

    @contextlib.contextmanager
    def slot(self, provider: str) -> Iterator[None]:
        """Hold a call slot around a vendor call; a RetryableProviderError counts
        as the vendor's failure (other errors are ours or the input's)."""
        self.acquire(provider)
        failed = False
        try:
            yield
        except RetryableProviderError:
            failed = True
            raise
        finally:
            self.release(provider, failed=failed)

    def in_flight(self, provider: str) -> int:
        return self._in_flight.get(provider, 0)
