"""The duration of an upload, read from a WAV's header and its size."""

from __future__ import annotations

import io
import struct
import wave

from app.audio.duration import wav_seconds
from tests.conftest import SPEECH_WAV


def _wav(seconds: float, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(b"\0" * int(seconds * rate) * channels * width)
    return out.getvalue()


def test_a_wav_lasts_its_data_over_its_bytes_per_second() -> None:
    for seconds, rate, channels in [(1.0, 16000, 1), (2.5, 8000, 2), (0.25, 44100, 2)]:
        data = _wav(seconds, rate, channels)
        assert wav_seconds(data[:512], len(data)) == seconds


def test_the_test_speech_lasts_what_the_wave_module_says() -> None:
    data = SPEECH_WAV.read_bytes()
    with wave.open(str(SPEECH_WAV)) as reader:
        expected = reader.getnframes() / reader.getframerate()
    assert abs((wav_seconds(data[:512], len(data)) or 0) - expected) < 1e-9


def test_a_streamed_wav_without_sizes_lasts_what_arrived() -> None:
    data = bytearray(_wav(1.0))
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)  # the data chunk's size, not known
    assert wav_seconds(bytes(data[:512]), len(data) + 32000) == 2.0


def test_not_a_wav_or_no_byte_rate_says_nothing() -> None:
    assert wav_seconds(b"ID3\x04" + b"\0" * 100, 104) is None
    data = bytearray(_wav(1.0))
    data[28:32] = struct.pack("<I", 0)  # the fmt chunk's byte rate
    assert wav_seconds(bytes(data[:512]), len(data)) is None
