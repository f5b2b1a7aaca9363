"""Daglo jobs through a real gateway and the fake Daglo, both on loopback; and the
adapter itself against the fake, for what the gateway would hide (names, timing)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from app.providers.base import AudioFormat, PermanentProviderError, SubmitRequest
from app.providers.daglo import RATE_LIMIT, DagloProvider
from app.providers.daglo_options import DagloOptions
from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.fakes.daglo import FakeDaglo
from tests.providers import helpers
from tests.providers.helpers import Start
from tests.support.vendor import Recorded, wait_for_job

fake = helpers.fake_vendor_fixture(FakeDaglo)


@pytest.fixture
def start(vendor_gateway: Start, fake: FakeDaglo) -> Start:
    return helpers.gateway_starter(
        vendor_gateway, DAGLO_BASE_URL=fake.base_url, DAGLO_API_KEY=fake.api_key
    )


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


# --- what an upload is named ------------------------------------------------------------


def ogg_page(packet: bytes, first: bool = True) -> bytes:
    """One Ogg page holding ``packet`` (under 255 bytes); ``first``: a stream's first."""
    return (
        b"OggS\x00" + (b"\x02" if first else b"\x00") + bytes(20) + bytes([1, len(packet)]) + packet
    )


OPUS_HEAD = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
OGG_OPUS = ogg_page(OPUS_HEAD) + ogg_page(b"OpusTags" + bytes(8), first=False)
OGG_VORBIS = ogg_page(b"\x01vorbis" + bytes(23)) + ogg_page(b"\x03vorbis" + bytes(8), first=False)
OGG_SKELETON_OPUS = ogg_page(b"fishead\x00" + bytes(56)) + OGG_OPUS


def ebml(doctype: bytes) -> bytes:
    """An EBML header as browsers and mkvmerge write it, then a Segment's start."""
    fields = (
        b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
        + b"\x42\x82"
        + bytes([0x80 | len(doctype)])
        + doctype
        + b"\x42\x87\x81\x04\x42\x85\x81\x02"
    )
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(fields)]) + fields + b"\x18\x53\x80\x67"


def ftyp(brand: bytes) -> bytes:
    return b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x02\x00" + brand + b"isom"


def daglo_for(fake: FakeDaglo, http: httpx.AsyncClient) -> DagloProvider:
    return DagloProvider(SecretStr(fake.api_key), fake.base_url, http)


def upload_request(
    tmp_path: Path, data: bytes, fmt: AudioFormat, filename: str | None, name: str = "audio"
) -> SubmitRequest:
    """An upload of ``data`` (and some padding) that the client called ``filename``."""
    path = helpers.stored_upload(tmp_path, name, data + bytes(256))
    return helpers.submit_request_for(
        path, options=DagloOptions(), audio_format=fmt, filename=filename, content_type=None
    )


@pytest.mark.parametrize(
    ("head", "fmt", "filename", "sent", "content_type"),
    [
        pytest.param(OGG_OPUS, "ogg", "voice.ogg", "voice.opus", "audio/ogg", id="ogg-opus"),
        pytest.param(
            OGG_SKELETON_OPUS, "ogg", "voice.oga", "voice.opus", "audio/ogg", id="ogg-skeleton"
        ),
        pytest.param(ebml(b"webm"), "webm", "memo.webm", "memo.weba", "audio/webm", id="webm"),
        pytest.param(ftyp(b"M4A "), "mp4", "Memo.MP4", "Memo.m4a", "audio/mp4", id="m4a"),
        pytest.param(ftyp(b"3gp4"), "mp4", "call.mp4", "call.3gp", "audio/3gpp", id="3gp"),
        pytest.param(ftyp(b"qt  "), "mp4", None, "job_1.mov", "video/quicktime", id="mov"),
        pytest.param(
            b"RIFF\x24\x00\x00\x00WAVEfmt ",
            "wav",
            "C:\\rec\\take.mp3",  # names lie: the bytes are WAV
            "take.wav",
            "audio/wav",
            id="wav",
        ),
        pytest.param(b"ID3\x04" + bytes(6), "mp3", "speech", "speech.mp3", "audio/mpeg", id="mp3"),
        pytest.param(
            b"fLaC\x00\x00\x00\x22", "flac", "a.b.flac", "a.b.flac", "audio/flac", id="flac"
        ),
        pytest.param(
            b"FORM\x00\x00\x00\x00AIFF", "aiff", "x.aif", "x.aiff", "audio/aiff", id="aiff"
        ),
        pytest.param(b"#!AMR\n", "amr", ".amr", "job_1.amr", "audio/amr", id="amr"),
    ],
)
async def test_an_upload_is_named_with_the_extension_daglo_lists_for_its_content(
    fake: FakeDaglo,
    tmp_path: Path,
    head: bytes,
    fmt: AudioFormat,
    filename: str | None,
    sent: str,
    content_type: str,
) -> None:
    async with httpx.AsyncClient() as http:
        update = await daglo_for(fake, http).submit(upload_request(tmp_path, head, fmt, filename))
    assert update.status == "processing"
    job = fake.jobs[update.provider_job_id or ""]
    assert job.file_name == sent and job.audio.startswith(head)
    [submit] = fake.calls("submit")
    assert f'filename="{sent}"\r\nContent-Type: {content_type}\r\n'.encode() in submit.body


