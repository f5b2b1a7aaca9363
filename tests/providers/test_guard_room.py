"""VendorGuard.has_room: whether an early upload may start beside the calls under way."""

from __future__ import annotations

from app.providers.guard import VendorGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _guard(clock: Clock) -> VendorGuard:
    return VendorGuard(max_in_flight=2, failure_threshold=2, open_seconds=30.0, clock=clock)


def test_room_counts_the_calls_in_flight_and_those_about_to_start() -> None:
    guard = _guard(Clock())
    assert guard.has_room("openai")
    guard.acquire("openai")
    assert guard.has_room("openai") and not guard.has_room("openai", pending=1)
    guard.release("openai", failed=False)
    assert guard.has_room("openai", pending=1)


def test_no_room_while_the_breaker_is_open_or_half_open() -> None:
    clock = Clock()
    guard = _guard(clock)
    for _ in range(2):
        guard.acquire("openai")
        guard.release("openai", failed=True)
    assert not guard.has_room("openai")  # open
    clock.now += 31.0
    assert not guard.has_room("openai")  # half-open: its one trial goes the usual way
    guard.acquire("openai")
    guard.release("openai", failed=False)
    assert guard.has_room("openai")  # closed again
