"""Hostile uploads get a clear 4xx, quickly, with bounded work, and leave nothing behind.

Each case checks the storage directory (no blob, no ``.part`` file) and the
database itself (no job, no task). Requests httpx will not make (a lying
Content-Length, a body that stops, absurd headers) go over a raw socket.
tests/api/test_create_validation.py and test_hostile_input.py hold the
simpler refusals (wrong media types, bad fields, broken multipart).
"""

from __future__ import annotations

import logging
import select
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.api.helpers import assert_problem
from tests.conftest import SPEECH_WAV
from tests.hostile.helpers import (
    RawClient,
    count_rows,
    multipart,
    stored_files,
    wav,
    wav_header,
)
from tests.support.gateway import ThreadedGateway, create_key

MAX_UPLOAD = 200_000
IDLE_TIMEOUT = 1.0
HEADER_TIMEOUT = 1.0
ROUTES = {  # path -> the fields besides the file, and the status of a refused file
    "/jobs": ((("provider", b"local"),), 422),
    "/v1/audio/transcriptions": ((("model", b"local"),), 400),
}
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + b"0" * 1000


@dataclass
class Env:
    gateway: ThreadedGateway
    http: httpx.Client
    api_key: str
    storage: Path
    database_url: str

    def raw(self, timeout: float = 15.0) -> RawClient:
        return RawClient(self.gateway.base_url, timeout)

    def assert_nothing_kept(self) -> None:
        assert stored_files(self.storage) == []
        assert count_rows(self.database_url, "jobs", "tasks") == {"jobs": 0, "tasks": 0}


@pytest.fixture
def env(postgres_url, make_settings, start_gateway):
    settings = make_settings(
        postgres_url,
        run_worker=False,
        max_upload_bytes=MAX_UPLOAD,
        upload_idle_timeout_seconds=IDLE_TIMEOUT,
        request_header_timeout_seconds=HEADER_TIMEOUT,
    )
    gateway = start_gateway(settings)
    key = create_key(postgres_url, "acme")
    with gateway.client(key) as http:
        yield Env(gateway, http, key, settings.storage_dir, postgres_url)


def _post_file(env: Env, path: str, audio: bytes, filename: str = "a.wav") -> httpx.Response:
    fields, _ = ROUTES[path]
    return env.http.post(
        path,
        files={"file": (filename, audio, "audio/wav")},
        data={name: value.decode() for name, value in fields},
    )


def _upload_head(env: Env, raw: RawClient, path: str, **framing: str) -> None:
    """The head of an authorised multipart POST (boundary ``b``); ``framing`` gives its
    Content_Length or Transfer_Encoding."""
    raw.request_head(
        "POST",
        path,
        Authorization=f"Bearer {env.api_key}",
        Content_Type="multipart/form-data; boundary=b",
        **framing,
    )


def _refusal(response: httpx.Response, status: int, *words: str) -> None:
    """A refusal in the route's own error shape: problem+json, or OpenAI's for /v1."""
    if response.request.url.path.startswith("/v1/"):
        assert response.status_code == status, response.text
        message = response.json()["error"]["message"]
        assert all(word in message for word in words), message
    else:
        assert_problem(response, status, *words)


# --- truncated and lying WAVs ---