@pytest.mark.parametrize(
    ("head", "fmt", "words"),
    [
        pytest.param(OGG_VORBIS, "ogg", "only as Opus", id="ogg-vorbis"),
        pytest.param(ebml(b"matroska"), "webm", "not other Matroska", id="matroska"),
    ],
)
async def test_ogg_without_opus_and_matroska_fail_before_daglo_is_asked(
    fake: FakeDaglo, tmp_path: Path, head: bytes, fmt: AudioFormat, words: str
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(PermanentProviderError) as caught:
            await daglo_for(fake, http).submit(upload_request(tmp_path, head, fmt, "a.ogg"))
    assert caught.value.code == "unsupported_media" and words in caught.value.message
    assert fake.calls("submit") == []


@pytest.mark.parametrize("name", ["voice.opus", "voice.ogg", "voice.webm", "voice"])
def test_the_fake_takes_only_the_extensions_daglo_lists(fake: FakeDaglo, name: str) -> None:
    answer = httpx.post(
        f"{fake.base_url}/stt/v1/async/transcripts",
        headers={"Authorization": f"Bearer {fake.api_key}"},
        files={"file": (name, OGG_OPUS, "audio/ogg")},
    )
    if name == "voice.opus":
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("Invalid format")


def test_an_ogg_opus_upload_named_ogg_completes(start: Start, fake: FakeDaglo) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        created = client.post(
            "/jobs",
            files={"file": ("voice.ogg", OGG_OPUS + bytes(1024), "audio/ogg")},
            data={"provider": "daglo"},
        )
        assert created.status_code == 202, created.text
        done = wait_for_job(client, created.json()["id"])
    assert done["status"] == "completed", done
    assert fake.jobs[done["provider_job_id"]].file_name == "voice.opus"


def test_an_ogg_vorbis_upload_fails_without_a_request_to_daglo(
    start: Start, fake: FakeDaglo
) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        created = client.post(
            "/jobs",
            files={"file": ("voice.ogg", OGG_VORBIS + bytes(1024), "audio/ogg")},
            data={"provider": "daglo"},
        )
        assert created.status_code == 202, created.text
        done = wait_for_job(client, created.json()["id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "unsupported_media" and done["error"]["retryable"] is False
    assert "only as Opus" in done["error"]["message"]
    assert fake.calls("submit") == []


# --- the rate limit -----------------------------------------------------------------------

# What the fake's clock may see beyond our spacing: the fake runs in a thread
# beside the test's loop, and a stall there records arrivals late and together.
JITTER = 0.2


def most_in_a_window(times: list[float], seconds: float) -> int:
    """The most of ``times`` that fall in any half-open window of ``seconds``."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + seconds) for i, start in enumerate(times))


async def test_status_fetches_keep_to_daglos_rate_across_adapters(
    fake: FakeDaglo, tmp_path: Path
) -> None:
    count = 30
    async with httpx.AsyncClient() as http:
        adapters = [daglo_for(fake, http), daglo_for(fake, http)]  # one budget per process
        submitted = await adapters[0].submit(upload_request(tmp_path, OGG_OPUS, "ogg", "a"))
        rid = submitted.provider_job_id or ""
        await asyncio.gather(*(adapters[i % 2].fetch(rid, DagloOptions()) for i in range(count)))
    times = helpers.call_times(fake, "status")
    assert RATE_LIMIT == 20 and len(times) == count
    assert most_in_a_window(times, 1.0 - JITTER) <= RATE_LIMIT
    # Spaced, not just cut into seconds: 30 requests take 29/20 s.
    assert max(times) - min(times) >= (count - 1) / RATE_LIMIT - JITTER


async def test_submits_and_status_fetches_each_have_their_own_budget(
    fake: FakeDaglo, tmp_path: Path
) -> None:
    count = RATE_LIMIT + 10
    async with httpx.AsyncClient() as http:
        daglo = daglo_for(fake, http)
        submitted = await daglo.submit(upload_request(tmp_path, OGG_OPUS, "ogg", "a"))
        rid = submitted.provider_job_id or ""
        requests = [upload_request(tmp_path, OGG_OPUS, "ogg", "a", f"a{i}") for i in range(count)]
        await asyncio.gather(
            *(daglo.submit(request) for request in requests),
            *(daglo.fetch(rid, DagloOptions()) for _ in range(count)),
        )
    submits, statuses = helpers.call_times(fake, "submit")[1:], helpers.call_times(fake, "status")
    assert len(submits) == len(statuses) == count
    for times in (submits, statuses):
        assert most_in_a_window(times, 1.0 - JITTER) <= RATE_LIMIT
    # Both endpoints went at their full rate side by side: ~50 in 1.2 s (one shared
    # budget: ~25).
    assert most_in_a_window(submits + statuses, 1.0 + JITTER) > 1.5 * RATE_LIMIT
