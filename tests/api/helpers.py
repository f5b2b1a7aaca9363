"""Small helpers shared by the API tests."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx

from tests.conftest import SPEECH_WAV

# A 16 kHz mono 16-bit WAV header that announces no samples at all.
WAV_HEADER_ONLY = (
    b"RIFF"
    + struct.pack("<I", 36)
    + b"WAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    + b"data"
    + struct.pack("<I", 0)
)


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
WAV_UNDECODABLE = (
    b"RIFF"
    + struct.pack("<I", 40)
    + b"WAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 0, 16000, 32000, 2, 16)
    + b"data"
    + struct.pack("<I", 4)
    + bytes(4)
)
