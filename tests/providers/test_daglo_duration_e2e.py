"""Daglo takes audio "within 4 hours": a WAV that says it is longer is a 413 at creation."""

from __future__ import annotations

import struct
from pathlib import Path

from app.providers.daglo import MAX_DURATION_SECONDS
from tests.api.helpers import upload
from tests.fakes.daglo import FakeDaglo
from tests.providers import helpers
from tests.providers.helpers import Start

fake = helpers.fake_vendor_fixture(FakeDaglo)


def _wav_lasting(path: Path, seconds: int) -> Path:
    """A WAV of 8-bit mono samples at one byte a second: ``seconds`` in as many bytes."""
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 1, 1, 8)  # PCM, mono, 1 Hz, 1 B/s, 8 bits
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", seconds) + b"\x80" * seconds
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_a_wav_over_four_hours_is_a_413_and_at_four_hours_is_taken(
    vendor_gateway: Start, fake: FakeDaglo, tmp_path: Path
) -> None:
    assert MAX_DURATION_SECONDS == 4 * 3600
    gateway, key = vendor_gateway(DAGLO_BASE_URL=fake.base_url, DAGLO_API_KEY=fake.api_key)
    too_long = _wav_lasting(tmp_path / "long.wav", MAX_DURATION_SECONDS + 1)
    with gateway.client(key) as client:
        providers = client.get("/providers").json()["data"]
        [daglo] = [p for p in providers if p["name"] == "daglo"]
        assert daglo["capabilities"]["max_duration_seconds"] == MAX_DURATION_SECONDS

        helpers.assert_too_large_for(client, too_long, "daglo", str(MAX_DURATION_SECONDS), "14401")

        at_limit = upload(
            client, _wav_lasting(tmp_path / "max.wav", MAX_DURATION_SECONDS), provider="daglo"
        )
        assert at_limit.status_code == 202, at_limit.text
        helpers.wait_until(lambda: fake.calls("submit"))
    assert len(fake.calls("submit")) == 1
