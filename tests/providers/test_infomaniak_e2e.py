"""Infomaniak jobs through a real gateway and the fake Infomaniak, both on loopback."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.providers.infomaniak import LANGUAGES, MAX_UPLOAD_BYTES
from tests.api.helpers import WAV_HEADER_ONLY, assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.fakes.infomaniak import PRODUCT_ID, TOKEN, FakeInfomaniak
from tests.providers import helpers
from tests.providers.helpers import Start

fake = helpers.fake_vendor_fixture(FakeInfomaniak)


@pytest.fixture
def start(vendor_gateway: Start, fake: FakeInfomaniak) -> Start:
    return helpers.gateway_starter(
        vendor_gateway,
        INFOMANIAK_BASE_URL=fake.base_url,
        INFOMANIAK_API_KEY=TOKEN,
        INFOMANIAK_PRODUCT_ID=PRODUCT_ID,
    )


def test_an_upload_completes_with_segments_and_words(start: Start, fake: FakeInfomaniak) -> None:
    gateway, key = start()
    options = {
        "model": "whisperV2",
        "timestamp_granularities": ["segment", "word"],
        "prompt": "Hello, world.",
        "chunk_length": 10,
    }
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "infomaniak", language="en-US", options=options)
        assert done["status"] == "completed", done
        assert done["provider_status"] == "success"
        assert done["provider_job_id"] in fake.batches
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()

    assert transcript["provider"] == "infomaniak"
    assert transcript["text"] == "Hello world. This is a test."
    assert transcript["language"] == "en" and transcript["duration"] == 2.9
    assert [(s["start"], s["end"], s["text"]) for s in transcript["segments"]] == [
        (0.0, 1.2, "Hello world."),
        (1.5, 2.64, "This is a test."),
    ]
    assert [w["text"] for w in transcript["segments"][0]["words"]] == ["Hello", "world."]
    assert transcript["segments"][1]["words"][3] == {
        "start": 2.02,
        "end": 2.6,
        "text": "test.",
        "confidence": None,
    }

    (submit,) = fake.calls("submit")
    assert submit.path == f"/1/ai/{PRODUCT_ID}/openai/audio/transcriptions"
    assert submit.headers["authorization"] == f"Bearer {TOKEN}"
    assert submit.headers["content-type"].startswith("multipart/form-data")
    batch = fake.batches[done["provider_job_id"]]
    assert batch.audio == SPEECH_WAV.read_bytes() and batch.filename == SPEECH_WAV.name
    assert batch.value("language") == "en"
    assert batch.value("model") == "whisperV2"
    assert batch.value("response_format") == "verbose_json"
    assert batch.value("prompt") == "Hello, world." and batch.value("chunk_length") == "10"
    assert batch.values("timestamp_granularities[]") == ["segment", "word"]
    # pending -> processing -> success, one GET each; inline: no download
    statuses = fake.calls("status")
    assert len(statuses) == 3
    assert all(c.path == f"/1/ai/{PRODUCT_ID}/results/{batch.id}" for c in statuses)
    assert all(c.headers["authorization"] == f"Bearer {TOKEN}" for c in statuses)
    assert not fake.calls("download") and not fake.calls("download_product")


def test_a_source_url_is_downloaded_by_the_gateway_then_uploaded(
    start: Start, fake: FakeInfomaniak
) -> None:
    with helpers.serving() as audio:
        done = helpers.run_job(start(), "infomaniak", source_url=audio.url, language="en")
    assert done["status"] == "completed", done
    assert done["source"] == {"type": "url", "url": audio.url}
    assert audio.requests == 1
    batch = fake.batches[done["provider_job_id"]]
    assert batch.audio == SPEECH_WAV.read_bytes()
    assert batch.filename is not None and batch.filename.endswith(".wav")


@pytest.mark.parametrize(
    ("delivery", "response_format", "downloads"),
    [
        ("inline", "json", []),
        ("inline-string", "verbose_json", []),
        ("inline", "text", []),
        ("url", "verbose_json", ["download"]),
        ("product", "json", ["download", "download_product"]),
        ("product", "srt", ["download", "download_product"]),
    ],
)
def test_every_place_the_transcript_may_be(
    start: Start,
    fake: FakeInfomaniak,
    delivery: str,
    response_format: str,
    downloads: list[str],
) -> None:
    fake.delivery = delivery
    gateway, key = start()
    with gateway.client(key) as client:
        done = helpers.finished_job(
            client, "infomaniak", options={"response_format": response_format}
        )
        assert done["status"] == "completed", done
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()
        if response_format == "srt":
            assert done["artifacts"][0]["name"] == "srt"
            srt = client.get(f"/jobs/{done['id']}/artifacts/srt")
            assert srt.status_code == 200 and "00:00:01,500 --> 00:00:02,640" in srt.text
    assert transcript["text"] == "Hello world. This is a test."
    timed = response_format in ("verbose_json", "srt")
    assert len(transcript["segments"]) == (2 if timed else 0)
    seen = [r.operation for r in fake.requests if r.operation.startswith("download")]
    assert seen == downloads
    for call in fake.requests:
        assert call.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("language", ["tlh", "xx-XX", "fil"])
def test_a_language_outside_the_documented_list_is_a_422_before_any_job_exists(
    start: Start, fake: FakeInfomaniak, language: str
) -> None:
    # The vendor's enum would refuse it after the 202; the client hears it at creation.
    gateway, key = start()
    with gateway.client(key) as client:
        refused = upload(client, provider="infomaniak", language=language)
        body = assert_problem(refused, 422, "'infomaniak'", repr(language))
        assert [e["field"] for e in body["errors"]] == ["language"]
        assert client.get("/jobs").json()["data"] == []
    assert fake.calls("submit") == []


@pytest.mark.parametrize(
    ("language", "sent", "heard"),
    [
        ("fr-CH", "fr", "fr"),
        ("nb-NO", "no", "no"),  # BCP-47's Norwegian Bokmål, Whisper's "no"
        ("yue", "yue", "yue"),  # one of the two three-letter codes
        (None, None, "en"),  # no language: the field is left out, Whisper detects it
    ],
)
def test_a_documented_language_or_none_is_taken(
    start: Start, fake: FakeInfomaniak, language: str | None, sent: str | None, heard: str
) -> None:
    fields = {} if language is None else {"language": language}
    gateway, key = start()
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "infomaniak", **fields)
        assert done["status"] == "completed", done
        assert done["language"] == language
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()
    batch = fake.batches[done["provider_job_id"]]
    assert batch.values("language") == ([] if sent is None else [sent])
    assert transcript["language"] == heard


def test_a_vendor_500_at_submit_is_retried(start: Start, fake: FakeInfomaniak) -> None:
    fake.fail("submit", 500, body={"result": "error", "error": {"code": "internal"}})
    done = helpers.run_job(start(), "infomaniak")
    assert done["status"] == "completed", done
    assert len(fake.calls("submit")) == 2
    assert len(fake.batches) == 1


def test_retry_after_is_honoured(start: Start, fake: FakeInfomaniak) -> None:
    fake.fail("status", 429, headers={"Retry-After": "2"})
    done = helpers.run_job(start(), "infomaniak")
    assert done["status"] == "completed", done
    first, second, *_ = fake.times("status")
    assert second - first >= 2.0


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            400,
            {"result": "error", "error": {"code": "validation_failed", "description": "bad"}},
            "invalid_request",
        ),
        (
            413,
            {
                "result": "error",
                "error": {
                    "code": "file_too_large",
                    "description": "The file may not be greater than 50 MB",
                },
            },
            "input_too_large",
        ),
    ],
)
def test_refused_input_fails_the_job_with_the_vendors_detail(
    start: Start, fake: FakeInfomaniak, status: int, body: dict[str, Any], code: str
) -> None:
    if status == 413:
        fake.max_bytes = 1000  # the fake's own check, not an injected fault
    else:
        fake.fail("submit", status, body=body)
    done = helpers.run_job(start(), "infomaniak")
    assert done["status"] == "failed", done
    error = done["error"]
    assert error["code"] == code and error["retryable"] is False
    assert error["provider_detail"] == {"status_code": status, "body": body}
    assert len(fake.calls("submit")) == 1  # a refusal is not retried
    assert TOKEN not in json.dumps(done)


@pytest.mark.parametrize(
    ("last", "code"), [("failed", "provider_failed"), ("cancelled", "provider_canceled")]
)
def test_a_vendor_side_failure_fails_the_job(
    start: Start, fake: FakeInfomaniak, last: str, code: str
) -> None:
    fake.progression = ["pending", last]
    done = helpers.run_job(start(), "infomaniak")
    assert done["status"] == "failed", done
    assert done["provider_status"] == last
    assert done["error"]["code"] == code
    assert done["error"]["provider_detail"]["status"] == last
    if last == "failed":
        assert "Unable to decode the audio file" in done["error"]["message"]


def test_a_wrong_token_fails_the_job_as_an_auth_error(start: Start, fake: FakeInfomaniak) -> None:
    done = helpers.run_job(start(INFOMANIAK_API_KEY="not-the-token"), "infomaniak")
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "provider_auth"
    assert fake.calls("submit")[0].headers["authorization"] == "Bearer not-the-token"
    assert "not-the-token" not in json.dumps(done)


def test_a_forged_callback_is_a_404_and_costs_no_vendor_call(
    start: Start, fake: FakeInfomaniak
) -> None:
    # A long Retry-After parks the poll, so any status call after the callback is its doing.
    fake.fail("status", 429, headers={"Retry-After": "30"})
    gateway, key = start()
    with gateway.client(key) as client:
        job = helpers.create_job(client, "infomaniak")
        helpers.wait_until(lambda: len(fake.calls("status")) == 1)
        forged = httpx.post(
            f"{gateway.base_url}/callbacks/infomaniak/{job['id']}",
            params={"expires": str(int(time.time()) + 3600), "sig": "forged"},
            json={"status": "success"},
        )
        assert forged.status_code == 404
        time.sleep(1.5)
        assert len(fake.calls("status")) == 1
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "processing"


def test_without_a_product_id_infomaniak_is_not_offered(start: Start) -> None:
    gateway, key = start(INFOMANIAK_PRODUCT_ID=None)
    with gateway.client(key) as client:
        names = [p["name"] for p in client.get("/providers").json()["data"]]
        assert "infomaniak" not in names
        refused = upload(client, provider="infomaniak")
    assert_problem(refused, 422, "INFOMANIAK_PRODUCT_ID")


def test_providers_lists_infomaniak_with_its_options(start: Start) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        listed = {p["name"]: p for p in client.get("/providers").json()["data"]}
        bad = upload(client, provider="infomaniak", options=json.dumps({"temperature": 0.2}))
    entry = listed["infomaniak"]
    assert entry["capabilities"]["languages"] == [*LANGUAGES, "jv", "nb", "iw"]
    assert entry["capabilities"]["cancel"] is False
    assert "timestamp_granularities" in entry["options_schema"]["properties"]
    assert_problem(bad, 422, "temperature")


def _wav_of(path: Path, size: int) -> Path:
    """A 16 kHz mono WAV of exactly ``size`` bytes, silent, its header true to it."""
    data = size - 44
    header = WAV_HEADER_ONLY[:4] + struct.pack("<I", size - 8) + WAV_HEADER_ONLY[8:40]
    with path.open("wb") as out:
        out.write(header + struct.pack("<I", data))
        out.truncate(size)
    return path


def test_an_upload_over_the_documented_50_mb_is_a_413_before_any_job_exists(
    start: Start, fake: FakeInfomaniak, tmp_path: Path
) -> None:
    too_big = _wav_of(tmp_path / "big.wav", MAX_UPLOAD_BYTES + 1)
    gateway, key = start()
    with gateway.client(key) as client:
        size = str(too_big.stat().st_size)
        helpers.assert_too_large_for(client, too_big, "infomaniak", str(MAX_UPLOAD_BYTES), size)
        # At the limit itself the job is taken, and the vendor gets the file.
        at_limit = upload(
            client, _wav_of(tmp_path / "max.wav", MAX_UPLOAD_BYTES), provider="infomaniak"
        )
        assert at_limit.status_code == 202, at_limit.text
        helpers.wait_until(lambda: fake.calls("submit"))
    assert len(fake.calls("submit")) == 1
    # Nothing of the refused uploads is left: only the accepted job has a folder.
    kept = {folder.name for folder in (gateway.settings.storage_dir / "jobs").iterdir()}
    assert kept == {at_limit.json()["id"]}
