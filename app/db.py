"""The engine, the session factory and the request-scoped session.

The API commits in one place (``request_session``); the worker commits at the
end of each short task step. Nothing else commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import DateTime, event, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

T = TypeVar("T")

# Long enough for a slow network and TLS, short enough that a request to a
# database host that does not answer gets its 503 instead of hanging (asyncpg
# waits 60 s by default).
CONNECT_TIMEOUT_SECONDS = 5.0

# SQLSTATEs of a server that is going away or not there yet: connection
# exceptions (class 08), admin_shutdown, crash_shutdown, cannot_connect_now.
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        # SQLite compares the stored text: keep one offset-free format there.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _prepare_sqlite(url: str) -> None:
    """Create the folder of an SQLite file, so the embedded default needs no setup."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers (API) and the writer (worker) work side by side;
    # busy_timeout makes a concurrent writer wait instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _replace_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A connection the server closed while it sat in the pool (a restart, an idle
    timeout, pg_terminate_backend) is replaced at checkout: asyncpg noticed the
    closed socket already, so this is a flag read, not a round trip."""
    if dbapi_conn._connection.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    if url.startswith("sqlite"):
        _prepare_sqlite(url)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping (a round trip per checkout): a connection closed while pooled is
    # replaced at checkout (_replace_if_closed); one that dies in use raises a
    # disconnect error, which invalidates the pool, and the request gets a 503.
    # A pool as large as the busiest moment: overflow connections are closed on
    # return, and reconnecting under load costs more than idle connections do
    # (a new one costs PostgreSQL a backend: 2.5 ms here, and its caches warming).
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def database_unreachable(error: BaseException) -> bool:
    """True when ``error`` says the database could not be reached (down, restarting,
    the connection lost or timed out), not that a statement was wrong."""
    if isinstance(error, ConnectionError | TimeoutError | exc.TimeoutError):
        return True  # refused or reset; the connect timeout; no pool slot free in time
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated or isinstance(error, exc.OperationalError | exc.InterfaceError):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return sqlstate.startswith(_UNREACHABLE_STATES)


async def retry_while_unreachable(
    write: Callable[[], Awaitable[T]], *, what: str, give_up_after: float = 600.0
) -> T:
    """Run ``write`` (a whole transaction) again while the database is unreachable.

    For a write whose cause cannot be had again, such as a vendor's answer to a
    submit: waiting out an outage beats dropping the answer on the floor.
    """
    deadline = time.monotonic() + give_up_after
    delay = 0.5
    while True:
        try:
            return await write()
        except Exception as error:
            if not database_unreachable(error) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "%s: the database is unreachable (%s); trying again in %.1f s",
                what,
                type(error).__name__,
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)  # soon after the database is back


def on_postgres(session: AsyncSession) -> bool:
    """Whether ``session`` talks to PostgreSQL (else SQLite, the embedded default)."""
    return session.get_bind().dialect.name == "postgresql"


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session, committed when the caller's block ends without an error."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
