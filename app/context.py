"""What the API and the worker share in one process, built once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from aiohttp.abc import AbstractResolver
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_session_factory
from app.events import EventHub
from app.http_transport import AiohttpTransport, PublicAddressResolver
from app.providers.guard import VendorGuard
from app.providers.registry import ProviderRegistry
from app.queue.worker import Worker
from app.signing import LinkSigner, load_or_create_key
from app.storage import LocalStorage


@dataclass
class GatewayContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Single reads need no transaction: no BEGIN/ROLLBACK round trips.
    autocommit_sessions: async_sessionmaker[AsyncSession]
    hub: EventHub
    http: httpx.AsyncClient
    # For the URLs clients give us (source_url, callback_url): unless
    # ALLOW_PRIVATE_URLS, it connects to public addresses only.
    client_urls_http: httpx.AsyncClient
    storage: LocalStorage
    providers: ProviderRegistry
    signer: LinkSigner
    guard: VendorGuard  # the worker's per-vendor limits and circuit breakers
    # Runs a task a request claimed itself; set when the background work starts
    task_runner: Worker | None = None

    @classmethod
    def build(cls, settings: Settings) -> GatewayContext:
        engine = create_engine(settings.database_url, settings.database_pool_size)
        http = _http_client()
        client_urls_http = (
            http if settings.allow_private_urls else _http_client(PublicAddressResolver)
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            autocommit_sessions=create_session_factory(
                engine.execution_options(isolation_level="AUTOCOMMIT")
            ),
            hub=EventHub(),
            http=http,
            client_urls_http=client_urls_http,
            storage=LocalStorage(settings.storage_dir),
            providers=ProviderRegistry.from_settings(settings, http),
            signer=LinkSigner(
                load_or_create_key(
                    settings.signing_secret.get_secret_value() if settings.signing_secret else None,
                    settings.storage_dir,
                )
            ),
            guard=VendorGuard(
                max_in_flight=settings.provider_max_in_flight,
                failure_threshold=settings.breaker_failure_threshold,
                open_seconds=settings.breaker_open_seconds,
            ),
        )

    def sessions_for(self, one_statement: bool) -> async_sessionmaker[AsyncSession]:
        """For a write that PostgreSQL makes in ``one_statement`` (atomic by itself):
        autocommit sessions, which spare the BEGIN and COMMIT round trips. For
        anything else (SQLite runs those writes statement by statement), transactions."""
        if one_statement and self.engine.dialect.name == "postgresql":
            return self.autocommit_sessions
        return self.sessions

    async def aclose(self) -> None:
        self.providers.close()
        await self.http.aclose()
        if self.client_urls_http is not self.http:
            await self.client_urls_http.aclose()
        await self.engine.dispose()


def _http_client(resolver: Callable[[], AbstractResolver] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        transport=AiohttpTransport(httpx.Limits(max_connections=100), resolver),
        follow_redirects=False,
    )
