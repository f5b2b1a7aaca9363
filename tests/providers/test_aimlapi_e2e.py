"""AIML API end to end: a real gateway on PostgreSQL and the fake AIML API, both on
127.0.0.1, talking real HTTP (uploads, JSON url jobs, status polls). AIML API has
no webhooks, so every job here completes by polling."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.fakes.aimlapi import FakeAimlApi, load
from tests.providers import helpers
from tests.providers.helpers import Start

SAMPLE = (
    "He doesn't belong to you, and I don't see how you have anything to do with what is be "
    "his power, if he possess only that from this stage to you."
)


fake = helpers.fake_vendor_fixture(FakeAimlApi)


@pytest.fixture
def aimlapi(vendor_gateway: Start, fake: FakeAimlApi) -> Start:
    return helpers.gateway_starter(
        vendor_gateway, AIMLAPI_BASE_URL=fake.base_url, AIMLAPI_API_KEY=fake.api_key
    )


def test_upload_is_transcribed_and_normalised(aimlapi: Start, fake: FakeAimlApi):
    fake.answer.steps = 2  # queued, generating, then completed
    gateway, key = aimlapi()
    with gateway.client(key) as client:
        options = {"punctuate": True, "smart_format": True, "diarize": True}
        done = helpers.finished_job(client, "aimlapi", language="en-US", options=options)
        assert done["status"] == "completed", done
        assert done["provider_status"] == "completed"
        assert done["provider_job_id"] in fake.jobs
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()
        srt = client.get(f"/jobs/{done['id']}/transcript", params={"format": "srt"}).text

    assert transcript == {
        "text": SAMPLE,
        "language": None,
        "duration": 11.4,
        "provider": "aimlapi",
        "segments": [
            {
                "start": 0.32,
                "end": 0.4,
                "text": SAMPLE,
                "channel": 0,
                "speaker": "0",
                "words": [{"start": 0.32, "end": 0.4, "text": "He", "confidence": 0.9941406}],
            }
        ],
    }
    assert srt.startswith("1\n00:00:00,320 --> 00:00:00,400\n")
    (submitted,) = fake.calls("submit")
    assert submitted.headers["authorization"] == f"Bearer {fake.api_key}"
    assert submitted.form["audio"] == SPEECH_WAV.read_bytes()
    assert {k: v for k, v in submitted.form.items() if k != "audio"} == {
        "model": "#g1_nova-2-general",
        "language": "en-US",
        "punctuate": "true",
        "smart_format": "true",
        "diarize": "true",
    }
    statuses = fake.calls("status")
    assert len(statuses) == 3  # two in-progress answers, then the result
    assert all(r.headers["authorization"] == f"Bearer {fake.api_key}" for r in statuses)
    assert {r.path for r in statuses} == {f"/v1/stt/{done['provider_job_id']}"}


def test_source_url_is_sent_as_json_for_the_vendor_to_fetch(aimlapi: Start, fake: FakeAimlApi):
    fake.shape = "openai"
    options = {"model": "openai/gpt-4o-transcribe", "prompt": "A play."}
    with helpers.serving() as audio:
        gateway, key = aimlapi()
        with gateway.client(key) as client:
            done = helpers.finished_job(
                client, "aimlapi", source_url=audio.url, language="en-US", options=options
            )
            transcript = client.get(f"/jobs/{done['id']}/transcript").json()
    assert done["status"] == "completed", done
    assert audio.requests == 0  # the vendor fetches the URL, not the gateway
    (submitted,) = fake.calls("submit")
    assert submitted.json == {
        "model": "openai/gpt-4o-transcribe",
        "url": audio.url,
        "language": "en",  # ISO 639-1 for OpenAI models
        "prompt": "A play.",
    }
    assert transcript["text"].startswith("He doesn't belong to you")
    assert transcript["segments"] == []  # OpenAI gives no times; none are invented


def test_an_openai_model_gets_the_upload_in_the_file_part(aimlapi: Start, fake: FakeAimlApi):
    fake.shape = "openai"
    done = helpers.run_job(aimlapi(), "aimlapi", options={"model": "openai/gpt-4o-mini-transcribe"})
    assert done["status"] == "completed", done
    (submitted,) = fake.calls("submit")
    assert submitted.form["file"] == SPEECH_WAV.read_bytes()
    assert "audio" not in submitted.form


def test_an_assemblyai_model_gets_language_code(aimlapi: Start, fake: FakeAimlApi):
    fake.shape = "assemblyai"
    gateway, key = aimlapi()
    with gateway.client(key) as client:
        options = {"model": "aai/slam-1", "speaker_labels": True}
        done = helpers.finished_job(client, "aimlapi", language="en-GB", options=options)
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()
    assert done["status"] == "completed", done
    (submitted,) = fake.calls("submit")
    assert submitted.form["language_code"] == "en_uk"
    assert submitted.form["speaker_labels"] == "true"
    assert "language" not in submitted.form
    words = transcript["segments"][0]["words"]
    assert (words[0]["start"], words[0]["end"]) == (0.32, 0.4)  # from milliseconds
    assert transcript["language"] == "en-US"


@pytest.mark.parametrize(
    ("vocabulary", "payload_key", "shape", "provider_status"),
    [
        ("readme", "result", "deepgram", "completed"),
        ("readme", "output", "assemblyai-utterances", "completed"),
        ("spec", "output", "deepgram-object", "completed"),
        ("spec", "result", "openai", "completed"),
        ("spec", "output", "deepgram-multichannel", "completed"),
    ],
)
def test_every_documented_answer_variant_ends_completed(
    aimlapi: Start,
    fake: FakeAimlApi,
    vocabulary: str,
    payload_key: str,
    shape: str,
    provider_status: str,
):
    fake.answer.vocabulary, fake.answer.payload_key, fake.answer.steps = vocabulary, payload_key, 2
    fake.shape = shape
    fake.create_status = vocabulary == "spec"
    gateway, key = aimlapi(public=False)  # no PUBLIC_BASE_URL: polling is all there is
    with gateway.client(key) as client:
        job = helpers.create_job(client, "aimlapi")
        seen_in_progress: set[str] = set()
        deadline = time.monotonic() + 60
        while (current := client.get(f"/jobs/{job['id']}").json())["status"] not in (
            "completed",
            "failed",
        ) and time.monotonic() < deadline:
            if current["provider_status"]:
                seen_in_progress.add(current["provider_status"])
            time.sleep(0.1)
        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
    assert current["status"] == "completed", current
    assert current["provider_status"] == provider_status
    # The vendor's own words were shown while it worked.
    expected = {"spec": {"queued", "generating"}, "readme": {"waiting", "active"}}[vocabulary]
    assert seen_in_progress <= expected | {"queued"}
    assert seen_in_progress & expected
    assert transcript["provider"] == "aimlapi"
    assert transcript["text"]


def test_a_500_on_submit_is_retried(aimlapi: Start, fake: FakeAimlApi):
    fake.fail("submit", 500, body={"message": "Internal server error", "statusCode": 500})
    done = helpers.run_job(aimlapi(), "aimlapi")
    assert done["status"] == "completed", done
    assert len(fake.calls("submit")) == 2
    assert len(fake.jobs) == 1


def test_a_504_generation_timeout_on_status_is_retried(aimlapi: Start, fake: FakeAimlApi):
    fake.fail("status", 504, body=load("error_504"))
    done = helpers.run_job(aimlapi(), "aimlapi")
    assert done["status"] == "completed", done
    assert len(fake.calls("status")) == 3  # the 504, one in progress, the result


def test_429_retry_after_is_honoured(aimlapi: Start, fake: FakeAimlApi):
    fake.fail("status", 429, headers={"Retry-After": "2"}, body=load("error_429"))
    done = helpers.run_job(aimlapi(), "aimlapi")
    assert done["status"] == "completed", done
    first, second = helpers.call_times(fake, "status")[:2]
    assert second - first >= 2.0


def test_refused_input_fails_the_job_with_the_vendors_detail(aimlapi: Start, fake: FakeAimlApi):
    done = helpers.run_job(aimlapi(), "aimlapi", options={"model": "nova-9"})
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "invalid_request"
    assert done["error"]["retryable"] is False
    detail = done["error"]["provider_detail"]
    assert detail["status_code"] == 400
    assert detail["body"]["message"].startswith("Body validation error!")
    assert "received 'nova-9'" in detail["body"]["message"]
    assert detail["body"]["path"] == "/v1/stt/create"
    assert len(fake.calls("submit")) == 1  # a refusal is not retried
    assert fake.calls("status") == []


def test_out_of_credits_fails_the_job_as_a_quota_problem(aimlapi: Start, fake: FakeAimlApi):
    fake.fail("submit", 403, body=load("error_403_credits"))
    done = helpers.run_job(aimlapi(), "aimlapi")
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "provider_quota"
    assert done["error"]["provider_detail"]["body"]["message"].startswith("You've run out")


@pytest.mark.parametrize("vocabulary", ["spec", "readme"])
def test_vendor_side_failure_fails_the_job(aimlapi: Start, fake: FakeAimlApi, vocabulary: str):
    fake.answer.vocabulary = vocabulary
    fake.fail_jobs = {"name": "TranscriptionError", "message": "Audio could not be decoded"}
    gateway, key = aimlapi()
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "aimlapi")
        transcript = client.get(f"/jobs/{done['id']}/transcript")
    assert done["status"] == "failed", done
    failure_word = {"spec": "error", "readme": "failed"}[vocabulary]
    assert done["provider_status"] == failure_word
    assert done["error"]["code"] == "provider_failed"
    assert done["error"]["message"] == (
        "aimlapi could not transcribe the audio: TranscriptionError: Audio could not be decoded"
    )
    assert done["error"]["provider_detail"] == {"status": failure_word, "error": fake.fail_jobs}
    assert transcript.status_code == 409


def test_a_wrong_key_fails_the_job_without_showing_the_key(aimlapi: Start, fake: FakeAimlApi):
    done = helpers.run_job(aimlapi(AIMLAPI_API_KEY="not-the-key-4711"), "aimlapi")
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "provider_auth"
    assert done["error"]["provider_detail"]["body"]["statusCode"] == 401
    assert "not-the-key-4711" not in json.dumps(done)


def test_no_callback_is_asked_for_and_a_forged_one_changes_nothing(
    aimlapi: Start, fake: FakeAimlApi
):
    gateway, key = aimlapi()  # PUBLIC_BASE_URL is set, yet AIML API takes no webhook
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "aimlapi")
        assert done["status"] == "completed", done
        statuses = len(fake.calls("status"))

        forged = httpx.post(
            f"{gateway.base_url}/callbacks/aimlapi/{done['id']}",
            params={"expires": str(int(time.time()) + 3600), "sig": "forged"},
            json={"generation_id": done["provider_job_id"], "status": "error"},
        )
        assert_problem(forged, 404)
        unsigned = httpx.post(f"{gateway.base_url}/callbacks/aimlapi/{done['id']}", json={})
        assert_problem(unsigned, 404)
        time.sleep(0.5)
        after = client.get(f"/jobs/{done['id']}").json()
    assert after == done  # still completed, updated_at unchanged
    assert len(fake.calls("status")) == statuses
    (submitted,) = fake.calls("submit")
    assert not any("callback" in k or "webhook" in k for k in submitted.form)
    assert fake.callbacks_sent == []


def test_options_are_checked_at_creation(aimlapi: Start, fake: FakeAimlApi):
    gateway, key = aimlapi()
    with gateway.client(key) as client:
        unknown = upload(client, provider="aimlapi", options='{"speaker_count": 2}')
        assert_problem(unknown, 422, "speaker_count")
        wrong_family = upload(
            client,
            provider="aimlapi",
            options='{"model": "openai/gpt-4o-transcribe", "diarize": true}',
        )
        assert_problem(wrong_family, 422, "diarize")
        listed = client.get("/providers").json()["data"]
    assert fake.requests == []
    (entry,) = [p for p in listed if p["name"] == "aimlapi"]
    assert entry["capabilities"]["callbacks"] is False
    assert entry["capabilities"]["cancel"] is False
    assert entry["capabilities"]["languages"] is None
    assert entry["options_schema"]["properties"]["model"]["default"] == "#g1_nova-2-general"
