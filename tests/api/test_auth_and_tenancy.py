"""Every endpoint but the health checks needs a key; a client sees only its own jobs."""

from __future__ import annotations

import asyncio

import pytest

from app import clients
from app.db import create_engine, create_session_factory
from tests.api.helpers import assert_problem, upload
from tests.support.gateway import create_key


@pytest.fixture
def gateway(database_url, make_settings, start_gateway):
    return start_gateway(make_settings(database_url, run_worker=False))


def test_health_checks_need_no_key(gateway):
    with gateway.client() as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", "/jobs/job_x"),
        ("POST", "/jobs/job_x/cancel"),
        ("DELETE", "/jobs/job_x"),
        ("GET", "/jobs/job_x/transcript"),
        ("GET", "/jobs/job_x/artifacts/midi"),
        ("GET", "/providers"),
    ],
)
def test_endpoints_refuse_missing_and_wrong_keys(gateway, method, path):
    with gateway.client() as anonymous:
        missing = anonymous.request(method, path)
        assert_problem(missing, 401, "Authorization: Bearer")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = anonymous.request(method, path, headers={"Authorization": "Bearer sk_nope"})
        assert_problem(wrong, 401, "not valid")


def test_a_revoked_key_stops_working_at_once(gateway, database_url):
    key = create_key(database_url, "leaving")
    with gateway.client(key) as client:
        assert client.get("/jobs").status_code == 200

        async def revoke() -> None:
            engine = create_engine(database_url)
            async with create_session_factory(engine)() as session:
                await clients.revoke_client(session, "leaving")
                await session.commit()
            await engine.dispose()

        asyncio.run(revoke())
        assert_problem(client.get("/jobs"), 401, "revoked")


def test_clients_never_see_each_others_jobs(gateway, database_url):
    alice, bob = create_key(database_url, "alice"), create_key(database_url, "bob")
    with gateway.client(alice) as a, gateway.client(bob) as b:
        job_id = upload(a).json()["id"]
        for method, path in [
            ("GET", f"/jobs/{job_id}"),
            ("POST", f"/jobs/{job_id}/cancel"),
            ("DELETE", f"/jobs/{job_id}"),
            ("GET", f"/jobs/{job_id}/transcript"),
            ("GET", f"/jobs/{job_id}/artifacts/midi"),
        ]:
            assert_problem(b.request(method, path), 404, job_id)
        assert b.get("/jobs").json() == {"data": [], "next_cursor": None}
        # Bob's attempts changed nothing.
        assert a.get(f"/jobs/{job_id}").json()["status"] == "queued"
        assert [j["id"] for j in a.get("/jobs").json()["data"]] == [job_id]


def test_providers_lists_the_local_engine_with_its_schema(gateway, database_url):
    with gateway.client(create_key(database_url, "acme")) as client:
        providers = client.get("/providers").json()["data"]
        assert [p["name"] for p in providers] == ["local"]
        local = providers[0]
        assert "wav" in local["capabilities"]["formats"]
        assert local["capabilities"]["word_timestamps"] is True
        assert local["options_schema"]["type"] == "object"
