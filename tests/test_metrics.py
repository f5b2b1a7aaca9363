"""GET /metrics: Prometheus text, behind the API key, counting what happens.

Counters are process-global and other tests run in this process (their
gateways too), so every check compares a reading before with one after.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.metrics import after_commit
from app.providers.base import PermanentProviderError, RetryableProviderError
from app.providers.http import send
from tests.api.helpers import assert_problem, upload
from tests.support.gateway import create_client, create_key
from tests.support.receiver import WebhookReceiver

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _read(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return _value(after, name, **labels) - _value(before, name, **labels)


def _eventually(client: httpx.Client, done: Callable[[Samples], bool]) -> Samples:
    """A request is counted as its answer ends: allow the server a moment for that."""
    deadline = time.monotonic() + 5
    while True:
        samples = _read(client)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def test_metrics_need_an_api_key(postgres_url, make_settings, start_gateway):
    gateway = start_gateway(make_settings(postgres_url))
    with gateway.client() as anonymous:
        assert_problem(anonymous.get("/metrics"), 401)
    with gateway.client("sk_not_a_key") as stranger:
        assert_problem(stranger.get("/metrics"), 401)


def test_a_local_job_is_counted(postgres_url, make_settings, start_gateway):
    gateway = start_gateway(make_settings(postgres_url))
    key = create_key(postgres_url, "acme")
    local = {"provider": "local"}
    job_route = {"method": "GET", "route": "/jobs/{job_id}", "status": "200"}
    with gateway.client(key) as client:
        before = _read(client)
        created = upload(client, provider="local")
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        done = client.get(f"/jobs/{job_id}", params={"wait": 60}).json()
        assert done["status"] == "completed", done
        assert client.get("/no/such/thing").status_code == 404

        after = _eventually(
            client,
            lambda now: (
                _delta(now, before, "stt_http_requests_total", **job_route) > 0
                and _delta(now, before, "stt_jobs_finished_total", status="completed", **local) > 0
            ),
        )

    def delta(name: str, **labels: str) -> float:
        return _delta(after, before, name, **labels)

    assert delta("stt_jobs_created_total", **local) == 1
    assert delta("stt_jobs_finished_total", status="completed", **local) == 1
    assert delta("stt_jobs_finished_total", status="failed", **local) == 0
    assert delta("stt_job_completion_seconds_count", **local) == 1
    assert delta("stt_job_completion_seconds_sum", **local) > 0
    assert delta("stt_job_completion_seconds_bucket", le="+Inf", **local) == 1
    assert delta("stt_http_requests_total", **job_route) >= 1
    assert delta("stt_http_requests_total", method="POST", route="/jobs", status="202") == 1
    assert delta("stt_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("stt_http_request_duration_seconds_count", method="GET", route="/jobs/{job_id}")
    # The queue, read from this gateway's database at scrape time.
    assert ("stt_queue_due_tasks", frozenset()) in after
    assert ("stt_queue_oldest_due_age_seconds", frozenset()) in after
    # Bounded labels only: never a job id, a raw path or a URL.
    labels = {value for _, pairs in after for _, value in pairs}
    assert not any(job_id in value or "/no/such" in value for value in labels)


def test_webhook_attempts_are_counted_by_outcome(postgres_url, make_settings, start_gateway):
    settings = make_settings(postgres_url, webhook_retry_schedule=[0.3, 0.3])
    gateway = start_gateway(settings)
    acme = create_client(postgres_url, "acme")
    hook = WebhookReceiver(acme.webhook_secret).start()
    hook.answers.extend([500, 200])
    name = "stt_webhook_deliveries_total"
    try:
        with gateway.client(acme.api_key) as client:
            before = _read(client)
            created = upload(client, provider="local", callback_url=hook.url)
            assert created.status_code == 202, created.text
            hook.wait_for(2)
            after = _eventually(
                client, lambda now: _delta(now, before, name, outcome="succeeded") > 0
            )
    finally:
        hook.stop()
    assert _delta(after, before, name, outcome="retry") == 1
    assert _delta(after, before, name, outcome="succeeded") == 1
    assert _delta(after, before, name, outcome="failed") == 0


@pytest.mark.parametrize(
    ("answer", "outcome", "error"),
    [
        (httpx.Response(200, json={"id": "t1"}), "ok", None),
        (httpx.Response(503, headers={"retry-after": "7"}), "retryable", RetryableProviderError),
        (httpx.Response(429), "retryable", RetryableProviderError),
        (httpx.Response(401, json={"error": "bad key"}), "permanent", PermanentProviderError),
        (httpx.ConnectError("refused"), "transport_error", RetryableProviderError),
        (httpx.ReadTimeout("slow"), "transport_error", RetryableProviderError),
    ],
    ids=["ok", "503", "429", "401", "connect", "timeout"],
)
async def test_vendor_calls_are_counted_by_outcome(answer, outcome, error):
    def vendor(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    labels = {"vendor": "daglo", "operation": "submit"}

    def read() -> tuple[float, float]:
        calls = REGISTRY.get_sample_value(
            "stt_vendor_requests_total", {**labels, "outcome": outcome}
        )
        timed = REGISTRY.get_sample_value("stt_vendor_request_duration_seconds_count", labels)
        return calls or 0.0, timed or 0.0

    calls_before, timed_before = read()
    async with httpx.AsyncClient(transport=httpx.MockTransport(vendor)) as http:
        call = send(http, "POST", "https://v.test/?key=k", vendor="daglo", operation="submit")
        if error is None:
            assert (await call).status_code == 200
        else:
            with pytest.raises(error):
                await call
    calls_after, timed_after = read()
    assert calls_after - calls_before == 1
    assert timed_after - timed_before == 1


async def test_counted_after_commit_only():
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    counted: list[str] = []
    try:
        sessions = async_sessionmaker(engine)
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            after_commit(session, lambda: counted.append("rolled back"))
            await session.rollback()
            await session.execute(text("SELECT 1"))
            after_commit(session, lambda: counted.append("committed"))
            assert counted == []
            await session.commit()
        async with sessions() as session:
            after_commit(session, lambda: counted.append("closed without commit"))
        assert counted == ["committed"]
    finally:
        await engine.dispose()
