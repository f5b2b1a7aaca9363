"""Fixtures: a real PostgreSQL for the session, migrated databases, running gateways."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.migrate import upgrade_to_head
from tests.support.gateway import ThreadedGateway, create_key, gateway_settings, start_threaded
from tests.support.postgres import (
    PostgresServer,
    admin,
    clone_database,
    drop_database,
    free_port,
    sqlalchemy_url,
)
from tests.support.receiver import Receivers, WebhookReceiver

DATA = Path(__file__).parent / "data"
SPEECH_WAV = DATA / "hello-16k-mono.wav"
SPEECH_WAV_STEREO = DATA / "hello-44k-stereo.wav"
# One per pytest-xdist worker: workers may share a TEST_POSTGRES_URL server.
_TEMPLATE = f"stt_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """``TEST_POSTGRES_URL`` if given, else a server started for this session."""
    given = os.environ.get("TEST_POSTGRES_URL")
    if given:
        yield given
        return
    server = PostgresServer()
    server.start()
    try:
        yield server.admin_dsn
    finally:
        server.stop("immediate")
        server.remove()


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_dsn: str) -> str:
    """A database built by the real migrations, cloned for each test."""
    admin(
        postgres_admin_dsn,
        f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)',
        f'CREATE DATABASE "{_TEMPLATE}"',
    )
    upgrade_to_head(sqlalchemy_url(postgres_admin_dsn, _TEMPLATE))
    return _TEMPLATE


@pytest.fixture
def postgres_url(postgres_admin_dsn: str, postgres_template: str) -> Iterator[str]:
    name = clone_database(postgres_admin_dsn, postgres_template)
    yield sqlalchemy_url(postgres_admin_dsn, name)
    drop_database(postgres_admin_dsn, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade_to_head(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "gateway.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The core paths run on both backends."""
    fixture = "postgres_url" if request.param == "postgres" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(database_url: str, **overrides: object) -> Settings:
        return gateway_settings(database_url, tmp_path / "blobs", **overrides)

    return make


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., ThreadedGateway]]:
    started: list[ThreadedGateway] = []

    def start(settings: Settings, port: int | None = None) -> ThreadedGateway:
        gateway = start_threaded(settings, port)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """``receiver(*secrets)`` starts a webhook receiver; every one is stopped at the end."""
    receivers = Receivers()
    yield receivers.start
    receivers.stop_all()


@pytest.fixture
def vendor_gateway(
    postgres_url: str,
    make_settings: Callable[..., Settings],
    start_gateway: Callable[..., ThreadedGateway],
) -> Callable[..., tuple[ThreadedGateway, str]]:
    """A gateway on PostgreSQL whose settings point at a fake vendor, and an API key.

    ``public=True`` (the default) sets PUBLIC_BASE_URL to the gateway's own
    address, so vendors are given callback and media links on loopback.
    Settings are given by their environment names: vendor_gateway(DAGLO_API_KEY="k").
    """

    def start(public: bool = True, **settings: object) -> tuple[ThreadedGateway, str]:
        port = free_port()
        overrides = {name.lower(): value for name, value in settings.items()}
        if public:
            overrides.setdefault("public_base_url", f"http://127.0.0.1:{port}")
        gateway = start_gateway(make_settings(postgres_url, **overrides), port)
        return gateway, create_key(postgres_url, "acme")

    return start