FOUR_GIB = 0xFFFFFFFE
TRUNCATED = {
    "cut in half": SPEECH_WAV.read_bytes()[: SPEECH_WAV.stat().st_size // 2],
    "header announces 4 GiB": wav_header(FOUR_GIB - 36, riff_size=FOUR_GIB) + b"\x00" * 8000,
    "data size only (streamed RIFF size)": wav_header(64_000, riff_size=0xFFFFFFFF)
    + b"\x00" * 8000,
}


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("audio", TRUNCATED.values(), ids=TRUNCATED.keys())
def test_a_truncated_wav_is_refused_at_creation(env, path, audio):
    _, status = ROUTES[path]
    _refusal(_post_file(env, path, audio), status, "truncated", "only")
    env.assert_nothing_kept()


@pytest.mark.parametrize(
    ("riff_size", "data_size"),
    [(0xFFFFFFFF, 0xFFFFFFFF), (0, 0), (0xFFFFFFFF, 0)],
    ids=["0xFFFFFFFF", "zero", "mixed"],
)
def test_a_streamed_wav_with_unknown_sizes_is_taken(env, riff_size, data_size):
    """Writers that stream a WAV (ffmpeg to a pipe, recorders) cannot know its length."""
    audio = wav_header(data_size, riff_size=riff_size) + b"\x00" * 8000
    response = _post_file(env, "/jobs", audio)
    assert response.status_code == 202, response.text
    assert response.json()["source"]["size"] == len(audio)


def test_a_pdf_named_wav_leaves_nothing_on_either_route(env):
    _refusal(_post_file(env, "/jobs", PDF, "speech.wav"), 415, "not audio")
    _refusal(_post_file(env, "/v1/audio/transcriptions", PDF, "speech.wav"), 400, "not audio")
    env.assert_nothing_kept()


# --- declared lengths and broken framing ---


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("length", ["10995116277760", "9" * 30])  # 10 TiB; more than any int64
def test_an_absurd_declared_length_is_refused_before_any_byte(env, path, length):
    with env.raw(timeout=5) as raw:
        _upload_head(env, raw, path, Content_Length=length)
        response = raw.response()  # no body byte was sent
    assert response.status in (400, 413), response
    assert response.seconds < 2
    env.assert_nothing_kept()


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary=""',
        "multipart/form-data; charset=utf-8",
    ],
)
def test_multipart_without_a_boundary_is_refused(env, path, content_type):
    body = multipart("b", ("file", wav()), *ROUTES[path][0])
    response = env.http.post(path, content=body, headers={"Content-Type": content_type})
    if path.startswith("/v1/"):
        assert response.status_code == 400 and "boundary" in response.json()["error"]["message"]
    else:
        assert_problem(response, 415, "boundary")
    env.assert_nothing_kept()


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("cut", "words"),
    [
        (len(b"\r\n--b--\r\n"), "in the 'metadata' part"),  # no closing boundary at all
        (len(b"--\r\n"), "closing boundary"),  # "--b" without its final "--"
    ],
)
def test_a_body_without_its_closing_boundary_makes_no_job(env, path, cut, words):
    # Its last field is never finished: a job made without it would run with
    # settings the client did not ask for.
    extra = (("metadata", b'{"order": "42"}'),) if path == "/jobs" else (("prompt", b"hi"),)
    body = multipart("b", ("file", wav()), *ROUTES[path][0], *extra)[:-cut]
    if path != "/jobs":
        words = words.replace("'metadata'", "'prompt'")
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    _refusal(env.http.post(path, content=body, headers=headers), ROUTES[path][1], words)
    env.assert_nothing_kept()


def _served(path: str, status: int) -> float:
    labels = {"method": "POST", "route": path, "status": str(status)}
    return REGISTRY.get_sample_value("stt_http_requests_total", labels) or 0.0


