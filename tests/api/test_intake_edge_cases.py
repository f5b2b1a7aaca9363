"""Edge cases of creating a job: an unreachable source_url, a WAV with no samples,
form fields that are not text, and ``null`` for an object field."""

from __future__ import annotations

import http.server
import io
import json
import socket
import struct
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.jobs.sources import download_source
from app.providers.base import PermanentProviderError, RetryableProviderError
from app.storage import LocalStorage
from tests.api.helpers import WAV_HEADER_ONLY, assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import create_key

PUBLIC = "http://93.184.216.34/speech.wav"  # an address literal: no DNS needed


@pytest.fixture
def idle(postgres_url, make_settings, start_gateway):
    """A gateway whose worker is off: jobs stay queued."""
    gateway = start_gateway(make_settings(postgres_url, run_worker=False))
    with gateway.client(create_key(postgres_url, "acme")) as client:
        yield client


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: a connection to it is refused


# --- 1. an unreachable source_url is the source's fault, not the provider's ---


def test_an_unreachable_source_url_fails_the_job_blaming_the_source(
    postgres_url, make_settings, start_gateway
):
    gateway = start_gateway(make_settings(postgres_url))  # ALLOW_PRIVATE_URLS in tests
    url = f"http://127.0.0.1:{_closed_port()}/x.wav"
    with gateway.client(create_key(postgres_url, "acme")) as client:
        created = client.post("/jobs", json={"provider": "local", "source_url": url})
        assert created.status_code == 202, created.text
        job = client.get(f"/jobs/{created.json()['id']}", params={"wait": 30}).json()
    assert job["status"] == "failed", job
    error = job["error"]
    assert error["code"] == "source_unavailable", error
    assert "source_url could not be reached" in error["message"]
    assert "provider" not in error["message"] and "gave up" not in error["message"]


class _Tries:
    def __init__(self, error: type[httpx.TransportError], *, after_bytes: bool = False) -> None:
        self.error, self.after_bytes, self.count = error, after_bytes, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        if not self.after_bytes:
            raise self.error("nothing there", request=request)
        error = self.error

        async def body() -> AsyncIterator[bytes]:
            yield SPEECH_WAV.read_bytes()[:1000]
            raise error("cut off", request=request)

        return httpx.Response(200, content=body())


async def _download(transport: httpx.MockTransport, tmp_path: Path) -> str:
    writer = LocalStorage(tmp_path / "blobs").writer("job_1/audio")
    try:
        async with httpx.AsyncClient(transport=transport) as http:
            return await download_source(
                http, PUBLIC, writer, max_bytes=10**8, allow_private=False, max_seconds=30
            )
    finally:
        writer.abort()


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout])
async def test_a_source_nothing_arrives_from_is_tried_a_few_times_then_blamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[httpx.TransportError]
) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("app.jobs.sources.asyncio.sleep", no_wait)
    tries = _Tries(error)
    with pytest.raises(PermanentProviderError) as caught:
        await _download(httpx.MockTransport(tries), tmp_path)
    assert tries.count == 3 and waits == [0.5, 1.0]
    assert caught.value.code == "source_unavailable"
    assert caught.value.retryable is True  # it may answer later: the client may try again
    assert caught.value.message.startswith("source_url could not be reached")
    assert error.__name__ in caught.value.message


async def test_a_download_that_breaks_off_midway_is_left_to_the_task_retry(
    tmp_path: Path,
) -> None:
    tries = _Tries(httpx.ReadError, after_bytes=True)
    with pytest.raises(RetryableProviderError, match="ReadError"):
        await _download(httpx.MockTransport(tries), tmp_path)
    assert tries.count == 1  # its bytes are in the writer: a fresh one is needed


# --- 2. a WAV with no samples is refused at creation ---


def _wav(data_size: int, samples: bytes) -> bytes:
    return WAV_HEADER_ONLY[:40] + struct.pack("<I", data_size) + samples


@pytest.mark.parametrize(
    "audio",
    [
        WAV_HEADER_ONLY,
        _wav(0xFFFFFFFF, b""),  # a streamed header, nothing after it
        _wav(1, b"\0"),  # half of one 16-bit sample
    ],
    ids=["header-only", "streamed-empty", "half-a-sample"],
)
def test_a_wav_with_no_samples_is_refused_at_creation(idle, audio):
    response = idle.post("/jobs", files={"file": ("t.wav", io.BytesIO(audio), "audio/wav")})
    body = assert_problem(response, 422, "no audio samples")
    assert body["errors"] == [
        {"field": "file", "message": "no audio samples", "type": "no_samples"}
    ]
    assert idle.get("/jobs").json()["data"] == []


