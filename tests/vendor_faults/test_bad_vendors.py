"""Vendors that fail: retried within the job's deadline, then a clear error; a
bad vendor kept from hurting the others (per-vendor cap, circuit breaker);
fallback providers. Real gateways and real HTTP on loopback.

The bad vendor is an OpenAI-compatible upstream (the `openai` provider) told
how to misbehave; the healthy one is the fake Daglo.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import create_engine, create_session_factory
from app.models import ProviderSubmission
from tests.api.helpers import upload
from tests.fakes.daglo import FakeDaglo
from tests.support.gateway import ThreadedGateway
from tests.support.vendor import wait_for_job
from tests.vendor_faults.bad_upstream import API_KEY, TEXT, BadUpstream

Start = Callable[..., tuple[ThreadedGateway, str]]

# Fast retries, a short deadline, a breaker that stays closed unless a test wants it.
QUICK = {
    "RETRY_BASE_SECONDS": 0.05,
    "RETRY_MAX_SECONDS": 0.2,
    "PROVIDER_DEADLINE_SECONDS": 2.5,
    "BREAKER_FAILURE_THRESHOLD": 1000,
    "TASK_MAX_ATTEMPTS": 1000,
}


@pytest.fixture
def bad() -> Iterator[BadUpstream]:
    with BadUpstream() as upstream:
        yield upstream


@pytest.fixture
def daglo() -> Iterator[FakeDaglo]:
    with FakeDaglo() as fake:
        yield fake


@pytest.fixture
def start(vendor_gateway: Start, bad: BadUpstream, daglo: FakeDaglo) -> Start:
    def start_gateway(**settings: Any) -> tuple[ThreadedGateway, str]:
        return vendor_gateway(
            OPENAI_API_KEY=API_KEY,
            OPENAI_BASE_URL=f"{bad.base_url}/v1",
            DAGLO_API_KEY=daglo.api_key,
            DAGLO_BASE_URL=daglo.base_url,
            **{**QUICK, **settings},
        )

    return start_gateway


def create(client: httpx.Client, provider: str = "openai", **fields: Any) -> dict[str, Any]:
    response = upload(client, provider=provider, **fields)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def one_job(start: Start, **settings: Any) -> tuple[dict[str, Any], float]:
    """Start a gateway with ``settings`` and give the bad vendor one job: the job once
    terminal, and the seconds from its creation to then."""
    gateway, key = start(**settings)
    with gateway.client(key) as client:
        began = time.monotonic()
        done = wait_for_job(client, create(client)["id"], timeout=20)
        return done, time.monotonic() - began


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_an_error_answer_for_minutes_is_retried_until_the_deadline(
    start: Start, bad: BadUpstream, status: int
) -> None:
    bad.mode, bad.status = "status", status
    done, took = one_job(start)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "deadline_exceeded"
    assert done["error"]["retryable"] is True
    assert "kept failing" in done["error"]["message"]
    assert 2.5 <= took < 8
    # Retried with backoff: more than once, but not a hot loop.
    assert 3 <= bad.calls_made <= 40
    gaps = [b - a for a, b in itertools.pairwise(bad.call_times)]
    # The shortest delay is RETRY_BASE_SECONDS / 2 = 0.025 s, but the fake stamps
    # each call when its thread gets to it: one late stamp shortens one gap (a
    # clean-clone run saw 0.018). A hot loop would have every gap near zero.
    assert min(gaps) >= 0.01
    assert statistics.median(gaps) >= 0.05


def test_a_vendor_that_hangs_is_cut_off_at_the_deadline(start: Start, bad: BadUpstream) -> None:
    bad.mode = "hang"
    done, took = one_job(start)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "deadline_exceeded"
    assert "did not answer before the job's deadline" in done["error"]["message"]
    assert took < 8
    bad.release()


@pytest.mark.parametrize("mode", ["malformed", "shape"])
def test_a_malformed_answer_fails_the_job_with_a_clear_error(
    start: Start, bad: BadUpstream, mode: str
) -> None:
    bad.mode = mode
    done, _ = one_job(start)
    assert done["status"] == "failed"
    assert done["error"]["code"] in {"deadline_exceeded", "provider_error", "invalid_response"}
    assert done["error"]["message"]
    assert bad.calls_made >= 1


def test_a_slow_vendor_is_waited_for(start: Start, bad: BadUpstream) -> None:
    bad.mode, bad.delay = "slow", 1.0
    gateway, key = start()
    with gateway.client(key) as client:
        done = wait_for_job(client, create(client)["id"], timeout=20)
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()
    assert done["status"] == "completed", done
    assert transcript["text"] == TEXT
    assert bad.calls_made == 1


def test_a_vendor_that_recovers_within_the_deadline_completes_the_job(
    start: Start, bad: BadUpstream
) -> None:
    bad.mode, bad.status = "status", 503
    threading.Timer(1.0, lambda: setattr(bad, "mode", "ok")).start()
    done, _ = one_job(start, PROVIDER_DEADLINE_SECONDS=10)
    assert done["status"] == "completed", done
    assert bad.calls_made >= 2


def test_a_retry_after_past_the_deadline_ends_at_once_without_calling_early(
    start: Start, bad: BadUpstream
) -> None:
    bad.mode, bad.status, bad.headers = "status", 429, {"Retry-After": "60"}
    done, took = one_job(start)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "deadline_exceeded"
    assert took < 2.5  # did not sit out the deadline
    assert bad.calls_made == 1  # and never called sooner than the vendor asked


def test_a_hanging_vendor_does_not_slow_the_others(
    start: Start, bad: BadUpstream, daglo: FakeDaglo
) -> None:
    bad.mode = "hang"
    gateway, key = start(PROVIDER_DEADLINE_SECONDS=60, PROVIDER_MAX_IN_FLIGHT=2)
    with gateway.client(key) as client:
        stuck = [create(client)["id"] for _ in range(10)]
        time.sleep(0.5)  # the hanging calls are out first
        began = time.monotonic()
        healthy = [create(client, provider="daglo")["id"] for _ in range(5)]
        done = [wait_for_job(client, job_id, timeout=20) for job_id in healthy]
        took = time.monotonic() - began
        still = [client.get(f"/jobs/{job_id}").json()["status"] for job_id in stuck]
    assert [job["status"] for job in done] == ["completed"] * 5
    assert took < 10
    assert set(still) <= {"queued", "processing"}
    assert bad.max_in_flight == 2  # the cap per vendor held; the other slots stayed free
    bad.release()


def test_the_circuit_breaker_stops_calling_a_failing_vendor_then_tries_again(
    start: Start, bad: BadUpstream
) -> None:
    bad.mode, bad.status = "status", 503
    gateway, key = start(
        PROVIDER_DEADLINE_SECONDS=30, BREAKER_FAILURE_THRESHOLD=3, BREAKER_OPEN_SECONDS=1.5
    )
    with gateway.client(key) as client:
        job = create(client)
        deadline = time.monotonic() + 10
        while bad.calls_made < 4:
            assert time.monotonic() < deadline, "the breaker never let a trial call through"
            time.sleep(0.02)
        bad.mode = "ok"
        done = wait_for_job(client, job["id"], timeout=20)
    assert done["status"] == "completed", done
    times = bad.call_times
    # Three failures in a row open the breaker: no call for its open period,
    # then one trial call.
    assert times[3] - times[2] >= 1.4
    assert max(b - a for a, b in itertools.pairwise(times[:3])) < 1.0


def test_a_job_falls_back_to_its_next_provider_after_the_deadline(
    start: Start, bad: BadUpstream, daglo: FakeDaglo
) -> None:
    bad.mode, bad.status = "status", 502
    gateway, key = start()
    with gateway.client(key) as client:
        job = create(client, fallback_providers='["daglo"]')
        assert job["fallback_providers"] == ["daglo"]
        assert job["provider"] == "openai"
        done = wait_for_job(client, job["id"], timeout=20)
        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
    assert done["status"] == "completed", done
    assert done["provider"] == "daglo"  # the vendor that did the work
    assert transcript["provider"] == "daglo"
    [given_up] = done["provider_attempts"]
    assert given_up["provider"] == "openai"
    assert given_up["error"]["code"] == "deadline_exceeded"
    assert len(daglo.calls("submit")) == 1


def test_an_open_circuit_sends_new_jobs_straight_to_their_fallback(
    start: Start, bad: BadUpstream, daglo: FakeDaglo
) -> None:
    bad.mode, bad.status = "status", 503
    gateway, key = start(
        PROVIDER_DEADLINE_SECONDS=60, BREAKER_FAILURE_THRESHOLD=2, BREAKER_OPEN_SECONDS=60
    )
    with gateway.client(key) as client:
        first = wait_for_job(client, create(client, fallback_providers="daglo")["id"], 20)
        calls_when_open = bad.calls_made
        second = wait_for_job(client, create(client, fallback_providers="daglo")["id"], 20)
    for done in (first, second):
        assert done["status"] == "completed", done
        assert done["provider"] == "daglo"
        assert done["provider_attempts"][0]["error"]["code"] == "provider_unavailable"
        assert "circuit breaker" in done["provider_attempts"][0]["error"]["message"]
    assert calls_when_open == 2  # two failures opened it, long before the 60 s deadline
    assert bad.calls_made == 2  # the second job never called the failing vendor


def test_without_a_fallback_an_open_circuit_waits_and_counts_no_attempt(
    start: Start, bad: BadUpstream
) -> None:
    bad.mode, bad.status = "status", 503
    done, _ = one_job(
        start, PROVIDER_DEADLINE_SECONDS=3, BREAKER_FAILURE_THRESHOLD=2, BREAKER_OPEN_SECONDS=60
    )
    assert done["status"] == "failed"
    assert done["error"]["code"] == "provider_unavailable"
    assert "circuit breaker" in done["error"]["message"]
    assert bad.calls_made == 2


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ('["nope"]', "nope"),
        ("daglo,daglo", "must not repeat"),
        ("openai", "must not repeat"),
        ('["daglo"', "not valid JSON"),
    ],
)
def test_bad_fallback_providers_are_a_422(start: Start, value: str, detail: str) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        response = upload(client, provider="openai", fallback_providers=value)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert detail in body["detail"]
    assert any(e["field"] == "fallback_providers" for e in body.get("errors", []))


def test_a_json_request_takes_fallback_providers_as_an_array(start: Start) -> None:
    gateway, key = start(ALLOW_PRIVATE_URLS=True)
    with gateway.client(key) as client:
        response = client.post(
            "/jobs",
            json={
                "source_url": "http://127.0.0.1:9/a.wav",
                "provider": "daglo",
                "fallback_providers": ["openai"],
            },
        )
    assert response.status_code == 202, response.text
    assert response.json()["fallback_providers"] == ["openai"]


def test_every_vendor_submit_is_in_the_ledger(
    start: Start, daglo: FakeDaglo, postgres_url: str
) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        done = wait_for_job(client, create(client, provider="daglo")["id"], timeout=20)
    assert done["status"] == "completed"
    [row] = asyncio.run(_submissions(postgres_url, done["id"]))
    assert row.provider == "daglo"
    assert row.outcome == "accepted"
    assert row.provider_job_id == done["provider_job_id"]
    assert row.finished_at is not None and row.finished_at >= row.started_at


async def _submissions(url: str, job_id: str) -> list[ProviderSubmission]:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            query = select(ProviderSubmission).where(ProviderSubmission.job_id == job_id)
            return list(await session.scalars(query))
    finally:
        await engine.dispose()


def test_a_job_the_vendor_works_on_past_the_deadline_still_gets_its_retries(
    start: Start, daglo: FakeDaglo
) -> None:
    # The deadline is for a run of failures: a vendor may work on a job for
    # longer than it, and one failed poll after that is retried, not fatal.
    daglo.callbacks_enabled = False
    daglo.step_seconds = 1.2  # processing for several seconds, past the 1.5 s deadline
    gateway, key = start(PROVIDER_DEADLINE_SECONDS=1.5)
    with gateway.client(key) as client:
        job = create(client, provider="daglo")
        time.sleep(2.0)
        daglo.fail("status", 503, body={"error": "Service Unavailable."})
        done = wait_for_job(client, job["id"], timeout=30)
    assert done["status"] == "completed", done
    assert len(daglo.calls("submit")) == 1
