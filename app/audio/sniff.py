"""Tell an audio container from its first bytes.

Filenames and Content-Type headers lie (``recording.mp3`` that is a WAV, or
``application/octet-stream`` for everything), so only magic bytes decide.
"""

from __future__ import annotations

from app.providers.base import AudioFormat

SNIFF_BYTES = 64  # how much of the file's start sniff_format wants

# The media type of each format: what a vendor is told the audio is, whatever
# the client declared.
MEDIA_TYPES: dict[AudioFormat, str] = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "webm": "audio/webm",
    "mp4": "audio/mp4",
    "aiff": "audio/aiff",
    "amr": "audio/amr",
}


def media_type(fmt: AudioFormat | None) -> str:
    """The media type of audio in ``fmt``; octet-stream when it is not known."""
    return MEDIA_TYPES[fmt] if fmt else "application/octet-stream"


# ISO-BMFF brands of still images: an HEIC photo has ``ftyp`` too, but no audio.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif"})


def sniff_format(head: bytes) -> AudioFormat | None:
    """Return the audio format of a file starting with ``head``, or None."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS:
        return "mp4"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head.startswith(b"ID3") or _is_mpeg_audio_frame(head):
        return "mp3"
    return None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG-1/2/2.5 layer I-III frame header, as a raw MP3 without ID3 starts."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    # Reserved values; layer 0 is also how AAC's ADTS header differs from MP3.
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and sample_rate != 0b11
