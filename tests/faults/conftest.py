"""Fixtures of the fault tests: a fake Daglo that holds submits, and gateway processes
that are always stopped, whatever the test did to them. (Webhook receivers come from
``receiver`` in tests/conftest.py.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.faults.support import HoldingDaglo
from tests.support.gateway import GatewayProcess, gateway_env
from tests.support.postgres import free_port


@pytest.fixture
def processes() -> Iterator[list[GatewayProcess]]:
    """Append every process started; each is terminated (or found dead) at the end."""
    started: list[GatewayProcess] = []
    yield started
    for process in started:
        process.terminate()


@pytest.fixture
def daglo() -> Iterator[HoldingDaglo]:
    """A fake Daglo that holds its first ``hold`` submits until ``released``."""
    with HoldingDaglo() as fake:
        yield fake
        fake.released = True  # a held answer would keep it from stopping


@pytest.fixture
def daglo_gateway(daglo: HoldingDaglo) -> Callable[..., GatewayProcess]:
    """``daglo_gateway(settings, log_path, **env)``: a gateway process, not yet started,
    whose Daglo is the ``daglo`` fake; PUBLIC_BASE_URL is its own port, so the fake's
    callbacks reach it (and a process restarted on that port)."""

    def make(settings: Settings, log_path: Path, **extra: str) -> GatewayProcess:
        port = free_port()
        env = gateway_env(
            settings,
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            DAGLO_API_KEY=daglo.api_key,
            DAGLO_BASE_URL=daglo.base_url,
            **extra,
        )
        return GatewayProcess(env, log_path, port=port)

    return make
