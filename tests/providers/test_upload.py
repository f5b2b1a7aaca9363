"""The stored audio as a multipart part: whole, in large reads, and a clear error when gone."""

from __future__ import annotations

import os

import httpx
import pytest

from app.providers.base import PermanentProviderError
from app.providers.upload import READ_BYTES, open_audio


async def test_the_part_carries_the_whole_file_in_large_reads(tmp_path):
    data = os.urandom(3 * READ_BYTES + 123)  # three full reads and a short one
    path = tmp_path / "audio"
    path.write_bytes(data)
    async with open_audio(path) as audio:
        sizes: list[int] = []
        read = audio.read

        def counted(size: int | None = -1) -> bytes:
            chunk = read(size)
            sizes.append(len(chunk))
            return chunk

        audio.read = counted  # type: ignore[method-assign]
        form = {"Content-Type": "multipart/form-data; boundary=b0undary"}
        streamed = httpx.Request(
            "POST", "http://upstream/", headers=form, files={"file": ("a.wav", audio, "audio/wav")}
        )
        body = b"".join(streamed.stream)  # type: ignore[arg-type]
    expected = httpx.Request(
        "POST", "http://upstream/", headers=form, files={"file": ("a.wav", data, "audio/wav")}
    )
    assert body == b"".join(expected.stream)  # type: ignore[arg-type]
    assert int(streamed.headers["content-length"]) == len(body)
    assert sizes == [READ_BYTES, READ_BYTES, READ_BYTES, 123, 0]  # not httpx's 64 KiB
    assert audio.closed


async def test_audio_deleted_under_the_task_is_a_permanent_error(tmp_path):
    with pytest.raises(PermanentProviderError) as caught:
        async with open_audio(tmp_path / "gone"):
            pass
    assert caught.value.code == "internal"
    assert "no longer stored" in str(caught.value)
