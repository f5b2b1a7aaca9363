"""GET /jobs: newest first, every job exactly once across pages, filters."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.api.helpers import assert_problem, upload
from tests.support.gateway import create_key


def test_pages_show_every_job_once_newest_first(database_url, make_settings, start_gateway):
    gateway = start_gateway(make_settings(database_url, run_worker=False))
    key = create_key(database_url, "acme")
    with gateway.client(key) as client:
        created = [
            client.post("/jobs", json={"source_url": f"https://example.com/{i}.wav"}).json()["id"]
            for i in range(23)
        ]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
            page = client.get("/jobs", params=params).json()
            seen += [job["id"] for job in page["data"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 5
        assert seen == list(reversed(created))


def test_filters(database_url, make_settings, start_gateway):
    gateway = start_gateway(make_settings(database_url, run_worker=False))
    key = create_key(database_url, "acme")
    with gateway.client(key) as client:
        first = upload(client).json()
        middle = datetime.now(UTC).isoformat()
        second = upload(client).json()
        client.post(f"/jobs/{second['id']}/cancel")

        def ids(**params: str) -> list[str]:
            response = client.get("/jobs", params=params)
            assert response.status_code == 200, response.text
            return [job["id"] for job in response.json()["data"]]

        assert ids(status="canceled") == [second["id"]]
        assert ids(status="queued") == [first["id"]]
        assert ids(provider="local") == [second["id"], first["id"]]
        assert ids(provider="daglo") == []
        assert ids(created_after=middle) == [second["id"]]
        assert ids(created_before=middle) == [first["id"]]


def test_bad_listing_parameters_are_422(database_url, make_settings, start_gateway):
    gateway = start_gateway(make_settings(database_url, run_worker=False))
    with gateway.client(create_key(database_url, "acme")) as client:
        assert_problem(client.get("/jobs", params={"cursor": "garbage!"}), 422, "cursor")
        assert_problem(client.get("/jobs", params={"limit": 0}), 422, "limit")
        assert_problem(client.get("/jobs", params={"limit": 101}), 422, "limit")
        assert_problem(client.get("/jobs", params={"status": "done"}), 422, "status")
        assert_problem(client.get("/jobs", params={"created_after": "yesterday"}), 422)
        assert_problem(
            client.get("/jobs", params={"created_after": "2026-01-01T00:00:00"}), 422, "timezone"
        )
        # A parameter given twice is refused, not the last one taken silently.
        twice = client.get("/jobs?status=completed&status=queued&limit=5&limit=6&provider=local")
        body = assert_problem(twice, 422, "more than once", "status", "limit")
        assert [e["field"] for e in body["errors"]] == ["status", "limit"]
        assert client.get("/jobs?status=completed&limit=5").status_code == 200
