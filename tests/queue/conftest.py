"""A database with one client and one job ("job_1") for the queue's tasks to hang on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import create_engine, create_session_factory
from app.models import Client, Job


async def _seeded(database_url: str) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    factory = create_session_factory(engine)
    async with factory() as session:
        session.add(Client(id="cli_1", name="acme", key_hash="0" * 64, key_prefix="sk_x",
                           webhook_secret="whsec_x"))  # fmt: skip
        session.add(Job(id="job_1", client_id="cli_1", provider="local", status="queued",
                        source={"type": "url", "url": "https://example.com/a.wav"},
                        artifacts=[]))  # fmt: skip
        await session.commit()
    return engine, factory


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """On both backends."""
    engine, factory = await _seeded(database_url)
    yield factory
    await engine.dispose()


@pytest.fixture
async def postgres_sessions(postgres_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine, factory = await _seeded(postgres_url)
    yield factory
    await engine.dispose()
