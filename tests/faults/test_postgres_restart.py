"""PostgreSQL stopped in the middle of a run, then started again: while it is down
the gateway answers 503 with Retry-After (never a 500, never a hang) and stays
alive; once it is back the gateway recovers by itself and every job completes.

Each test has a PostgreSQL server of its own: stopping the session's server
would take every other test's database down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from app.db import CONNECT_TIMEOUT_SECONDS, create_engine, database_unreachable
from app.migrate import upgrade_to_head
from tests.faults.support import (
    HoldingDaglo,
    create_job,
    unique_wav,
    wait_all_terminal,
    wait_until,
)
from tests.support.gateway import GatewayProcess, create_client
from tests.support.postgres import PostgresServer, admin, sqlalchemy_url

OUTAGE_ANSWER_SECONDS = 5.0  # the longest a request may take while the database is down
RECOVERY_SECONDS = 15.0


@pytest.fixture
def own_postgres() -> Iterator[tuple[PostgresServer, str]]:
    """A PostgreSQL server for this test alone, migrated; and its database URL."""
    server = PostgresServer()
    server.start()
    try:
        admin(server.admin_dsn, 'CREATE DATABASE "gateway"')
        url = sqlalchemy_url(server.admin_dsn, "gateway")
        upgrade_to_head(url)
        yield server, url
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
            server.stop("immediate")
        server.remove()


def _assert_unavailable(call: Callable[[], httpx.Response]) -> None:
    started = time.monotonic()
    response = call()
    elapsed = time.monotonic() - started
    what = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), what
    assert response.json()["status"] == 503
    assert int(response.headers["retry-after"]) > 0, what
    assert elapsed < OUTAGE_ANSWER_SECONDS, f"{what} took {elapsed:.1f} s"


def _post_job(http: httpx.Client) -> httpx.Response:
    files = {"file": ("outage.wav", unique_wav(1000), "audio/wav")}
    return http.post("/jobs", files=files, data={"provider": "daglo"})


async def _listening(admin_dsn: str) -> int:
    """How many connections to the gateway's database are LISTENing (the last
    statement of the listener's connection is its LISTEN)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'gateway' "
            "AND query LIKE 'LISTEN%'"
        )
        return count
    finally:
        await conn.close()


def test_postgres_restarted_mid_run_costs_503s_and_loses_nothing(
    own_postgres: tuple[PostgresServer, str],
    make_settings: Callable[..., Any],
    daglo: HoldingDaglo,
    daglo_gateway: Callable[..., GatewayProcess],
    tmp_path: Path,
) -> None:
    server, database_url = own_postgres
    daglo.steps = ["transcribing"]
    daglo.step_seconds = 1.0  # jobs stay at the vendor across the outage
    # An outage shorter than the lease: no task is claimed again while its first run
    # still holds a vendor's answer (a longer one ends such a job in doubt).
    settings = make_settings(database_url, task_lease_seconds=15.0)
    client = create_client(database_url, "acme")
    gateway = daglo_gateway(settings, tmp_path / "gateway.log").start()
    auth = {"Authorization": f"Bearer {client.api_key}"}
    daglo.hold = 1  # the vendor answers the first submit only once the database is down
    try:
        with httpx.Client(base_url=gateway.base_url, headers=auth, timeout=30) as http:
            before = [create_job(http, index, provider="daglo")["id"] for index in range(10)]
            wait_until(
                "jobs are at the vendor",
                lambda: len(daglo.jobs) >= 3 and len(daglo.calls("submit")) >= 4,
                timeout=15,
            )

            server.stop("fast")
            daglo.released = True  # its answer must be recorded once the database is back
            for _ in range(3):  # the first finds dead pooled connections, the rest none
                _assert_unavailable(lambda: _post_job(http))
                _assert_unavailable(lambda: http.get("/jobs"))
                _assert_unavailable(lambda: http.get(f"/jobs/{before[-1]}"))
                _assert_unavailable(lambda: http.get("/readyz"))
                assert http.get("/healthz").status_code == 200  # alive all the same
            time.sleep(2)  # the worker, the listener and the vendor's callbacks meet the outage

            server.start()  # the same port
            back = time.monotonic()
            answers: list[int] = []

            def serving() -> bool:
                answers.append(http.get("/jobs").status_code)
                return answers[-1] == 200

            wait_until("the gateway serves again", serving, RECOVERY_SECONDS, every=0.2)
            recovered = time.monotonic() - back
            assert answers.count(503) <= 1 and set(answers) <= {200, 503}, answers
            assert http.get("/readyz").status_code == 200

            after = create_job(http, 99, provider="daglo")["id"]
            jobs = wait_all_terminal(http, [*before, after], timeout=RECOVERY_SECONDS + 15)
            unfinished = [
                (i, j["status"], j["error"]) for i, j in jobs.items() if j["status"] != "completed"
            ]
            assert not unfinished, unfinished
            assert len(daglo.calls("submit")) == len(jobs)  # none sent twice
            wait_until(
                "the LISTEN connection is back",
                lambda: asyncio.run(_listening(server.admin_dsn)) == 1,
                timeout=RECOVERY_SECONDS,
            )

            # A restart between two requests: the pooled connections it closed are
            # replaced at checkout, so the next request does not fail.
            server.stop("fast")
            server.start()
            assert [http.get("/jobs").status_code for _ in range(3)] == [200, 200, 200]
    finally:
        gateway.terminate()

    log = (tmp_path / "gateway.log").read_text()
    assert "unhandled error" not in log, "a database outage became a 500"
    # Vendors calling back during the outage were told to try again, not refused.
    assert {status for _url, status in daglo.callbacks_sent} <= {200, 202, 204, 503}
    print(f"\nserving again {recovered:.1f} s after PostgreSQL was back: {answers}")


async def _sleep_in_database(engine: Any) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_sleep(30)"))


async def test_pooled_connections_survive_a_restart_and_a_cut_off_statement_is_an_outage(
    own_postgres: tuple[PostgresServer, str],
) -> None:
    server, database_url = own_postgres
    engine = create_engine(database_url)
    try:
        async with engine.connect() as one, engine.connect() as two:  # two pooled
            await one.execute(text("SELECT 1"))
            await two.execute(text("SELECT 1"))
        await asyncio.to_thread(server.stop, "fast")
        await asyncio.to_thread(server.start)
        async with engine.connect() as conn:  # no error: the closed ones are replaced
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1

        # A statement running when the server shuts down: an outage, not a bug.
        sleeping = asyncio.create_task(_sleep_in_database(engine))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.stop, "fast")
        with pytest.raises(Exception) as cut_off:
            await sleeping
        assert database_unreachable(cut_off.value), repr(cut_off.value)
        with pytest.raises(Exception) as refused:
            await _sleep_in_database(engine)
        assert database_unreachable(refused.value), repr(refused.value)
    finally:
        await engine.dispose()


def test_a_database_that_never_answers_costs_a_503_not_a_hang(
    make_settings: Callable[..., Any], start_gateway: Callable[..., Any]
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/gateway"
        gateway = start_gateway(make_settings(url))
        with gateway.client("sk_test_whatever", timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            started = time.monotonic()
            response = http.get("/jobs")
            elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) > 0
        assert CONNECT_TIMEOUT_SECONDS - 0.5 < elapsed < CONNECT_TIMEOUT_SECONDS + 3, elapsed
        gateway.stop()
