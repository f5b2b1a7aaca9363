"""On the OpenAI route the upstream gets the file while the client's upload still
arrives, and its last bytes only once the job and its ledger row are written."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.db import create_engine
from app.openai_compat import endpoints
from tests.conftest import SPEECH_WAV_STEREO
from tests.support.gateway import ThreadedGateway
from tests.support.vendor import FakeVendor

API_KEY = "sk-streaming-upstream"
TEXT = "heard while it arrived"
BOUNDARY = "earlyupload7f3a"
PATH = "/v1/audio/transcriptions"


@dataclass
class Arrival:
    """One request at the upstream: its body's bytes as they came."""

    expected: int
    received: bytearray = field(default_factory=bytearray)
    complete: bool = False
    cut: bool = False
    rows_when_complete: list[tuple[Any, ...]] = field(default_factory=list)


class StreamingUpstream(FakeVendor):
    """An OpenAI-compatible upstream that reads each body chunk by chunk, so a test
    can see how much of it came when. On a whole body it looks, before answering,
    at the gateway's job and ledger rows (``look``)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[Arrival] = []
        self.look: Callable[[], list[tuple[Any, ...]]] = list
        self.refuse_unread = 0  # requests answered 503 before their body is read

    def routes(self) -> list[Route]:
        return [Route(PATH, self.transcribe, methods=["POST"])]

    async def transcribe(self, request: Request) -> Response:
        if self.refuse_unread > 0:  # as a busy proxy does, before reading anything
            self.refuse_unread -= 1
            return JSONResponse({"error": {"message": "busy"}}, status_code=503)
        arrival = Arrival(int(request.headers["content-length"]))
        self.arrivals.append(arrival)
        try:
            async for chunk in request.stream():
                arrival.received += chunk
        except ClientDisconnect:
            arrival.cut = True
            return Response(status_code=400)
        if len(arrival.received) < arrival.expected:
            arrival.cut = True
            return Response(status_code=400)
        arrival.complete = True
        arrival.rows_when_complete = await asyncio.to_thread(self.look)
        return JSONResponse({"text": TEXT})

    @property
    def complete(self) -> list[Arrival]:
        return [a for a in self.arrivals if a.complete]


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return [tuple(row) for row in await connection.execute(text(sql))]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _form(audio: bytes, before: dict[str, str], after: dict[str, str] | None = None) -> bytes:
    """A multipart body as the OpenAI SDK sends it: ``before``, the file, ``after``."""

    def part(name: str, value: str) -> bytes:
        return (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()

    body = b"".join(part(name, value) for name, value in before.items())
    body += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="talk.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    body += audio + b"\r\n"
    body += b"".join(part(name, value) for name, value in (after or {}).items())
    return body + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def upstream() -> Iterator[StreamingUpstream]:
    with StreamingUpstream() as fake:
        yield fake


@pytest.fixture
def gateway(
    upstream: StreamingUpstream,
    vendor_gateway: Callable[..., tuple[ThreadedGateway, str]],
    postgres_url: str,
) -> tuple[ThreadedGateway, str]:
    upstream.look = lambda: _rows(
        postgres_url,
        "SELECT j.status, s.outcome FROM jobs j JOIN provider_submissions s ON s.job_id = j.id",
    )
    return vendor_gateway(
        public=False, OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=upstream.base_url + "/v1"
    )


def _post_in_two(
    gateway: ThreadedGateway, key: str, body: bytes, hold_back: int, between: Callable[[], None]
) -> httpx.Response:
    """POST ``body`` but for its last ``hold_back`` bytes, run ``between``, send the rest."""

    def chunks() -> Iterator[bytes]:
        yield body[:-hold_back]
        between()
        yield body[-hold_back:]

    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(len(body)),
    }
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        return client.post(PATH, content=chunks(), headers=headers)


def _wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _assert_cut_off_and_no_job(upstream: StreamingUpstream, postgres_url: str) -> None:
    """The upstream's one request was cut off before its end, and no job is left."""
    assert _wait_until(lambda: upstream.arrivals[0].cut)
    assert upstream.complete == []
    assert _wait_until(lambda: _rows(postgres_url, "SELECT id FROM jobs") == [])


def test_the_file_goes_upstream_as_it_arrives_and_its_end_after_the_job_is_written(
    upstream: StreamingUpstream, gateway: tuple[ThreadedGateway, str]
) -> None:
    served, key = gateway
    audio = SPEECH_WAV_STEREO.read_bytes()
    body = _form(audio, {"model": "openai/whisper-1", "response_format": "json"})
    seen_before_the_end: list[int] = []

    def between() -> None:
        # Most of the file is at the upstream while the client still holds its end.
        _wait_until(lambda: bool(upstream.arrivals) and len(upstream.arrivals[0].received) > 0)
        time.sleep(0.2)
        arrivals = upstream.arrivals
        seen_before_the_end.append(len(arrivals[0].received) if arrivals else 0)

    answer = _post_in_two(served, key, body, hold_back=1000, between=between)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"text": TEXT}
    assert seen_before_the_end[0] > len(audio) // 2  # sent while the upload arrived
    [arrival] = upstream.arrivals
    assert arrival.complete and not arrival.cut
    # The whole file, once, in the upstream's own form fields.
    assert arrival.received.count(audio) == 1
    assert b'name="model"\r\n\r\nwhisper-1\r\n' in arrival.received
    assert b'filename="talk.wav"' in arrival.received
    # When its body was whole, the job was in hand and its submit in the ledger.
    assert arrival.rows_when_complete == [("processing", None)]


