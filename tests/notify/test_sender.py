"""What one delivery attempt does and what comes after it, without a gateway."""

from __future__ import annotations

from datetime import timedelta

import httpx

from app.db import utcnow
from app.http_transport import AiohttpTransport, PublicAddressResolver
from app.models import WebhookAttempt, WebhookDelivery
from app.notify.deliveries import Target
from app.notify.sender import attempt_once, decide
from app.notify.signing import signed_headers
from tests.support.gateway import gateway_settings
from tests.support.static_server import StaticServer
from tests.support.trickle import TricklingServer

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _target(url: str) -> Target:
    delivery = WebhookDelivery(
        id="msg_1",
        job_id="job_1",
        event_type="job.completed",
        payload={"type": "job.completed"},
        status="pending",
        attempts=0,
    )
    return Target(delivery, url, [SECRET])


def _attempt(number: int, code: int | None = None, error: str | None = None) -> WebhookAttempt:
    return WebhookAttempt(attempt=number, status_code=code, error=error, duration_ms=1)


async def test_a_private_address_is_refused_at_delivery_time(tmp_path):
    settings = gateway_settings("sqlite+aiosqlite://", tmp_path, allow_private_urls=False)
    calls = []
    transport = httpx.MockTransport(lambda request: calls.append(request) or httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as http:
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://[::1]/x"):
            attempt, _ = await attempt_once(http, settings, _target(url))
            assert attempt.error is not None and attempt.error.startswith("refused:")
            assert decide(attempt, None, settings).status == "failed"
    assert calls == []  # nothing was sent


async def test_a_name_that_turns_private_at_connection_time_is_refused(tmp_path, monkeypatch):
    """DNS rebinding: the check before the attempt saw a public address (a check
    that passes stands in for it); the connection resolves the name to loopback."""

    async def check_passes(url: str, *, allow_private: bool) -> None:
        pass

    monkeypatch.setattr("app.notify.sender.check_url_target", check_passes)
    settings = gateway_settings("sqlite+aiosqlite://", tmp_path, allow_private_urls=False)
    server = StaticServer(b"ok", "text/plain")
    transport = AiohttpTransport(httpx.Limits(), PublicAddressResolver)
    try:
        async with httpx.AsyncClient(transport=transport) as http:
            url = server.url.replace("127.0.0.1", "localhost")
            attempt, _ = await attempt_once(http, settings, _target(url))
    finally:
        server.close()
    assert attempt.error == (
        "refused: callback_url host 'localhost' resolves to a loopback, private or "
        "link-local address"
    )
    assert decide(attempt, None, settings).status == "failed"
    assert server.requests == 0


def test_the_schedule_then_failure(tmp_path):
    settings = gateway_settings("sqlite+aiosqlite://", tmp_path, webhook_retry_schedule=[5, 300])
    before = utcnow()
    first = decide(_attempt(1, 500), None, settings)
    assert first.status == "pending" and first.next_attempt_at is not None
    assert timedelta(seconds=4.4) <= first.next_attempt_at - before <= timedelta(seconds=5.6)
    second = decide(_attempt(2, error="ConnectError: could not deliver"), None, settings)
    assert second.next_attempt_at is not None
    assert second.next_attempt_at - before >= timedelta(seconds=269)
    assert decide(_attempt(3, 500), None, settings).status == "failed"  # the schedule is used up
    assert decide(_attempt(1, 204), None, settings).status == "succeeded"
    assert decide(_attempt(1, 410), None, settings).status == "failed"


def test_retry_after_wins_over_a_shorter_schedule_on_429_and_503(tmp_path):
    settings = gateway_settings("sqlite+aiosqlite://", tmp_path, webhook_retry_schedule=[1])
    for code in (429, 503):
        decision = decide(_attempt(1, code), 120.0, settings)
        assert decision.next_attempt_at is not None
        assert decision.next_attempt_at - utcnow() >= timedelta(seconds=119)
    # Other answers do not get to set our schedule.
    other = decide(_attempt(1, 500), 120.0, settings)
    assert other.next_attempt_at is not None
    assert other.next_attempt_at - utcnow() < timedelta(seconds=2)


def test_the_official_library_verifies_our_signature():
    from standardwebhooks.webhooks import Webhook

    now = utcnow()
    headers = signed_headers("msg_1", now, '{"a":1}', [SECRET])
    assert Webhook(SECRET).verify('{"a":1}', headers) == {"a": 1}
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))


async def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_timeout(tmp_path):
    settings = gateway_settings(
        "sqlite+aiosqlite://", tmp_path, allow_private_urls=True, webhook_timeout_seconds=1.0
    )
    server = TricklingServer(b"ok" * 100, trickle_headers=True)  # each byte well within 1 s
    try:
        async with httpx.AsyncClient() as http:
            attempt, _ = await attempt_once(http, settings, _target(server.url))
    finally:
        server.close()
    assert attempt.status_code is None
    assert attempt.error == "no answer within 1 s"
    assert attempt.duration_ms < 2500
    assert decide(attempt, None, settings).status == "pending"  # retried later


async def test_only_the_start_of_a_slow_or_huge_answer_is_read(tmp_path):
    settings = gateway_settings(
        "sqlite+aiosqlite://", tmp_path, allow_private_urls=True, webhook_timeout_seconds=1.0
    )
    server = TricklingServer(b"x" * 10_000_000)  # the status at once, then a byte at a time
    try:
        async with httpx.AsyncClient() as http:
            attempt, _ = await attempt_once(http, settings, _target(server.url))
    finally:
        server.close()
    assert attempt.status_code == 200
    assert attempt.error is None
    assert attempt.duration_ms < 2500
    assert decide(attempt, None, settings).status == "succeeded"
