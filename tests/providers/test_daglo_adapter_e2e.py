"""Daglo upload names and request pacing, against the fake Daglo on loopback: mostly the
adapter itself, for what the gateway would hide."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.providers.base import AudioFormat, PermanentProviderError, SubmitRequest
from app.providers.daglo import RATE_LIMIT, DagloProvider
from app.providers.daglo_files import refusal
from app.providers.daglo_options import DagloOptions
from tests.api.helpers import assert_problem
from tests.fakes.daglo import FakeDaglo
from tests.providers import daglo_e2e_support, helpers
from tests.providers.helpers import Start
from tests.support.vendor import wait_for_job

fake = helpers.fake_vendor_fixture(FakeDaglo)
start = daglo_e2e_support.start  # the shared fixture, under the name the tests ask for


# --- what an upload is named ------------------------------------------------------------


def ogg_page(packet: bytes, first: bool = True) -> bytes:
    """One Ogg page holding ``packet`` (under 255 bytes); ``first``: a stream's first."""
    return (
        b"OggS\x00" + (b"\x02" if first else b"\x00") + bytes(20) + bytes([1, len(packet)]) + packet
    )


OPUS_HEAD = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
OGG_OPUS = ogg_page(OPUS_HEAD) + ogg_page(b"OpusTags" + bytes(8), first=False)
OGG_VORBIS = ogg_page(b"\x01vorbis" + bytes(23)) + ogg_page(b"\x03vorbis" + bytes(8), first=False)
OGG_SKELETON = ogg_page(b"fishead\x00" + bytes(56))
OGG_SKELETON_OPUS = OGG_SKELETON + OGG_OPUS


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


def _daglo_upload(client: httpx.Client, audio: bytes) -> httpx.Response:
    """``POST /jobs`` of ``audio`` (and some padding) for Daglo, named voice.ogg."""
    return client.post(
        "/jobs",
        files={"file": ("voice.ogg", audio + bytes(1024), "audio/ogg")},
        data={"provider": "daglo"},
    )


def test_an_ogg_opus_upload_named_ogg_completes(start: Start, fake: FakeDaglo) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        created = _daglo_upload(client, OGG_OPUS)
        assert created.status_code == 202, created.text
        done = wait_for_job(client, created.json()["id"])
    assert done["status"] == "completed", done
    assert fake.jobs[done["provider_job_id"]].file_name == "voice.opus"


@pytest.mark.parametrize(
    ("audio", "words"),
    [
        pytest.param(OGG_VORBIS, "only as Opus", id="ogg-vorbis"),
        pytest.param(ebml(b"matroska"), "not other Matroska", id="matroska"),
    ],
)
def test_an_upload_daglo_has_no_name_for_is_a_415_at_creation(
    start: Start, fake: FakeDaglo, audio: bytes, words: str
) -> None:
    gateway, key = start()
    with gateway.client(key) as client:
        assert_problem(_daglo_upload(client, audio), 415, "daglo", words)
        assert client.get("/jobs").json()["data"] == []
    assert fake.calls("submit") == []


@pytest.mark.parametrize(
    ("head", "fmt", "refused"),
    [
        pytest.param(OGG_VORBIS, "ogg", True, id="ogg-vorbis"),
        pytest.param(OGG_OPUS, "ogg", False, id="ogg-opus"),
        pytest.param(OGG_SKELETON_OPUS, "ogg", False, id="ogg-skeleton-opus"),
        pytest.param(OGG_SKELETON + OGG_VORBIS, "ogg", True, id="skeleton-vorbis"),
        # Cut inside the first page: the codec is not known, so not refused (submit decides).
        pytest.param(OGG_VORBIS[:30], "ogg", False, id="ogg-cut"),
        pytest.param(ebml(b"matroska"), "webm", True, id="matroska"),
        pytest.param(ebml(b"webm"), "webm", False, id="webm"),
        pytest.param(ebml(b"matroska")[:27], "webm", False, id="ebml-cut-in-doctype"),
        pytest.param(b"ID3\x04" + bytes(6), "mp3", False, id="mp3"),
    ],
)
def test_the_first_bytes_refuse_only_what_they_show(
    head: bytes, fmt: AudioFormat, refused: bool
) -> None:
    assert (refusal(fmt, head) is not None) is refused


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
