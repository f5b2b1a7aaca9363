"""EarlyUpload on its own: the body it sends, and each way it is given up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.providers import early_upload
from app.providers.early_upload import EarlyUpload, UploadForm

FORM = UploadForm((("model", "whisper-1"), ("response_format", "json")), "a.wav", "audio/wav")
AUDIO = b"RIFF" + bytes(range(256)) * 40


class Upstream:
    """A ``send`` that reads the body as a connection would, until told to stop."""

    def __init__(self, answer_at_once: bool = False, read: bool = True) -> None:
        self.body = bytearray()
        self.length = 0
        self.content_type = ""
        self.ended = False
        self._answer_at_once = answer_at_once
        self._read = read

    async def __call__(
        self, body: AsyncIterator[bytes], length: int, content_type: str
    ) -> httpx.Response:
        self.length, self.content_type = length, content_type
        if self._answer_at_once:
            return httpx.Response(503)
        if not self._read:
            await asyncio.Event().wait()
        async for chunk in body:
            self.body += chunk
        self.ended = True
        return httpx.Response(200, json={"text": "ok"})


async def _fed(upstream: Upstream, data: bytes, predicted: int | None = None) -> EarlyUpload:
    upload = EarlyUpload(FORM, len(data) if predicted is None else predicted, upstream)
    for start in range(0, len(data), 1000):
        upload.feed(data[start : start + 1000])
        await upload.drained()
    await asyncio.sleep(0.01)
    return upload


async def test_the_body_is_the_normal_one_and_ends_only_on_release() -> None:
    upstream = Upstream()
    upload = await _fed(upstream, AUDIO)
    upload.end(len(AUDIO))
    await asyncio.sleep(0.01)
    assert not upstream.ended and upload.usable  # all but the closing boundary

    answer = await upload.release()

    assert answer is not None and answer.status_code == 200
    assert len(upstream.body) == upstream.length
    boundary = upstream.content_type.split("boundary=")[1]
    expected = httpx.Request(
        "POST",
        "http://x/",
        data={"model": "whisper-1", "response_format": "json"},
        files={"file": ("a.wav", AUDIO, "audio/wav")},
        headers={"Content-Type": upstream.content_type},
    ).read()
    assert bytes(upstream.body) == expected  # httpx's own encoding, with the same boundary
    assert bytes(upstream.body).endswith(f"\r\n--{boundary}--\r\n".encode())


async def test_more_bytes_than_predicted_give_it_up() -> None:
    upstream = Upstream()
    upload = await _fed(upstream, AUDIO, predicted=len(AUDIO) - 1)
    upload.end(len(AUDIO))
    assert not upload.usable
    assert await upload.release() is None
    assert not upstream.ended


async def test_a_file_shorter_than_predicted_gives_it_up() -> None:
    upstream = Upstream()
    upload = await _fed(upstream, AUDIO, predicted=len(AUDIO) + 10)
    upload.end(len(AUDIO))
    assert await upload.release() is None
    assert not upstream.ended


async def test_an_answer_before_the_end_is_not_used() -> None:
    upload = await _fed(Upstream(answer_at_once=True), AUDIO)
    upload.end(len(AUDIO))
    assert await upload.release() is None


async def test_an_upstream_that_does_not_read_is_left_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(early_upload, "MAX_QUEUED_BYTES", 2000)
    monkeypatch.setattr(early_upload, "STALL_SECONDS", 0.05)
    upload = await _fed(Upstream(read=False), AUDIO)  # returns: the client is not held
    assert not upload.usable
    assert await upload.release() is None


async def test_give_up_is_idempotent_and_cuts_the_request() -> None:
    upstream = Upstream()
    upload = await _fed(upstream, AUDIO[:5000], predicted=len(AUDIO))
    upload.give_up()
    upload.give_up()
    await asyncio.sleep(0.01)
    assert not upstream.ended and len(upstream.body) < upstream.length


async def test_a_release_before_the_file_ended_sends_nothing_more() -> None:
    upstream = Upstream()
    upload = await _fed(upstream, AUDIO)  # all fed, but the reader never said it ended
    assert await upload.release() is None
    await asyncio.sleep(0.01)
    assert not upstream.ended
