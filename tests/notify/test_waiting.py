"""Hundreds of clients waiting on jobs hold no database connection while they wait."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.api.helpers import upload
from tests.support.gateway import create_key


async def _gateway_connections(admin_dsn: str, database: str) -> tuple[int, int]:
    """The gateway's connections to ``database``: all of them, and those not idle."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE state <> 'idle') AS busy"
            " FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return int(row["total"]), int(row["busy"])
    finally:
        await conn.close()


def test_two_hundred_waiters_cost_no_connections_and_all_wake(
    postgres_url, postgres_admin_dsn, make_settings, start_gateway
):
    gateway = start_gateway(make_settings(postgres_url, run_worker=False))
    key = create_key(postgres_url, "acme")
    database = postgres_url.rsplit("/", 1)[1]
    with gateway.client(key) as client:
        job_id = upload(client).json()["id"]

    async def scenario() -> tuple[tuple[int, int], list[dict], float]:
        limits = httpx.Limits(max_connections=250)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=gateway.base_url, headers=headers,
                                     limits=limits, timeout=60) as http:  # fmt: skip
            waiters = [
                asyncio.create_task(http.get(f"/jobs/{job_id}", params={"wait": 30}))
                for _ in range(200)
            ]
            await asyncio.sleep(2.0)  # every waiter is in and waiting
            # On a slow machine the last requests may still be looking up their key
            # (20 busy connections seen once): give them until well before the waits'
            # 30 s end. A waiter that held a connection would stay busy past it.
            deadline = time.monotonic() + 10
            connections = await _gateway_connections(postgres_admin_dsn, database)
            while connections[1] and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                connections = await _gateway_connections(postgres_admin_dsn, database)
            started = time.monotonic()
            await http.post(f"/jobs/{job_id}/cancel")
            answers = await asyncio.gather(*waiters)
            return connections, [a.json() for a in answers], time.monotonic() - started

    (total, busy), jobs, seconds = asyncio.run(scenario())
    # No waiter holds a transaction open, and the connections are the pool's (at most
    # 20 + 20 overflow) and the listener's, not one per waiter.
    assert busy == 0, busy
    assert total <= 41, total
    assert [job["status"] for job in jobs] == ["canceled"] * 200
    assert seconds < 5, seconds  # woken by the change, not by the 30 s timeout
