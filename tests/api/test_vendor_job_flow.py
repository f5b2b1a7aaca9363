"""The worker's vendor path (submit, poll, callback, cancel) with a scripted provider."""

from __future__ import annotations

import time

import pytest

from app.providers import registry
from app.providers.base import PermanentProviderError, ProviderUpdate, RetryableProviderError
from tests.api.helpers import upload
from tests.support.gateway import create_key
from tests.support.postgres import free_port
from tests.support.scripted_provider import ScriptedProvider, completed
from tests.support.vendor import wait_for_job


@pytest.fixture
def scripted_provider(monkeypatch):
    """The provider ``scripted``, with nothing scripted yet."""
    ScriptedProvider.reset()
    spec = registry.ProviderSpec(("LOCAL_PROVIDER",), "tests.support.scripted_provider:build")
    monkeypatch.setitem(registry.SPECS, "scripted", spec)


@pytest.fixture
def scripted(scripted_provider, postgres_url, make_settings, start_gateway):
    gateway = start_gateway(make_settings(postgres_url))
    with gateway.client(create_key(postgres_url, "acme")) as client:
        yield gateway, client


def _calls(kind: str) -> list:
    return [arg for name, arg in ScriptedProvider.calls if name == kind]


def test_submit_then_poll_until_completed(scripted):
    _, client = scripted
    ScriptedProvider.fetches.extend(
        [ProviderUpdate("processing", "v1", "queued"), ProviderUpdate("processing", "v1", "busy")]
    )
    ScriptedProvider.fetches.append(completed())
    job = wait_for_job(client, upload(client, provider="scripted").json()["id"])
    assert job["status"] == "completed" and job["provider_job_id"] == "v1"
    assert job["provider_status"] == "done"
    assert len(_calls("fetch")) == 3
    transcript = client.get(f"/jobs/{job['id']}/transcript").json()
    assert [w["text"] for w in transcript["segments"][0]["words"]] == ["hello", "world"]


@pytest.mark.parametrize("shortest", [0.2, 1.0])
def test_a_young_job_is_polled_every_poll_min_seconds(
    scripted_provider, postgres_url, make_settings, start_gateway, shortest
):
    gateway = start_gateway(make_settings(postgres_url, poll_min_seconds=shortest))
    ScriptedProvider.fetches.extend([ProviderUpdate("processing", "v1", "busy")] * 2)
    ScriptedProvider.fetches.append(completed())
    with gateway.client(create_key(postgres_url, "acme")) as client:
        job = wait_for_job(client, upload(client, provider="scripted").json()["id"])
    assert job["status"] == "completed"
    first, second, third = ScriptedProvider.fetched_at
    # A tenth of a few seconds' age is under either floor: the floor sets the pace.
    for gap in (second - first, third - second):
        assert shortest * 0.95 <= gap < shortest + 0.6, gap


@pytest.mark.parametrize("during", ["submit", "fetch"])
def test_a_callback_before_our_answer_is_written_still_polls_at_once(
    scripted_provider, postgres_url, make_settings, start_gateway, during
):
    """The vendor calls back while its answer to our submit (or poll) is still on
    its way: no poll is waiting to be made due yet. The poll written next must be
    due at once, not at the vendor's hint (60 s here)."""
    port = free_port()
    settings = make_settings(postgres_url, public_base_url=f"http://127.0.0.1:{port}")
    gateway = start_gateway(settings, port)
    ScriptedProvider.calls_back_during.add(during)
    hint = 60 if during == "submit" else 0.5  # the first poll comes soon: it calls back
    ScriptedProvider.submits.append(ProviderUpdate("processing", "v1", "queued", poll_after=hint))
    if during == "fetch":
        ScriptedProvider.fetches.append(ProviderUpdate("processing", "v1", "busy", poll_after=60))
    ScriptedProvider.fetches.append(completed())
    with gateway.client(create_key(postgres_url, "acme")) as client:
        started = time.monotonic()
        job = wait_for_job(client, upload(client, provider="scripted").json()["id"], timeout=30)
        took = time.monotonic() - started
    assert job["status"] == "completed"
    assert ScriptedProvider.callback_answers == [204]
    assert len(_calls("fetch")) == (2 if during == "fetch" else 1)
    assert took < 20, f"the job waited for the vendor's 60 s hint ({took:.1f} s)"


def test_submit_is_given_the_callback_link_only_with_a_public_url(scripted):
    _, client = scripted
    ScriptedProvider.submits.append(completed())
    wait_for_job(client, upload(client, provider="scripted").json()["id"])
    (request,) = _calls("submit")
    assert request.callback_url is None and request.media_url is None  # no PUBLIC_BASE_URL


def test_retryable_errors_are_retried_then_succeed(scripted):
    _, client = scripted
    ScriptedProvider.submits.extend([RetryableProviderError("busy", retry_after=1.0), completed()])
    started = time.monotonic()
    job = wait_for_job(client, upload(client, provider="scripted").json()["id"])
    assert job["status"] == "completed"
    assert len(_calls("submit")) == 2
    assert time.monotonic() - started >= 1.0  # Retry-After honoured


def test_a_permanent_error_fails_the_job_with_the_vendor_detail(scripted):
    _, client = scripted
    ScriptedProvider.submits.append(
        PermanentProviderError(
            "invalid_audio",
            "the vendor could not decode it",
            provider_detail={"error": "bad header"},
        )
    )
    job = wait_for_job(client, upload(client, provider="scripted").json()["id"])
    assert job["status"] == "failed"
    assert job["error"] == {
        "code": "invalid_audio",
        "message": "the vendor could not decode it",
        "retryable": False,
        "provider_detail": {"error": "bad header"},
    }


def test_cancel_reaches_the_vendor_and_stops_polling(scripted):
    _, client = scripted
    job_id = upload(client, provider="scripted").json()["id"]
    deadline = time.monotonic() + 20
    while client.get(f"/jobs/{job_id}").json()["status"] != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    canceled = client.post(f"/jobs/{job_id}/cancel").json()
    assert canceled["status"] == "canceled"
    while not _calls("cancel"):
        assert time.monotonic() < deadline, "the vendor was not asked to cancel"
        time.sleep(0.05)
    assert _calls("cancel") == ["v1"]
    polls = len(_calls("fetch"))
    time.sleep(1.5)
    assert len(_calls("fetch")) == polls  # no more polling of a canceled job
    assert client.get(f"/jobs/{job_id}").json()["status"] == "canceled"
