"""Daglo jobs through a real gateway and the fake Daglo, both on loopback."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.fakes.daglo import FakeDaglo
from tests.providers import daglo_e2e_support, helpers
from tests.providers.helpers import Start
from tests.support.vendor import Recorded, wait_for_job

fake = helpers.fake_vendor_fixture(FakeDaglo)
start = daglo_e2e_support.start  # the shared fixture, under the name the tests ask for


def config(call: Recorded) -> dict[str, Any]:
    """The body fields of a submit, from either content type."""
    if call.json is not None:
        return {k: v for k, v in call.json.items() if k != "audio"}
    return {k: json.loads(v) for k, v in call.form.items() if k != "file"}


def callback_url(fake: FakeDaglo) -> str:
    url: str = config(fake.calls("submit")[-1])["callback"]["url"]
    return url


def test_an_upload_completes_with_words_times_and_speakers(start: Start, fake: FakeDaglo) -> None:
    gateway, key = start(poll_min_seconds=1.0)  # Daglo's callbacks come before a poll would
    options = {
        "sttConfig": {"speakerDiarization": {"enable": True, "speakerCountHint": 2}},
        "nlpConfig": {"keywordExtraction": {"enable": True, "maxCount": 1}},
    }
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "daglo", language="ko", options=options)
        assert done["status"] == "completed", done
        assert done["provider_status"] == "transcribed"
        assert done["provider_job_id"] in fake.jobs
        assert done["options"] == options
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()
        srt = client.get(f"/jobs/{done['id']}/transcript", params={"format": "srt"}).text

    assert transcript["provider"] == "daglo" and transcript["language"] == "ko-KR"
    assert transcript["duration"] is None
    assert transcript["text"].startswith("안녕하세요. 액션 파워입니다.")
    assert [(s["speaker"], s["text"]) for s in transcript["segments"]] == [
        ("1", "안녕하세요."),
        ("1", "액션 파워입니다."),
        ("1", "음성 인식의"),
        ("2", "선두주자 액션 파워의 기술을 만나보세요."),
    ]
    words = [w for s in transcript["segments"] for w in s["words"]]
    assert words[0] == {"start": 0.06, "end": 0.86, "text": "안녕하세요.", "confidence": None}
    assert words[1]["end"] == 1.42 and words[-1]["end"] == 6.48
    assert srt.startswith("1\n00:00:00,060 --> 00:00:00,860\n")

    [submit] = fake.calls("submit")
    assert submit.headers["authorization"] == f"Bearer {fake.api_key}"
    assert submit.headers["content-type"].startswith("multipart/form-data")
    assert submit.form["file"] == SPEECH_WAV.read_bytes()
    sent = config(submit)
    assert sent["sttConfig"] == {
        "language": "ko-KR",
        "speakerDiarization": {"enable": True, "speakerCountHint": 2},
    }
    assert sent["nlpConfig"] == options["nlpConfig"]
    assert "callbackUrl" not in submit.form
    assert all(c.headers["authorization"] == f"Bearer {fake.api_key}" for c in fake.requests)

    # The callback link was given, and Daglo's progress and final POSTs reached it.
    url = sent["callback"]["url"]
    assert url.startswith(f"{gateway.base_url}/callbacks/daglo/{done['id']}?")
    assert len(fake.callbacks_sent) == len(fake.steps) + 1
    assert fake.callbacks_sent[-1] == (url, 204)
    # The raw payload is kept: the keywords Daglo extracted are there.
    assert fake.jobs[done["provider_job_id"]].results[0]["keywords"] == ["액션 파워"]


def test_a_source_url_is_sent_as_json_for_daglo_to_fetch(start: Start, fake: FakeDaglo) -> None:
    options = {"sttConfig": {"multiChannel": {"channelCount": 2}}}
    with helpers.serving() as audio:
        gateway, key = start()
        with gateway.client(key) as client:
            done = helpers.finished_job(
                client, "daglo", source_url=audio.url, language="en-US", options=options
            )
            assert done["status"] == "completed", done
            transcript = client.get(f"/jobs/{done['id']}/transcript").json()
        [submit] = fake.calls("submit")
        assert submit.headers["content-type"] == "application/json"
        assert submit.json["audio"] == {"source": {"url": audio.url}}
        assert submit.json["sttConfig"] == {
            "language": "en-US",
            "multiChannel": {"channelCount": 2},
        }
        # Daglo fetched the audio; the gateway did not.
        assert audio.requests == 1
        assert fake.jobs[done["provider_job_id"]].audio == SPEECH_WAV.read_bytes()
        assert {s["channel"] for s in transcript["segments"]} == {0, 1}
        assert len(transcript["text"].splitlines()) == 2


def test_without_a_public_url_no_callback_is_asked_and_polling_completes(
    start: Start, fake: FakeDaglo
) -> None:
    done = helpers.run_job(start(public=False), "daglo")
    assert done["status"] == "completed", done
    assert "callback" not in config(fake.calls("submit")[0])
    assert fake.callbacks_sent == []


def test_with_callbacks_lost_the_job_completes_by_polling(start: Start, fake: FakeDaglo) -> None:
    fake.callbacks_enabled = False
    done = helpers.run_job(start(), "daglo")
    assert done["status"] == "completed", done
    assert "callback" in config(fake.calls("submit")[0])
    assert fake.callbacks_sent == []
    assert len(fake.calls("status")) >= 1


def test_a_500_on_submit_is_retried(start: Start, fake: FakeDaglo) -> None:
    fake.fail("submit", 500, body={"error": "Internal Server Error."})
    done = helpers.run_job(start(), "daglo")
    assert done["status"] == "completed", done
    assert len(fake.calls("submit")) == 2
    assert len(fake.jobs) == 1


def test_a_429_is_retried_no_sooner_than_retry_after(start: Start, fake: FakeDaglo) -> None:
    # No callbacks here: only the worker's own schedule is measured (the next
    # test shows a callback does not shorten the wait either).
    fake.callbacks_enabled = False
    fake.fail("status", 429, headers={"Retry-After": "2"}, body={"error": "Too Many Requests."})
    done = helpers.run_job(start(), "daglo")
    assert done["status"] == "completed", done
    first, second = helpers.call_times(fake, "status")[:2]
    assert second - first >= 2.0


def test_a_callback_does_not_cut_a_retry_after_short(start: Start, fake: FakeDaglo) -> None:
    fake.callbacks_enabled = False
    fake.fail("status", 429, headers={"Retry-After": "3"}, body={"error": "Too Many Requests."})
    gateway, key = start()
    with gateway.client(key) as client:
        job = helpers.create_job(client, "daglo")
        helpers.wait_until(lambda: len(fake.calls("status")) == 1)
        time.sleep(0.3)  # the worker reschedules the 429'd poll
        assert httpx.post(callback_url(fake), json={"status": "transcribed"}).status_code == 204
        assert wait_for_job(client, job["id"])["status"] == "completed"
    first, second = helpers.call_times(fake, "status")[:2]
    assert second - first >= 3.0


@pytest.mark.parametrize(
    ("refuse", "status", "code", "error"),
    [
        ("fault", 400, "invalid_request", "Bad Request. Invalid format."),
        ("size", 413, "input_too_large", "Request too large."),
    ],
)
def test_a_refused_input_fails_with_daglos_detail(
    start: Start, fake: FakeDaglo, refuse: str, status: int, code: str, error: str
) -> None:
    if refuse == "fault":
        fake.fail("submit", status, body={"error": error})
    else:
        fake.max_file_bytes = 100
    done = helpers.run_job(start(), "daglo")
    assert done["status"] == "failed", done
    assert done["error"]["code"] == code and done["error"]["retryable"] is False
    assert done["error"]["provider_detail"] == {"status_code": status, "body": {"error": error}}
    assert fake.api_key not in json.dumps(done)
    assert len(fake.calls("submit")) == 1 and fake.jobs == {}


def test_a_wrong_token_fails_the_job_as_an_auth_problem(start: Start, fake: FakeDaglo) -> None:
    done = helpers.run_job(start(DAGLO_API_KEY="not-the-token"), "daglo")
    assert done["status"] == "failed"
    assert done["error"]["code"] == "provider_auth"
    assert done["error"]["provider_detail"]["body"] == {"error": "Unauthorized."}
    assert "not-the-token" not in json.dumps(done)


@pytest.mark.parametrize(
    ("outcome", "code", "retryable"),
    [("file_error", "invalid_audio", False), ("transcript_error", "provider_failed", True)],
)
def test_a_failure_at_daglo_fails_the_job_with_a_clear_code(
    start: Start, fake: FakeDaglo, outcome: str, code: str, retryable: bool
) -> None:
    fake.outcome = outcome
    gateway, key = start()
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "daglo")
        transcript = client.get(f"/jobs/{done['id']}/transcript")
    assert done["status"] == "failed" and done["provider_status"] == outcome
    assert done["error"]["code"] == code and done["error"]["retryable"] is retryable
    assert done["error"]["provider_detail"]["status"] == outcome
    assert done["error"]["provider_detail"]["message"] in done["error"]["message"]
    assert transcript.status_code == 409


def test_a_source_url_daglo_cannot_read_ends_in_input_error(start: Start, fake: FakeDaglo) -> None:
    with helpers.serving(b"gone", content_type="text/plain", status=404) as missing:
        done = helpers.run_job(start(), "daglo", source_url=missing.url)
    assert done["status"] == "failed" and done["provider_status"] == "input_error"
    assert done["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("outcome", "polls"),
    [
        ("empty", True),  # the GET answers 204
        ("empty_at_once", False),  # the POST does: done, with no rid to poll
    ],
)
def test_an_empty_result_completes_with_an_empty_transcript_after_one_upload(
    start: Start, fake: FakeDaglo, outcome: str, polls: bool
) -> None:
    fake.outcome = outcome
    gateway, key = start()
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "daglo")
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()
    assert done["status"] == "completed", done
    assert transcript["text"] == "" and transcript["segments"] == []
    assert len(fake.calls("submit")) == 1
    assert bool(fake.calls("status")) is polls


def test_a_duplicate_callback_after_completion_changes_nothing(
    start: Start, fake: FakeDaglo
) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "daglo")
        assert done["status"] == "completed"
        polls = len(fake.calls("status"))
        final = {"status": "transcribed", "sttResults": fake.jobs[done["provider_job_id"]].results}
        for _ in range(2):
            assert httpx.post(callback_url(fake), json=final).status_code == 204
        time.sleep(1.0)
        again = client.get(f"/jobs/{done['id']}").json()
    assert again["status"] == "completed"
    assert again["updated_at"] == done["updated_at"]
    assert again["completed_at"] == done["completed_at"]
    assert len(fake.calls("status")) == polls


def test_a_forged_callback_is_a_404_and_costs_no_status_call(start: Start, fake: FakeDaglo) -> None:
    fake.callbacks_enabled = False
    fake.step_seconds = 30  # the job stays processing
    gateway, key = start(poll_min_seconds=1.0)  # the poll interval measured below
    with gateway.client(key) as client:
        job = helpers.create_job(client, "daglo")
        helpers.wait_until(lambda: len(fake.calls("status")) >= 1)
        url = callback_url(fake)
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        base = f"{parts.scheme}://{parts.netloc}"
        forgeries = [
            f"{base}{parts.path}?{urlencode({**query, 'sig': helpers.tampered(query['sig'])})}",
            f"{base}{parts.path}?{urlencode({**query, 'expires': str(int(query['expires']) + 1)})}",
            f"{base}{parts.path}",
            f"{base}/callbacks/klangio/{job['id']}?{parts.query}",  # another provider's path
        ]
        last = helpers.call_times(fake, "status")[-1]
        polls = len(fake.calls("status"))
        for forged in forgeries:
            response = httpx.post(forged, json={"status": "transcribed"})
            assert response.status_code == 404, forged
        # The next scheduled poll is a second after the last one; a callback taken
        # as genuine would have made it due at once.
        time.sleep(max(0.0, last + 0.6 - time.monotonic()))
        assert len(fake.calls("status")) == polls
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "processing"


def test_a_language_option_that_contradicts_the_job_is_a_422_at_creation(
    start: Start, fake: FakeDaglo
) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        options = json.dumps({"sttConfig": {"language": "ko-KR"}})
        refused = upload(client, provider="daglo", language="ja", options=options)
        body = assert_problem(refused, 422, "'daglo'", "contradicts", "'ja'")
        assert [e["field"] for e in body["errors"]] == ["options.sttConfig.language"]
        assert client.get("/jobs").json()["data"] == []
    assert fake.calls("submit") == []
