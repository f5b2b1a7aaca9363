"""Fixtures of the fault tests: webhook receivers and gateway processes that are
always stopped, whatever the test did to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    started: list[WebhookReceiver] = []

    def start(*secrets: str) -> WebhookReceiver:
        started.append(WebhookReceiver(*secrets).start())
        return started[-1]

    yield start
    for hook in started:
        hook.stop()


@pytest.fixture
def processes() -> Iterator[list[GatewayProcess]]:
    """Append every process started; each is terminated (or found dead) at the end."""
    started: list[GatewayProcess] = []
    yield started
    for process in started:
        process.terminate()