def test_a_field_after_the_file_gives_the_early_upload_up_and_the_file_goes_from_storage(
    upstream: StreamingUpstream, gateway: tuple[ThreadedGateway, str]
) -> None:
    served, key = gateway
    audio = SPEECH_WAV_STEREO.read_bytes()
    body = _form(audio, {"model": "openai/whisper-1"}, after={"language": "de"})

    answer = _post_in_two(served, key, body, hold_back=1000, between=lambda: time.sleep(0.3))

    assert answer.status_code == 200, answer.text
    [sent] = upstream.complete
    assert sent.received.count(audio) == 1
    assert b'name="language"\r\n\r\nde\r\n' in sent.received  # the field that came late
    # The early one (begun before "language" was known) never reached its end.
    assert _wait_until(lambda: all(a.complete or a.cut for a in upstream.arrivals))
    assert [a.complete for a in upstream.arrivals] == [False, True]


def test_a_truncated_wav_is_refused_and_the_upstream_never_gets_a_whole_request(
    upstream: StreamingUpstream, gateway: tuple[ThreadedGateway, str], postgres_url: str
) -> None:
    served, key = gateway
    audio = SPEECH_WAV_STEREO.read_bytes()
    cut = audio[: len(audio) // 2]  # the header still says the whole length
    body = _form(cut, {"model": "openai/whisper-1"})

    answer = _post_in_two(served, key, body, hold_back=1000, between=lambda: time.sleep(0.3))

    assert answer.status_code == 400, answer.text
    assert "truncated" in answer.json()["error"]["message"]
    assert upstream.arrivals  # it had begun
    _assert_cut_off_and_no_job(upstream, postgres_url)


def test_a_client_that_leaves_mid_upload_leaves_no_whole_request_upstream(
    upstream: StreamingUpstream, gateway: tuple[ThreadedGateway, str], postgres_url: str
) -> None:
    served, key = gateway
    audio = SPEECH_WAV_STEREO.read_bytes()
    body = _form(audio, {"model": "openai/whisper-1"})
    host, port = served.base_url.removeprefix("http://").split(":")
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(head + body[: len(body) // 2])
        assert _wait_until(lambda: bool(upstream.arrivals))
    # Gone with half the file sent: the upstream's request is cut off, no job is left.
    _assert_cut_off_and_no_job(upstream, postgres_url)


def test_the_upstream_answering_before_the_end_is_asked_again_the_usual_way(
    upstream: StreamingUpstream, gateway: tuple[ThreadedGateway, str], postgres_url: str
) -> None:
    served, key = gateway
    audio = SPEECH_WAV_STEREO.read_bytes()
    body = _form(audio, {"model": "openai/whisper-1"})
    upstream.refuse_unread = 1

    answer = _post_in_two(served, key, body, hold_back=1000, between=lambda: time.sleep(0.3))

    assert upstream.refuse_unread == 0  # it did refuse the early one
    assert answer.status_code == 200, answer.text
    [sent] = upstream.complete
    assert sent.received.count(audio) == 1
    # The refused early request was never a submit: one ledger row, accepted.
    assert _rows(postgres_url, "SELECT outcome FROM provider_submissions") == [("accepted",)]


@pytest.mark.parametrize("limit", ["in_flight", "early_uploads"])
def test_early_uploads_keep_within_the_vendors_in_flight_limit_and_their_own(
    upstream: StreamingUpstream,
    vendor_gateway: Callable[..., tuple[ThreadedGateway, str]],
    monkeypatch: pytest.MonkeyPatch,
    limit: str,
) -> None:
    settings = {"PROVIDER_MAX_IN_FLIGHT": 1} if limit == "in_flight" else {}
    if limit == "early_uploads":
        monkeypatch.setattr(endpoints, "MAX_EARLY_UPLOADS", 1)
    served, key = vendor_gateway(
        public=False,
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=upstream.base_url + "/v1",
        **settings,
    )
    audio = SPEECH_WAV_STEREO.read_bytes()
    body = _form(audio, {"model": "openai/whisper-1"})
    both_held = threading.Barrier(2)
    early: list[int] = []
    answers: list[int] = []

    def between() -> None:
        both_held.wait(timeout=10)
        time.sleep(0.5)
        early.append(len(upstream.arrivals))

    def post() -> None:
        answers.append(_post_in_two(served, key, body, 1000, between).status_code)

    clients = [threading.Thread(target=post) for _ in range(2)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=60)

    assert early and max(early) == 1  # the second upload waited for its whole file
    assert answers == [200, 200]
    assert len(upstream.complete) == 2


def test_options_the_provider_refuses_start_nothing_and_get_the_usual_error(
    upstream: StreamingUpstream, gateway: tuple[ThreadedGateway, str]
) -> None:
    served, key = gateway
    body = _form(SPEECH_WAV_STEREO.read_bytes(), {"model": "openai/" + "m" * 300})

    answer = _post_in_two(served, key, body, hold_back=1000, between=lambda: time.sleep(0.1))

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "model"
    assert upstream.arrivals == []
