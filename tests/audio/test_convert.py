import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from app.audio import convert
from app.audio.convert import UnsupportedAudio, decode_to_pcm16_mono

DATA = Path(__file__).parents[1] / "data"

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
KSDATAFORMAT_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def encode(samples: np.ndarray, bits: int, encoding: int) -> bytes:
    """Interleaved frames (frames x channels, floats in [-1, 1]) as WAV sample bytes."""
    if encoding == FLOAT:
        return samples.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return np.round(samples * 127 + 128).astype(np.uint8).tobytes()
    ints = np.round(samples * (2 ** (bits - 1) - 1)).astype("<i4")
    if bits == 24:
        return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return ints.astype("<i2" if bits == 16 else "<i4").tobytes()


def wav_bytes(
    frames: np.ndarray,
    rate: int,
    bits: int = 16,
    encoding: int = PCM,
    extensible: bool = False,
    extra_chunk: bool = False,
) -> bytes:
    channels = 1 if frames.ndim == 1 else frames.shape[1]
    block_align = channels * bits // 8
    tag = EXTENSIBLE if extensible else encoding
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", encoding) + KSDATAFORMAT_TAIL
    data = encode(frames, bits, encoding)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:  # an odd-sized chunk before the data, as some editors write
        body += b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write(tmp_path: Path, content: bytes, name: str = "in.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def decode(path: Path, rate: int = 16000) -> np.ndarray:
    return np.frombuffer(decode_to_pcm16_mono(path, "wav", rate), dtype="<i2") / 32768


def frequency(samples: np.ndarray, rate: int) -> float:
    crossings = np.count_nonzero(np.diff(np.signbit(samples)))
    return crossings / 2 / (len(samples) / rate)


@pytest.mark.parametrize(
    ("bits", "encoding", "extensible"),
    [
        (8, PCM, False),
        (16, PCM, False),
        (24, PCM, False),
        (32, PCM, False),
        (32, FLOAT, False),
        (64, FLOAT, False),
        (24, PCM, True),
        (32, FLOAT, True),
    ],
)
def test_decodes_each_sample_encoding(
    tmp_path: Path, bits: int, encoding: int, extensible: bool
) -> None:
    tone = sine(440, 16000, 1.0)
    path = write(tmp_path, wav_bytes(tone, 16000, bits, encoding, extensible))

    out = decode(path)

    assert len(out) == 16000
    # 8-bit keeps only ~2 significant digits; the others are near-exact.
    assert np.abs(out - tone).max() < (0.01 if bits == 8 else 1e-4)


def test_negative_24_bit_samples_keep_their_sign(tmp_path: Path) -> None:
    ramp = np.array([-1.0, -0.5, -1e-6, 0.0, 0.25, 0.999])
    out = decode(write(tmp_path, wav_bytes(ramp, 16000, bits=24)))
    assert np.allclose(out, ramp, atol=1e-4)


def test_averages_channels(tmp_path: Path) -> None:
    tone = sine(300, 16000, 0.5)
    # Three channels that sum to 1.5 x the tone: the mono mix is half the tone.
    frames = np.stack([tone, tone, -0.5 * tone], axis=1)
    out = decode(write(tmp_path, wav_bytes(frames, 16000, extra_chunk=True)))
    assert len(out) == 8000
    assert np.abs(out - tone / 2).max() < 1e-3


def test_resamples_44k_stereo_keeping_the_pitch(tmp_path: Path) -> None:
    tone = sine(1000, 44100, 2.0)
    path = write(tmp_path, wav_bytes(np.stack([tone, tone], axis=1), 44100))

    out = decode(path)

    assert len(out) == 32000
    assert frequency(out, 16000) == pytest.approx(1000, rel=0.01)
    assert np.sqrt(np.mean(out**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_downsampling_filters_what_would_alias(tmp_path: Path) -> None:
    # 12 kHz is above 16 kHz audio's 8 kHz Nyquist: plain interpolation would
    # fold it back as an audible 4 kHz tone.
    path = write(tmp_path, wav_bytes(sine(12000, 48000, 1.0), 48000))
    out = decode(path)
    assert np.sqrt(np.mean(out[100:-100] ** 2)) < 0.01


def test_upsamples_8k(tmp_path: Path) -> None:
    out = decode(write(tmp_path, wav_bytes(sine(440, 8000, 1.0), 8000)))
    assert len(out) == 16000
    assert frequency(out, 16000) == pytest.approx(440, rel=0.01)


def test_other_output_rates(tmp_path: Path) -> None:
    out = decode(write(tmp_path, wav_bytes(sine(440, 16000, 1.0), 16000)), rate=8000)
    assert len(out) == 8000
    assert frequency(out, 8000) == pytest.approx(440, rel=0.01)


def test_committed_speech_files_decode_to_the_same_length() -> None:
    mono = decode(DATA / "hello-16k-mono.wav")
    stereo = decode(DATA / "hello-44k-stereo.wav")
    assert len(mono) == 51728
    assert len(stereo) == 142576 * 16000 // 44100
    assert np.abs(mono).max() > 0.1


def test_truncated_data_keeps_the_samples_that_arrived(tmp_path: Path) -> None:
    content = wav_bytes(sine(440, 16000, 1.0), 16000)
    out = decode(write(tmp_path, content[: 44 + 2 * 4000 + 1]))  # an odd byte cut off too
    assert len(out) == 4000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (wav_bytes(sine(440, 16000, 0.1), 16000)[:44], "no audio samples"),  # header only
        (wav_bytes(sine(440, 16000, 0.1), 16000)[:36], "no audio data"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no format chunk"),
        (b"not a wav at all", "not a WAV file"),
        (b"", "not a WAV file"),
    ],
)
def test_broken_wavs_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(UnsupportedAudio, match=message):
        decode(write(tmp_path, content))


def test_adpcm_without_ffmpeg_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    fmt = struct.pack("<HHIIHH", 2, 1, 16000, 8000, 256, 4)  # MS ADPCM
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 512) + bytes(512)
    path = write(tmp_path, b"RIFF" + struct.pack("<I", len(body)) + body)

    with pytest.raises(UnsupportedAudio, match=r"MS ADPCM.*ffmpeg"):
        decode(path)


def test_mp3_without_ffmpeg_names_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert not convert.ffmpeg_available()
    path = write(tmp_path, b"ID3\x04" + bytes(100), "in.mp3")

    with pytest.raises(UnsupportedAudio, match="mp3 audio needs ffmpeg on the gateway's PATH"):
        decode_to_pcm16_mono(path, "mp3")


def fake_ffmpeg(tmp_path: Path, script: str) -> Path:
    """A stand-in ffmpeg: this machine has none, but the plumbing can still be checked."""
    program = tmp_path / "ffmpeg"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    return program


def test_other_formats_go_through_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args_file = tmp_path / "args"
    program = fake_ffmpeg(tmp_path, f'echo "$@" > {args_file}\nprintf "\\001\\000\\002\\000"\n')
    monkeypatch.setattr(shutil, "which", lambda name: str(program))
    path = write(tmp_path, b"fLaC" + bytes(100), "in.flac")

    assert decode_to_pcm16_mono(path, "flac", 8000) == b"\x01\x00\x02\x00"
    args = args_file.read_text().split()
    assert args[args.index("-i") - 2 : args.index("-i") + 2] == ["-f", "flac", "-i", str(path)]
    assert args[-7:] == ["-f", "s16le", "-ac", "1", "-ar", "8000", "-"]
    assert "-nostdin" in args


def test_ffmpeg_failure_is_unsupported_audio_without_server_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, b"OggS" + bytes(100), "in.ogg")
    program = fake_ffmpeg(tmp_path, f'echo "{path}: Invalid data found" >&2\nexit 1\n')
    monkeypatch.setattr(shutil, "which", lambda name: str(program))

    with pytest.raises(UnsupportedAudio) as caught:
        decode_to_pcm16_mono(path, "ogg")
    assert str(caught.value) == "could not decode the ogg audio: input: Invalid data found"
