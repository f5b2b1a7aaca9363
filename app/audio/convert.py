"""Decode uploads to the raw 16-bit mono PCM a recognizer wants.

WAV is decoded here with numpy so the gateway works without ffmpeg; every
other container goes through ffmpeg when it is on the PATH.
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.providers.base import AudioFormat

_PCM = 0x0001
_IEEE_FLOAT = 0x0003
_EXTENSIBLE = 0xFFFE
# The GUID of an extensible WAV's subformat is the format code followed by this.
_KSDATAFORMAT_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_SUPPORTED_BITS = {_PCM: (8, 16, 24, 32), _IEEE_FLOAT: (32, 64)}
_ENCODING_NAMES = {0x0002: "MS ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM"}

_BLOCK = 1 << 18  # frames read, or samples resampled, at a time: bounds the temporaries
_SINC_ZEROS = 8  # zero crossings of the interpolation kernel on each side


class UnsupportedAudio(ValueError):
    """The audio cannot be decoded; the message is written for the API user."""


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def decode_to_pcm16_mono(path: Path, fmt: AudioFormat, rate: int = 16000) -> bytes:
    """Return the audio at ``path`` as little-endian 16-bit mono PCM at ``rate`` Hz."""
    if fmt != "wav":
        return _decode_with_ffmpeg(path, fmt, rate)
    wav = _read_wav_header(path)
    if wav.bits not in _SUPPORTED_BITS.get(wav.encoding, ()):
        if ffmpeg_available():
            return _decode_with_ffmpeg(path, fmt, rate)
        raise UnsupportedAudio(
            f"WAV with {_describe_encoding(wav)} is not supported without ffmpeg; "
            "upload 8/16/24/32-bit PCM or float WAV, or install ffmpeg on the gateway's PATH"
        )
    mono = _read_wav_mono(path, wav)
    resampled = _resample(mono, wav.sample_rate, rate)
    return np.rint(np.clip(resampled * 32768.0, -32768, 32767)).astype("<i2").tobytes()


@dataclass(frozen=True)
class _Wav:
    encoding: int  # the format code; for WAVE_FORMAT_EXTENSIBLE, its subformat's
    channels: int
    sample_rate: int
    bits: int  # container size of one sample
    data_offset: int
    frames: int


def _read_wav_header(path: Path) -> _Wav:
    """Walk the RIFF chunks up to ``data``, without reading the samples."""
    size = path.stat().st_size
    fmt_body: bytes | None = None
    data: tuple[int, int] | None = None
    ds64_data_size: int | None = None
    with path.open("rb") as f:
        head = f.read(12)
        if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise UnsupportedAudio("the file is not a WAV file")
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            body = pos + 8
            if chunk_id == b"ds64":  # RF64: the real 64-bit sizes live here
                ds64 = f.read(min(chunk_size, 28))
                if len(ds64) >= 16:
                    ds64_data_size = struct.unpack_from("<Q", ds64, 8)[0]
            elif chunk_id == b"fmt ":
                fmt_body = f.read(min(chunk_size, 40))
            elif chunk_id == b"data":
                if chunk_size == 0xFFFFFFFF:  # RF64, or a stream that never wrote its size
                    chunk_size = ds64_data_size if ds64_data_size is not None else size - body
                # A truncated upload keeps whatever samples did arrive.
                data = (body, min(chunk_size, size - body))
                if fmt_body is not None:
                    break
            pos = body + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    if fmt_body is None or len(fmt_body) < 16:
        raise UnsupportedAudio("the WAV file is corrupt or truncated: it has no format chunk")
    if data is None:
        raise UnsupportedAudio("the WAV file is truncated: it has no audio data")
    encoding, channels, sample_rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt_body[:16])
    if encoding == _EXTENSIBLE:
        extensible = len(fmt_body) >= 40 and fmt_body[26:40] == _KSDATAFORMAT_TAIL
        encoding = struct.unpack_from("<H", fmt_body, 24)[0] if extensible else _EXTENSIBLE
    if channels == 0 or sample_rate == 0 or bits == 0:
        raise UnsupportedAudio("the WAV file is corrupt: its format chunk is invalid")
    if encoding in _SUPPORTED_BITS and block_align != channels * math.ceil(bits / 8):
        raise UnsupportedAudio("the WAV file is corrupt: its block size does not match its format")
    frames = data[1] // block_align if block_align else 0
    if frames == 0:
        raise UnsupportedAudio("the WAV file contains no audio samples")
    return _Wav(encoding, channels, sample_rate, bits, data[0], frames)


def _describe_encoding(wav: _Wav) -> str:
    if wav.encoding in _SUPPORTED_BITS:
        kind = "PCM" if wav.encoding == _PCM else "float"
        return f"{wav.bits}-bit {kind} samples"
    return _ENCODING_NAMES.get(wav.encoding, f"encoding 0x{wav.encoding:04X}")


def _read_wav_mono(path: Path, wav: _Wav) -> np.ndarray:
    """Read the samples a block at a time, averaging the channels to float32 in [-1, 1]."""
    width = wav.bits // 8
    mono = np.empty(wav.frames, dtype=np.float32)
    with path.open("rb") as f:
        f.seek(wav.data_offset)
        for start in range(0, wav.frames, _BLOCK):
            count = min(_BLOCK, wav.frames - start)
            raw = np.frombuffer(f.read(count * wav.channels * width), dtype=np.uint8)
            samples = _to_float(raw, wav.encoding, width)
            mono[start : start + count] = samples.reshape(count, wav.channels).mean(axis=1)
    return mono


def _to_float(raw: np.ndarray, encoding: int, width: int) -> np.ndarray:
    if encoding == _IEEE_FLOAT:
        floats = raw.view("<f4" if width == 4 else "<f8").astype(np.float32)
        return np.nan_to_num(floats, nan=0.0, posinf=1.0, neginf=-1.0)
    if width == 1:  # 8-bit WAV is unsigned, centred on 128
        return (raw.astype(np.float32) - 128.0) / 128.0
    if width == 3:
        b = raw.reshape(-1, 3).astype(np.int32)
        # Put the 24 bits at the top of an int32 so the shift back extends the sign.
        packed = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)
        return (packed >> 8).astype(np.float32) / float(1 << 23)
    ints = raw.view("<i2" if width == 2 else "<i4")
    return (ints / float(1 << (8 * width - 1))).astype(np.float32)


def _resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling with a Hann-windowed sinc kernel.

    Each output sample is a weighted sum of the input samples around its
    position. When downsampling, the kernel is widened so it also low-passes
    below the new Nyquist frequency, which keeps high frequencies from folding
    back into the speech band.
    """
    if src == dst:
        return x
    cutoff = 1.0 if dst > src else 0.95 * dst / src  # of the input's Nyquist frequency
    half = math.ceil(_SINC_ZEROS / cutoff)  # kernel half-width, in input samples
    padded = np.concatenate([np.zeros(half, np.float32), x, np.zeros(half + 1, np.float32)])
    n_out = len(x) * dst // src
    out = np.empty(n_out, dtype=np.float32)
    for start in range(0, n_out, _BLOCK):
        index = np.arange(start, min(start + _BLOCK, n_out), dtype=np.int64) * src
        base = index // dst  # the input sample at or just before each output position
        frac = (index % dst) / dst
        acc = np.zeros(len(index))
        weights = np.zeros(len(index))
        for k in range(1 - half, half + 1):
            d = k - frac  # distance from input sample base + k, in input samples
            w = cutoff * np.sinc(cutoff * d) * (0.5 + 0.5 * np.cos(np.pi * d / half))
            acc += w * padded[base + k + half]
            weights += w
        out[start : start + len(index)] = acc / weights  # unit gain at DC
    return out


def _decode_with_ffmpeg(path: Path, fmt: AudioFormat, rate: int) -> bytes:
    ffmpeg = shutil.which("ffmpeg") if ffmpeg_available() else None
    if ffmpeg is None:
        raise UnsupportedAudio(
            f"{fmt} audio needs ffmpeg on the gateway's PATH; upload WAV or install ffmpeg"
        )
    command = [
        ffmpeg,
        *("-nostdin", "-hide_banner", "-loglevel", "error"),
        # Only the sniffed demuxer and local files: an upload cannot make ffmpeg
        # follow a playlist to the network.
        *("-protocol_whitelist", "file", "-f", fmt, "-i", str(path)),
        *("-f", "s16le", "-ac", "1", "-ar", str(rate), "-"),
    ]
    # The command is fixed; only the gateway's own stored path is interpolated.
    proc = subprocess.run(command, capture_output=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        # ffmpeg names the input file; the server's paths are no business of the user.
        lines = proc.stderr.decode(errors="replace").replace(str(path), "input").splitlines()
        reason = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise UnsupportedAudio(f"could not decode the {fmt} audio: {reason}")
    if not proc.stdout:
        raise UnsupportedAudio(f"the {fmt} audio contains no samples")
    return proc.stdout