@pytest.mark.parametrize("path", ROUTES)
def test_a_client_that_leaves_mid_upload_is_no_server_error(env, path, caplog):
    body = multipart("b", ("file", wav()), *ROUTES[path][0])
    before = {status: _served(path, status) for status in (499, 500)}
    with env.raw() as raw:
        _upload_head(env, raw, path, Content_Length=str(len(body)))
        raw.send(body[: len(body) // 2])
        time.sleep(0.2)  # the gateway is reading the body when the client goes
    deadline = time.monotonic() + 10
    while _served(path, 499) == before[499] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _served(path, 499) == before[499] + 1  # counted as the client's doing
    assert _served(path, 500) == before[500]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    env.assert_nothing_kept()


def test_an_endless_epilogue_is_cut_off_at_the_limit(env):
    """Bytes after the closing boundary are parsed away unseen: without a cap on the
    whole body, a chunked request could stream them forever."""
    form = multipart("b", ("file", wav()), ("provider", b"local"))
    junk = b"x" * 65536
    with env.raw() as raw:
        _upload_head(env, raw, "/jobs", Transfer_Encoding="chunked")
        raw.send(b"%x\r\n%s\r\n" % (len(form), form))
        sent = len(form)
        while not select.select([raw.sock], [], [], 0)[0]:  # until the gateway answers
            # The cap is MAX_UPLOAD + 1 MiB; the socket buffers of loopback hold a few more.
            assert sent < 32 * 1024 * 1024, "the gateway kept reading"
            raw.send(b"%x\r\n%s\r\n" % (len(junk), junk))
            sent += len(junk)
        response = raw.response()
    assert response.status == 413, response
    assert "larger than the upload limit" in response.json()["detail"]
    env.assert_nothing_kept()


# --- many fields, long header lines ---


def _send_the_start_of(env: Env, path: str, body: bytes, start: int) -> tuple[dict, float]:
    """Announce the whole body, send only its first ``start`` bytes, and read the answer:
    an answer then shows the gateway decided without reading (or holding) the rest."""
    with env.raw() as raw:
        _upload_head(env, raw, path, Content_Length=str(len(body)))
        raw.send(body[:start])
        response = raw.response()
    return {"status": response.status, **response.json()}, response.seconds


def test_ten_thousand_form_fields_are_refused_on_the_first_ones(env):
    # /jobs takes each field once: the first unknown one ends it.
    fields = [(f"f{i}", b"1") for i in range(10_000)]
    answer, seconds = _send_the_start_of(env, "/jobs", multipart("b", *fields), 4096)
    assert answer["status"] == 422 and "unknown form field 'f0'" in answer["detail"]
    assert seconds < 2
    # /v1 takes timestamp_granularities[] more than once: the count of parts ends it.
    fields = [("model", b"local")] + [("timestamp_granularities[]", b"word")] * 10_000
    body = multipart("b", *fields)
    answer, seconds = _send_the_start_of(env, "/v1/audio/transcriptions", body, 4096)
    assert answer["status"] == 400 and "too many form fields" in answer["error"]["message"]
    assert seconds < 2
    env.assert_nothing_kept()


def test_a_2_kib_file_name_and_part_header_are_taken(env):
    name = "n" * 2040 + ".wav"
    part_head = (
        f'--b\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: audio/wav\r\nX-Note: {'y' * 2048}\r\n\r\n"
    ).encode()
    body = part_head + wav() + b"\r\n--b--\r\n"
    response = env.http.post(
        "/jobs", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["source"]["filename"] == name[:255]


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        (f"X-Pad: {'p' * 65536}\r\n", "Maximum header size"),
        ("".join(f"X-Pad-{i}: {'p' * 60}\r\n" for i in range(1100)), "Maximum header count"),
    ],
    ids=["one 64 KiB header", "1100 headers"],
)
def test_64_kib_of_part_headers_is_refused(env, headers, words):
    """python-multipart bounds a part's headers (8 lines of at most 4 KiB)."""
    disposition = 'Content-Disposition: form-data; name="file"; filename="a.wav"'
    body = f"--b\r\n{disposition}\r\n{headers}\r\n".encode() + wav() + b"\r\n--b--\r\n"
    answer, seconds = _send_the_start_of(env, "/jobs", body, 20_000)
    assert answer["status"] == 422 and words in answer["detail"], answer
    assert seconds < 2
    env.assert_nothing_kept()


def test_a_2_kib_request_header_is_served_and_a_huge_one_is_a_431(env):
    assert env.http.get("/jobs", headers={"X-Pad": "p" * 2048}).status_code == 200
    with env.raw(timeout=5) as raw:
        raw.request_head("GET", "/jobs", Authorization=f"Bearer {env.api_key}", X_Pad="p" * 2**20)
        response = raw.response()
        closed = raw.closed_by_server()
    assert response.status == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert "65536 bytes" in response.json()["detail"]
    assert closed
    assert env.http.get("/jobs").status_code == 200  # and it still serves everyone


@pytest.mark.parametrize(
    "head",
    [
        b"GET /jobs HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x01b\r\n\r\n",
        b"GET /jobs HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET /jobs HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["control-char", "no-colon", "version", "two-lengths", "bad-chunk"],
)
def test_a_request_that_is_not_http_is_a_400_problem(env, head):
    with env.raw(timeout=5) as raw:
        raw.send(head)
        response = raw.response()
        closed = raw.closed_by_server()
    assert response.status == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 400 and body["type"].endswith("/bad-request")
    assert "not valid HTTP/1.1" in body["detail"]
    assert closed
    assert env.http.get("/jobs").status_code == 200


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_a_408(env):
    head = f"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {env.api_key}\r\n"
    with env.raw(timeout=10) as raw:
        began = time.monotonic()
        try:
            for byte in head.encode():
                raw.send(bytes([byte]))
                time.sleep(0.05)  # each byte well within any read timeout
        except OSError:
            pass  # the gateway gave up on us mid-way: what is wanted
        response = raw.response()
        closed = raw.closed_by_server()
    assert response.status == 408
    assert "did not arrive within 1 s" in response.json()["detail"]
    assert closed
    assert time.monotonic() - began < HEADER_TIMEOUT + 2


def test_a_connection_that_sends_nothing_is_closed(env):
    with env.raw(timeout=10) as raw:
        response = raw.response()  # without sending a byte
        assert raw.closed_by_server()
    assert response.status == 408
    assert response.seconds < HEADER_TIMEOUT + 2


def test_a_kept_alive_connection_gets_the_same_limit_on_its_next_request(env):
    with env.raw(timeout=10) as raw:
        raw.request_head("GET", "/healthz")
        assert raw.response().status == 200
        raw.send(b"GET /jobs HTTP/1.1\r\nHo")  # and then nothing more
        assert raw.response().status == 408


# --- a client that stops sending ---


def _stall(env: Env, path: str, sent: bytes, length: int) -> tuple[int, dict, float, bool]:
    """Send the head and the start of a body, then nothing: the gateway's answer, how long
    it took, and whether it closed the connection after it."""
    with env.raw() as raw:
        _upload_head(env, raw, path, Content_Length=str(length))
        raw.send(sent)
        response = raw.response()
        closed = raw.closed_by_server()
    return response.status, response.json(), response.seconds, closed


@pytest.mark.parametrize("path", ROUTES)
def test_a_stalled_upload_is_dropped_after_the_idle_timeout(env, path):
    started = multipart("b", *ROUTES[path][0], ("file", wav(1.0)))[:10_000]
    status, body, seconds, closed = _stall(env, path, started, 40_000)
    assert status == 408
    message = body["error"]["message"] if path.startswith("/v1/") else body["detail"]
    assert "stalled" in message and f"{IDLE_TIMEOUT:g} seconds" in message
    assert IDLE_TIMEOUT * 0.9 < seconds < IDLE_TIMEOUT + 3
    assert closed, "the connection stays open after the 408"
    env.assert_nothing_kept()


def test_a_json_request_that_stalls_is_dropped_after_the_idle_timeout(env):
    with env.raw() as raw:
        raw.request_head(
            "POST",
            "/jobs",
            Authorization=f"Bearer {env.api_key}",
            Content_Type="application/json",
            Content_Length="200",
        )
        raw.send(b'{"source_url": "https://audio.example.com/a')
        response = raw.response()
        closed = raw.closed_by_server()
    assert response.status == 408
    assert (
        f"the request body stalled: nothing arrived for {IDLE_TIMEOUT:g} seconds"
        in (response.json()["detail"])
    )
    assert IDLE_TIMEOUT * 0.9 < response.seconds < IDLE_TIMEOUT + 3
    assert closed, "the connection stays open after the 408"
    env.assert_nothing_kept()


def test_a_body_that_never_starts_is_dropped_too(env):
    status, body, _, closed = _stall(env, "/jobs", b"", 40_000)
    assert status == 408 and body["type"].endswith("/request-timeout") and closed
    env.assert_nothing_kept()


def test_others_are_served_while_a_client_stalls(env):
    with env.raw() as slow:
        _upload_head(env, slow, "/jobs", Content_Length="40000")
        slow.send(multipart("b", ("file", wav(1.0)))[:10_000])
        time.sleep(0.2)  # the slow upload is in the gateway's hands
        began = time.monotonic()
        assert env.http.get("/providers").status_code == 200
        created = _post_file(env, "/jobs", wav())
        assert created.status_code == 202, created.text
        assert time.monotonic() - began < IDLE_TIMEOUT  # not held up by the stalled one
        assert slow.response().status == 408
    job_id = created.json()["id"]
    assert {p.relative_to(env.storage).parts[:2] for p in stored_files(env.storage)} == {
        ("jobs", job_id)
    }
    assert count_rows(env.database_url, "jobs") == {"jobs": 1}
