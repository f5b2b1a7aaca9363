"""The migrations build the schema the models describe, and can go down and up again."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from app.db import create_engine
from app.migrate import alembic_config, head_revision, upgrade_to_head
from app.models import Base


def _differences(url: str) -> list:
    def compare(connection: Connection) -> list:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)

    async def run() -> list:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_migrated_schema_matches_the_models(database_url):
    assert _differences(database_url) == []


def test_downgrade_to_base_and_upgrade_again(database_url):
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    upgrade_to_head(database_url)
    upgrade_to_head(database_url)  # a second run is a no-op
    assert _differences(database_url) == []
    assert head_revision() is not None