def test_a_streamed_wav_whose_samples_follow_a_zero_size_is_taken(idle):
    audio = _wav(0, bytes(3200))  # the streaming convention: the size was not known
    response = idle.post("/jobs", files={"file": ("t.wav", io.BytesIO(audio), "audio/wav")})
    assert response.status_code == 202, response.text


def test_the_openai_route_refuses_a_wav_with_no_samples_as_a_bad_request(
    postgres_url, make_settings, start_gateway
):
    gateway = start_gateway(make_settings(postgres_url))
    with gateway.client(create_key(postgres_url, "acme")) as client:
        response = client.post(
            "/v1/audio/transcriptions",
            files={"file": ("t.wav", io.BytesIO(WAV_HEADER_ONLY), "audio/wav")},
            data={"model": "local"},
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "file" and "no audio samples" in error["message"]
        assert client.get("/jobs").json()["data"] == []


# --- 3. a form field that is not text in its charset is refused ---


@pytest.mark.parametrize(
    ("name", "value"),
    [("metadata", b'{"note": "caf\xff"}'), ("language", b"e\xffn"), ("options", b"{\xc3}")],
)
def test_a_form_field_that_is_not_utf8_is_refused_naming_it(idle, name, value):
    with SPEECH_WAV.open("rb") as audio:
        response = idle.post(
            "/jobs", files=[("file", ("a.wav", audio, "audio/wav")), (name, (None, value))]
        )
    body = assert_problem(response, 422, name, "utf-8")
    assert [e["field"] for e in body["errors"]] == [name]
    assert idle.get("/jobs").json()["data"] == []


def test_metadata_in_utf8_is_returned_as_given(idle):
    metadata = {"note": "café ☕ 한국어"}
    response = upload(idle, metadata=json.dumps(metadata, ensure_ascii=False))
    assert response.status_code == 202, response.text
    assert response.json()["metadata"] == metadata


# --- 4. null for an object field is the field not given ---


def test_null_options_and_metadata_in_a_json_body_are_the_defaults(idle):
    response = idle.post(
        "/jobs",
        json={
            "provider": "local",
            "source_url": "http://127.0.0.1:9/x.wav",
            "options": None,
            "metadata": None,
            "fallback_providers": None,
            "language": None,
            "callback_url": None,
        },
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["options"] == {} and job["metadata"] == {} and job["fallback_providers"] == []


def test_null_options_and_metadata_in_a_form_are_the_defaults(idle):
    response = upload(idle, options="null", metadata=" null ")
    assert response.status_code == 202, response.text
    assert response.json()["options"] == {} and response.json()["metadata"] == {}


def test_other_json_that_is_not_an_object_is_still_refused(idle):
    for value in ("[]", "1", '"x"', "false"):
        assert_problem(upload(idle, options=value), 422, "options must be a JSON object")
    response = idle.post("/jobs", json={"source_url": "http://127.0.0.1:9/x.wav", "metadata": []})
    body = assert_problem(response, 422, "metadata")
    assert [e["field"] for e in body["errors"]] == ["metadata"]


class _Always503(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("deadline", [False, True], ids=["attempts", "deadline"])
def test_a_source_that_keeps_failing_fails_the_job_blaming_the_source(
    postgres_url, make_settings, start_gateway, deadline
):
    source = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Always503)
    threading.Thread(target=source.serve_forever, daemon=True).start()
    # Out of attempts, or out of time: either way the source failed, not the provider.
    limits = {"provider_deadline_seconds": 1.0} if deadline else {"task_max_attempts": 2}
    settings = make_settings(postgres_url, retry_base_seconds=0.2, **limits)
    gateway = start_gateway(settings)
    url = f"http://127.0.0.1:{source.server_address[1]}/x.wav"
    try:
        with gateway.client(create_key(postgres_url, "acme")) as client:
            created = client.post("/jobs", json={"provider": "local", "source_url": url})
            assert created.status_code == 202, created.text
            job = client.get(f"/jobs/{created.json()['id']}", params={"wait": 30}).json()
    finally:
        source.shutdown()
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "source_unavailable", job["error"]
    assert "answered 503" in job["error"]["message"]
    assert "provider" not in job["error"]["message"], job["error"]
