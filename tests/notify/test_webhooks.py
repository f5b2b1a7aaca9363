"""Client webhooks, end to end: a receiver on 127.0.0.1 verifies them with the
official standardwebhooks library."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx
import pytest

from app import clients
from app.db import create_engine, create_session_factory
from app.providers import registry
from app.providers.base import ProviderUpdate
from tests.api.helpers import upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import GatewayProcess, create_client, gateway_env
from tests.support.receiver import HANG, WebhookReceiver
from tests.support.scripted_provider import ScriptedProvider, completed
from tests.support.vendor import wait_for_job

FAST_RETRIES = {"webhook_retry_schedule": [0.3, 0.3, 0.3], "webhook_timeout_seconds": 1.0}


@pytest.fixture
def gateway(monkeypatch, postgres_url, make_settings, start_gateway):
    """A gateway whose "scripted" provider completes a job at once."""
    ScriptedProvider.reset()
    spec = registry.ProviderSpec(("LOCAL_PROVIDER",), "tests.support.scripted_provider:build")
    monkeypatch.setitem(registry.SPECS, "scripted", spec)

    def start(**settings: object):
        gw = start_gateway(make_settings(postgres_url, **{**FAST_RETRIES, **settings}))
        client = create_client(postgres_url, "acme")
        return gw, client

    return start


def _completed_job(http: httpx.Client, callback_url: str) -> dict:
    ScriptedProvider.submits.append(completed())
    created = upload(http, provider="scripted", callback_url=callback_url)
    assert created.status_code == 202, created.text
    return wait_for_job(http, created.json()["id"])


def _deliveries(http: httpx.Client, job_id: str) -> list[dict]:
    response = http.get(f"/jobs/{job_id}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _wait_settled(http: httpx.Client, job_id: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        (delivery,) = _deliveries(http, job_id)
        if delivery["status"] != "pending" or time.monotonic() > deadline:
            return delivery
        time.sleep(0.1)


def _refused_with_410(http: httpx.Client, hook: WebhookReceiver) -> tuple[dict, dict]:
    """A completed job whose webhook the receiver refused with a 410 (gone): the job and
    its delivery, failed."""
    hook.answers.append(410)
    job = _completed_job(http, hook.url)
    delivery = _wait_settled(http, job["id"])
    assert delivery["status"] == "failed"
    return job, delivery


def test_a_completed_job_is_delivered_signed(gateway, receiver):
    gw, client = gateway()
    hook = receiver(client.webhook_secret)
    with gw.client(client.api_key) as http:
        job = _completed_job(http, hook.url)
        (received,) = hook.wait_for(1)
        assert received.verified_with == [0]
        body = json.loads(received.body)
        assert body["type"] == "job.completed"
        assert body["data"]["id"] == job["id"] and body["data"]["status"] == "completed"
        assert body["timestamp"].endswith("Z")
        assert received.headers["webhook-id"].startswith("msg_")
        delivery = _wait_settled(http, job["id"])
        assert delivery["status"] == "succeeded" and delivery["event"] == "job.completed"
        assert delivery["id"] == received.headers["webhook-id"]
        (attempt,) = delivery["attempts"]
        assert attempt["status_code"] == 200 and attempt["response_excerpt"] == "answer 200"


def test_two_500s_then_200_is_one_event_in_three_attempts(gateway, receiver):
    gw, client = gateway()
    hook = receiver(client.webhook_secret)
    hook.answers.extend([500, 500, 200])
    with gw.client(client.api_key) as http:
        job = _completed_job(http, hook.url)
        received = hook.wait_for(3)
        assert {r.headers["webhook-id"] for r in received} == {received[0].headers["webhook-id"]}
        assert all(r.verified_with == [0] for r in received)
        assert len({r.body for r in received}) == 1  # the same event each time
        delivery = _wait_settled(http, job["id"])
        assert delivery["status"] == "succeeded"
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
        assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]


def test_410_stops_the_retries(gateway, receiver):
    gw, client = gateway()
    hook = receiver(client.webhook_secret)
    with gw.client(client.api_key) as http:
        _, delivery = _refused_with_410(http, hook)
        assert [a["status_code"] for a in delivery["attempts"]] == [410]
        time.sleep(1.0)  # longer than the whole test schedule
        assert len(hook.received) == 1


def test_a_receiver_that_never_answers_is_retried(gateway, receiver):
    gw, client = gateway()
    hook = receiver(client.webhook_secret)
    hook.answers.extend([HANG, 200])
    with gw.client(client.api_key) as http:
        job = _completed_job(http, hook.url)
        hook.wait_for(2)
        delivery = _wait_settled(http, job["id"])
        first, second = delivery["attempts"]
        assert first["status_code"] is None and "no answer within 1 s" in first["error"]
        assert 900 <= first["duration_ms"] < 5000
        assert second["status_code"] == 200 and delivery["status"] == "succeeded"


def test_a_refused_connection_is_retried_then_fails(gateway, receiver):
    gw, client = gateway()
    hook = receiver(client.webhook_secret)
    dead_url = hook.url
    hook.stop()  # nothing listens there any more
    with gw.client(client.api_key) as http:
        job = _completed_job(http, dead_url)
        delivery = _wait_settled(http, job["id"])
        assert delivery["status"] == "failed"
        assert len(delivery["attempts"]) == 4  # the first try and the 3 retries of the schedule
        assert all("ConnectError" in a["error"] for a in delivery["attempts"])


def test_retry_after_on_429_is_honoured(gateway, receiver):
    gw, client = gateway()
    hook = receiver(client.webhook_secret)
    hook.answers.extend([(429, {"Retry-After": "2"}), 200])
    with gw.client(client.api_key) as http:
        _completed_job(http, hook.url)
        first, second = hook.wait_for(2)
        assert second.at - first.at >= 2.0


def test_a_failed_delivery_can_be_sent_again(gateway, receiver):
    gw, client = gateway()
    hook = receiver(client.webhook_secret)
    with gw.client(client.api_key) as http:
        job, delivery = _refused_with_410(http, hook)
        again = http.post(f"/jobs/{job['id']}/deliveries/{delivery['id']}/retry")
        assert again.status_code == 202 and again.json()["status"] == "pending"
        hook.wait_for(2)
        assert _wait_settled(http, job["id"])["status"] == "succeeded"
        conflict = http.post(f"/jobs/{job['id']}/deliveries/{delivery['id']}/retry")
        assert conflict.status_code == 409
        missing = http.post(f"/jobs/{job['id']}/deliveries/msg_{'0' * 26}/retry")
        assert missing.status_code == 404


def test_both_secrets_sign_during_a_rotation(gateway, receiver, postgres_url):
    gw, client = gateway()

    async def rotate() -> str:
        engine = create_engine(postgres_url)
        async with create_session_factory(engine)() as session:
            secret = await clients.rotate_webhook_secret(session, "acme", timedelta(hours=24))
            await session.commit()
        await engine.dispose()
        return secret

    new_secret = asyncio.run(rotate())
    hook = receiver(client.webhook_secret, new_secret)
    with gw.client(client.api_key) as http:
        _completed_job(http, hook.url)
        (received,) = hook.wait_for(1)
    assert received.verified_with == [0, 1]  # a receiver with either secret accepts it
    assert len(received.headers["webhook-signature"].split(" ")) == 2


def test_canceled_and_failed_jobs_are_announced_too(gateway, receiver):
    gw, client = gateway()
    hook = receiver(client.webhook_secret)
    with gw.client(client.api_key) as http:
        job_id = upload(http, provider="scripted", callback_url=hook.url).json()["id"]
        http.post(f"/jobs/{job_id}/cancel")
        (received,) = hook.wait_for(1)
        assert json.loads(received.body)["type"] == "job.canceled"


def test_no_callback_url_no_delivery(gateway):
    gw, client = gateway()
    with gw.client(client.api_key) as http:
        ScriptedProvider.submits.append(completed())
        job = wait_for_job(http, upload(http, provider="scripted").json()["id"])
        assert _deliveries(http, job["id"]) == []


def test_events_stream_the_status_changes_in_order(gateway):
    gw, client = gateway()
    ScriptedProvider.fetches.extend(
        [ProviderUpdate("processing", "v1", "busy"), ProviderUpdate("processing", "v1", "busier")]
    )
    ScriptedProvider.fetches.append(completed())
    with gw.client(client.api_key) as http:
        job_id = upload(http, provider="scripted").json()["id"]
        events = []
        with http.stream("GET", f"/jobs/{job_id}/events", timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
    statuses = [e["status"] for e in events]
    assert statuses[-1] == "completed"
    order = ["queued", "processing", "completed"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    assert [e["provider_status"] for e in events if e["status"] == "processing"][-1] == "busier"


def test_delivery_goes_on_after_a_kill_9(postgres_url, make_settings, tmp_path, receiver):
    settings = make_settings(postgres_url, task_lease_seconds=3.0)
    env = gateway_env(settings, WEBHOOK_RETRY_SCHEDULE="[4, 1, 1]", WEBHOOK_TIMEOUT_SECONDS="2")
    client = create_client(postgres_url, "acme")
    hook = receiver(client.webhook_secret)
    hook.answers.append(500)
    first = GatewayProcess(env, tmp_path / "first.log").start()
    with httpx.Client(base_url=first.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {client.api_key}"}) as http:  # fmt: skip
        job_id = upload(http, SPEECH_WAV, callback_url=hook.url).json()["id"]
        hook.wait_for(1, timeout=60)  # the first attempt failed (500); the next is 4 s away
    first.kill()
    second = GatewayProcess(env, tmp_path / "second.log").start()
    try:
        received = hook.wait_for(2, timeout=60)
        assert received[1].headers["webhook-id"] == received[0].headers["webhook-id"]
        assert received[1].verified_with == [0]
        assert json.loads(received[1].body)["data"]["id"] == job_id
    finally:
        second.terminate()
