"""A real gateway on loopback against a fake OpenAI-compatible upstream, over real HTTP."""

from __future__ import annotations

import json
import re

import pytest

from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.fakes.openai import API_KEY, DURATION, REFUSED_FILE, SEGMENTS, TEXT, FakeOpenAI
from tests.providers import helpers
from tests.providers.helpers import Start, Started

fake = helpers.fake_vendor_fixture(FakeOpenAI)


@pytest.fixture
def gateway(fake: FakeOpenAI, vendor_gateway: Start) -> Started:
    return vendor_gateway(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake.base_url + "/v1")


def test_upload_is_transcribed_with_words_segments_and_times(
    fake: FakeOpenAI, gateway: Started
) -> None:
    server, key = gateway
    options = {"prompt": "Greetings and a test.", "temperature": 0.2}
    with server.client(key) as client:
        job = helpers.finished_job(client, "openai", language="en-US", options=options)
        assert job["status"] == "completed", job
        assert job["provider_status"] == "completed"
        assert job["provider_job_id"] == "req_fake0001"  # the upstream's request id
        assert job["error"] is None

        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
        assert transcript["provider"] == "openai"
        assert transcript["text"] == TEXT
        assert transcript["language"] == "en"  # "english" upstream
        assert transcript["duration"] == DURATION
        assert [(s["start"], s["end"], s["text"]) for s in transcript["segments"]] == [
            (start, end, text.strip()) for start, end, text, _ in SEGMENTS
        ]
        assert [
            [(w["start"], w["end"], w["text"], w["confidence"]) for w in s["words"]]
            for s in transcript["segments"]
        ] == [[(*word, None) for word in words] for *_, words in SEGMENTS]

        text = client.get(f"/jobs/{job['id']}/transcript", params={"format": "text"})
        assert text.status_code == 200 and text.text == TEXT + "\n"
        srt = client.get(f"/jobs/{job['id']}/transcript", params={"format": "srt"}).text
        assert re.match(r"1\n00:00:00,\d{3} --> 00:00:01,\d{3}\nHello world\.", srt), srt
        assert "This is a test." in srt
        vtt = client.get(f"/jobs/{job['id']}/transcript", params={"format": "vtt"}).text
        assert vtt.startswith("WEBVTT\n\n") and "Hello world." in vtt

    [call] = fake.received
    assert call.authorization == f"Bearer {API_KEY}"
    assert call.value("model") == "whisper-1"
    assert call.value("language") == "en"  # ISO-639-1, not en-US
    assert call.value("prompt") == "Greetings and a test."
    assert call.value("temperature") == "0.2"
    assert call.value("response_format") == "verbose_json"
    assert call.values("timestamp_granularities[]") == ["word", "segment"]
    assert (call.filename, call.content_type) == (SPEECH_WAV.name, "audio/wav")
    assert call.audio == SPEECH_WAV.read_bytes()


def test_source_url_is_downloaded_by_the_gateway_and_uploaded(
    fake: FakeOpenAI, gateway: Started
) -> None:
    server, key = gateway
    with helpers.serving() as audio, server.client(key) as client:
        job = helpers.finished_job(client, "openai", source_url=audio.url, language="en")
        assert job["status"] == "completed", job
        assert job["source"] == {"type": "url", "url": audio.url}
        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
        assert len(transcript["segments"]) == 2
    assert audio.requests == 1
    [call] = fake.received
    assert call.audio == SPEECH_WAV.read_bytes()
    assert call.filename == "speech.wav"  # the link's name: its extension tells the type
    assert call.content_type == "audio/wav"


def test_text_only_upstream_completes_with_text_and_no_segments(
    fake: FakeOpenAI, gateway: Started
) -> None:
    fake.text_only = True
    server, key = gateway
    with server.client(key) as client:
        job = helpers.finished_job(client, "openai")
        assert job["status"] == "completed", job
        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
        assert transcript["text"] == TEXT
        assert transcript["segments"] == []
        assert transcript["language"] is None and transcript["duration"] is None
        text = client.get(f"/jobs/{job['id']}/transcript", params={"format": "text"})
        assert text.text == TEXT + "\n"
        # No times were given, so none are made up for subtitles.
        srt = client.get(f"/jobs/{job['id']}/transcript", params={"format": "srt"})
        assert_problem(srt, 422, "times")


def test_gpt_4o_model_is_asked_for_json(fake: FakeOpenAI, gateway: Started) -> None:
    server, key = gateway
    with server.client(key) as client:
        job = helpers.finished_job(client, "openai", options={"model": "gpt-4o-transcribe"})
        assert job["status"] == "completed", job
        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
        assert transcript["text"] == TEXT and transcript["segments"] == []
    [call] = fake.received
    assert call.value("model") == "gpt-4o-transcribe"
    assert call.value("response_format") == "json"
    assert call.values("timestamp_granularities[]") == []


def test_server_error_then_success(fake: FakeOpenAI, gateway: Started) -> None:
    fake.fail("transcribe", 500, body={"error": {"message": "The server had an error"}})
    job = helpers.run_job(gateway, "openai")
    assert job["status"] == "completed", job
    assert len(fake.received) == 2


def test_rate_limit_waits_for_retry_after(fake: FakeOpenAI, gateway: Started) -> None:
    fake.fail(
        "transcribe",
        429,
        headers={"Retry-After": "2"},
        body={
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
    )
    job = helpers.run_job(gateway, "openai")
    assert job["status"] == "completed", job
    first, second = fake.received
    assert second.at - first.at >= 2.0


def test_refused_input_fails_with_the_vendors_detail(fake: FakeOpenAI, gateway: Started) -> None:
    fake.fail("transcribe", 400, body=REFUSED_FILE)
    job = helpers.run_job(gateway, "openai")
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "unsupported_media"
    assert job["error"]["retryable"] is False
    assert "corrupted" in job["error"]["message"]
    assert job["error"]["provider_detail"] == {"status_code": 400, "body": REFUSED_FILE}
    assert len(fake.received) == 1  # a refusal is not retried


def test_wrong_key_fails_with_provider_auth(fake: FakeOpenAI, vendor_gateway: Start) -> None:
    gateway = vendor_gateway(OPENAI_API_KEY="sk-wrong", OPENAI_BASE_URL=fake.base_url + "/v1")
    job = helpers.run_job(gateway, "openai")
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "provider_auth"
    assert job["error"]["provider_detail"]["body"]["error"]["code"] == "invalid_api_key"
    assert "sk-wrong" not in json.dumps(job)


def test_without_a_key_openai_is_not_offered(vendor_gateway: Start) -> None:
    server, key = vendor_gateway()
    with server.client(key) as client:
        providers = client.get("/providers").json()["data"]
        assert "openai" not in {p["name"] for p in providers}
        refused = upload(client, provider="openai")
        assert_problem(refused, 422, "OPENAI_API_KEY")


def test_providers_lists_openai_with_its_options(gateway: Started) -> None:
    server, key = gateway
    with server.client(key) as client:
        providers = {p["name"]: p for p in client.get("/providers").json()["data"]}
    openai = providers["openai"]
    assert openai["capabilities"]["synchronous"] is True
    assert openai["capabilities"]["cancel"] is False
    assert set(openai["options_schema"]["properties"]) == {"model", "prompt", "temperature"}
    with server.client(key) as client:
        refused = upload(client, provider="openai", options='{"response_format": "srt"}')
    assert_problem(refused, 422, "response_format")
