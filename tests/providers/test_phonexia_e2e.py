"""A real gateway on loopback and the fake Phonexia appliance, over real HTTP both ways."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.fakes.phonexia import FakePhonexia, payload
from tests.providers import helpers
from tests.providers.helpers import Start

OPTIONS = {
    "channels": [0, 1],
    "preferred_phrases": ["good morning"],
    "additional_words": [{"spelling": "frumious", "pronunciations": ["f r u m i o s"]}],
}


fake = helpers.fake_vendor_fixture(FakePhonexia)


@pytest.fixture
def start(vendor_gateway: Start, fake: FakePhonexia) -> Start:
    return helpers.gateway_starter(vendor_gateway, PHONEXIA_BASE_URL=fake.base_url)


def test_upload_is_transcribed_by_polling(start: Start, fake: FakePhonexia) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        providers = client.get("/providers").json()
        [listed] = [p for p in providers["data"] if p["name"] == "phonexia"] or [None]
        assert listed is not None, providers
        assert listed["options_schema"]["additionalProperties"] is False

        job = helpers.finished_job(client, "phonexia", language="en-US", options=OPTIONS)
        assert job["status"] == "completed", job
        assert job["provider_status"] == "done"
        [task_id] = fake.tasks
        assert job["provider_job_id"] == task_id

        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
        assert transcript["provider"] == "phonexia"
        assert transcript["text"] == "hello world good morning frumious"
        assert transcript["duration"] is None
        assert [(s["channel"], s["text"]) for s in transcript["segments"]] == [
            (0, "hello world"),
            (1, "good morning frumious"),
        ]
        hello = transcript["segments"][0]
        assert (hello["start"], hello["end"]) == (0.06, 1.86)
        assert [(w["text"], w["start"], w["end"]) for w in hello["words"]] == [
            ("hello", 0.06, 0.86),
            ("world", 0.98, 1.86),
        ]
        srt = client.get(f"/jobs/{job['id']}/transcript", params={"format": "srt"}).text
        assert "hello world" in srt

    # The fake saw the audio, the client's tag, the query parameters and the config.
    [submit] = fake.calls("submit")
    assert submit.path == "/api/technology/speech-to-text"
    assert submit.form["file"] == SPEECH_WAV.read_bytes()
    assert submit.query == {"language": "en-US", "channels": "0,1"}
    assert json.loads(submit.form["config"]) == {
        "preferred_phrases": ["good morning"],
        "additional_words": OPTIONS["additional_words"],
    }
    assert "authorization" not in submit.headers
    # pending, running, done: polled, never called back (no callback is documented).
    statuses = fake.calls("status")
    assert len(statuses) == 3
    assert all(r.path == f"/api/technology/speech-to-text/{task_id}" for r in statuses)
    assert fake.callbacks_sent == []
    assert all("callback" not in json.dumps(r.query) for r in fake.requests)


def test_source_url_is_downloaded_by_the_gateway_first(start: Start, fake: FakePhonexia) -> None:
    fake.progression = []
    with helpers.serving() as audio:
        job = helpers.run_job(start(), "phonexia", source_url=audio.url, language="cs-CZ")
    assert job["status"] == "completed", job
    assert job["source"] == {"type": "url", "url": audio.url}
    assert audio.requests == 1
    [submit] = fake.calls("submit")
    assert submit.form["file"] == SPEECH_WAV.read_bytes()
    assert submit.query["language"] == "cs-CZ"
    assert "config" not in submit.form


def test_whisper_engine_detects_the_language(start: Start, fake: FakePhonexia) -> None:
    fake.progression = ["running"]
    gateway, key = start()
    with gateway.client(key) as client:
        job = helpers.finished_job(client, "phonexia", options={"engine": "whisper-enhanced"})
        assert job["status"] == "completed", job
        [task_id] = fake.tasks
        assert job["provider_job_id"] == task_id  # bare, as for the default engine
        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
        assert transcript["language"] == "en"
        assert transcript["segments"][0]["words"] == []
    [submit] = fake.calls("submit")
    assert submit.path == "/api/technology/speech-to-text-whisper-enhanced"
    assert "language" not in submit.query
    statuses = fake.calls("status")
    assert statuses and {r.path for r in statuses} == {f"{submit.path}/{task_id}"}


def test_unknown_options_are_refused_at_creation(start: Start, fake: FakePhonexia) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        created = upload(client, provider="phonexia", language="en", options='{"langauge": "cs"}')
        assert created.status_code == 422, created.text
        assert "langauge" in created.json()["detail"]
    assert fake.requests == []


def test_default_engine_without_a_language_is_a_422_at_creation(
    start: Start, fake: FakePhonexia
) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        refused = upload(client, provider="phonexia")
        body = assert_problem(refused, 422, "'phonexia'", "needs a language", "whisper-enhanced")
        assert [e["field"] for e in body["errors"]] == ["language"]
        # As a fallback, which runs with the default engine, too.
        as_fallback = upload(client, provider="local", fallback_providers='["phonexia"]')
        assert_problem(as_fallback, 422, "fallback provider 'phonexia'", "needs a language")
        assert client.get("/jobs").json()["data"] == []
        # The engine that detects the language takes the job without one.
        whisper = upload(client, provider="phonexia", options='{"engine": "whisper-enhanced"}')
        assert whisper.status_code == 202, whisper.text
        helpers.wait_until(lambda: fake.requests)
    assert all("whisper" in r.path for r in fake.requests)


def test_a_500_is_retried_then_succeeds(start: Start, fake: FakePhonexia) -> None:
    fake.progression = []
    fake.fail("submit", 500, body={"type": "internal", "message": "Oops.", "detail": []})
    job = helpers.run_job(start(), "phonexia", language="en")
    assert job["status"] == "completed", job
    assert len(fake.calls("submit")) == 2
    assert len(fake.tasks) == 1


def test_capacity_and_full_storage_are_waited_out(start: Start, fake: FakePhonexia) -> None:
    fake.progression = []
    fake.capacity_exceeded("submit")
    fake.storage_full("submit")
    job = helpers.run_job(start(), "phonexia", language="en")
    assert job["status"] == "completed", job
    assert len(fake.calls("submit")) == 3


def test_a_429_retry_after_is_honoured(start: Start, fake: FakePhonexia) -> None:
    fake.progression = []
    fake.rate_limit("status", retry_after=2)
    job = helpers.run_job(start(), "phonexia", language="en")
    assert job["status"] == "completed", job
    limited, retried = helpers.call_times(fake, "status")[:2]
    assert retried - limited >= 2.0


def test_a_file_over_the_vendors_limit_fails_with_its_envelope(
    start: Start, fake: FakePhonexia
) -> None:
    fake.max_file_size = 1000
    job = helpers.run_job(start(), "phonexia", language="en")
    assert job["status"] == "failed"
    assert job["error"]["code"] == "input_too_large"
    assert job["error"]["retryable"] is False
    body = job["error"]["provider_detail"]["body"]
    assert body["type"] == "request.size-limit-exceeded"
    assert body["detail"][0]["context"]["max_file_size"] == 1000
    assert len(fake.calls("submit")) == 1


@pytest.mark.parametrize(
    ("outcome", "code", "retryable", "message"),
    [
        # The input was at fault: retrying it would not help.
        ("rejected", "provider_rejected", False, "Media file could not be decoded"),
        # The vendor's own failure: the client may try again.
        ("failed", "provider_failed", True, "Task execution failed"),
    ],
    ids=["rejected", "failed"],
)
def test_a_task_the_vendor_ends_badly_fails_the_job_with_its_detail(
    start: Start, fake: FakePhonexia, outcome: str, code: str, retryable: bool, message: str
) -> None:
    fake.outcomes.extend([outcome] * 3)
    gateway, key = start()
    with gateway.client(key) as client:
        job = helpers.finished_job(client, "phonexia", language="en")
        assert client.get(f"/jobs/{job['id']}/transcript").status_code == 409
    assert job["status"] == "failed"
    # The vendor's own failure is sent again twice (VENDOR_FAILURE_RESUBMITS), first.
    assert len(fake.tasks) == (3 if retryable else 1)
    assert job["provider_status"] == outcome
    assert job["error"]["code"] == code
    assert job["error"]["retryable"] is retryable
    assert job["error"]["provider_detail"] == payload(f"{outcome}.json")["error"]
    assert message in job["error"]["message"]


def test_a_forged_callback_costs_no_vendor_call(start: Start, fake: FakePhonexia) -> None:
    # The first poll is told to wait 30 s: any status call before then would be
    # one a callback caused.
    fake.rate_limit("status", retry_after=30)
    gateway, key = start()
    with gateway.client(key) as client:
        job_id = helpers.create_job(client, "phonexia", language="en")["id"]
        deadline = 30.0
        while not fake.calls("status") and deadline > 0:
            client.get(f"/jobs/{job_id}", params={"wait": 0.2})
            deadline -= 0.2
        assert len(fake.calls("status")) == 1
        for query in ("?expires=9999999999&sig=forged", "", "?sig="):
            # As a vendor would: no API key, only the link.
            url = str(client.base_url.join(f"/callbacks/phonexia/{job_id}{query}"))
            forged = httpx.post(url, json={})
            assert forged.status_code == 404, forged.text
        job = client.get(f"/jobs/{job_id}", params={"wait": 1.5}).json()
        assert job["status"] == "processing"
    assert len(fake.calls("status")) == 1


def test_with_a_key_the_vendor_sees_a_bearer_token(vendor_gateway: Start) -> None:
    with FakePhonexia(api_key="proxy-secret") as fake:
        fake.progression = ["running"]
        gateway = vendor_gateway(PHONEXIA_BASE_URL=fake.base_url, PHONEXIA_API_KEY="proxy-secret")
        job = helpers.run_job(gateway, "phonexia", language="en")
        assert job["status"] == "completed", job
        assert len(fake.requests) == 3
        assert {r.headers["authorization"] for r in fake.requests} == {"Bearer proxy-secret"}


def test_a_wrong_key_fails_the_job_without_showing_it(vendor_gateway: Start) -> None:
    with FakePhonexia(api_key="right-key") as fake:
        gateway = vendor_gateway(PHONEXIA_BASE_URL=fake.base_url, PHONEXIA_API_KEY="wrong-key-42")
        job = helpers.run_job(gateway, "phonexia", language="en")
        assert job["status"] == "failed"
        assert job["error"]["code"] == "provider_auth"
        assert "wrong-key-42" not in json.dumps(job)
