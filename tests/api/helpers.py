"""Small helpers shared by the API tests."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx

from tests.conftest import SPEECH_WAV


def wav_header(data_size: int, channels: int = 1) -> bytes:
    """A 16 kHz 16-bit PCM WAV header (44 bytes) whose data chunk says ``data_size``."""
    frame = 2 * max(channels, 1)
    return (
        b"RIFF"
        + struct.pack("<I", min(36 + data_size, 0xFFFFFFFF))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, 16000, 16000 * frame, frame, 16)
        + b"data"
        + struct.pack("<I", data_size)
    )


# A mono WAV header that announces no samples at all.
WAV_HEADER_ONLY = wav_header(0)


def upload(client: httpx.Client, path: Path = SPEECH_WAV, **fields: str) -> httpx.Response:
    with path.open("rb") as audio:
        return client.post("/jobs", files={"file": (path.name, audio, "audio/wav")}, data=fields)


def assert_problem(response: httpx.Response, status: int, *words: str) -> dict:
    """A problem+json answer with this status whose detail names each of ``words``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict = response.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    for word in words:
        assert word in body["detail"], body
    return body


# A WAV whose format chunk says it has no channels, with a few bytes of samples: taken
# at creation (its header and size agree), and failed by the engine, which cannot read it.
WAV_UNDECODABLE = wav_header(4, channels=0) + bytes(4)
