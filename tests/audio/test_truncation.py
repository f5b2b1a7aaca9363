"""Whether an uploaded WAV holds any samples, from its first bytes and its size."""

from __future__ import annotations

import struct

from app.audio.truncation import HEAD_BYTES, wav_without_samples
from tests.api.helpers import wav_header
from tests.conftest import SPEECH_WAV

# Stereo 16-bit: four bytes a frame.
_HEADER = wav_header(0, channels=2)[:40]


def _check(data_size: int, samples: bytes) -> str | None:
    wav = wav_header(data_size, channels=2) + samples
    return wav_without_samples(wav[:HEAD_BYTES], len(wav))


def test_a_wav_with_samples_has_them() -> None:
    data = SPEECH_WAV.read_bytes()
    assert wav_without_samples(data[:HEAD_BYTES], len(data)) is None
    assert _check(4, bytes(4)) is None  # one frame is enough


def test_a_header_with_less_than_one_frame_has_none() -> None:
    for size, samples in [(0, b""), (0xFFFFFFFF, b""), (3, bytes(3)), (4, b"")]:
        assert _check(size, samples) is not None, (size, samples)


def test_an_unknown_size_counts_what_follows() -> None:
    assert _check(0, bytes(8)) is None
    assert _check(0xFFFFFFFF, bytes(8)) is None


def test_what_is_not_a_plain_wav_is_not_judged() -> None:
    assert wav_without_samples(b"ID3\x04" + bytes(100), 104) is None
    rf64 = b"RF64" + _HEADER[4:] + struct.pack("<I", 0xFFFFFFFF)
    assert wav_without_samples(rf64, len(rf64)) is None
    no_data_yet = _HEADER[:36] + b"LIST" + struct.pack("<I", 1000)
    assert wav_without_samples(no_data_yet, 2000) is None
