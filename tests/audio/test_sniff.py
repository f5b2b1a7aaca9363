import struct

import pytest

from app.audio.sniff import SNIFF_BYTES, sniff_format


def riff(kind: bytes, form: bytes) -> bytes:
    return kind + struct.pack("<I", 1000) + form + b"fmt " + bytes(40)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (riff(b"RIFF", b"WAVE"), "wav"),
        (riff(b"RF64", b"WAVE"), "wav"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x21" + bytes(30), "mp3"),
        (b"\xff\xfb\x90\x64" + bytes(30), "mp3"),  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
        (b"\xff\xf3\x48\xc4" + bytes(30), "mp3"),  # MPEG-2 layer III
        (b"\xff\xe3\x18\xc4" + bytes(30), "mp3"),  # MPEG-2.5 layer III
        (b"fLaC\x00\x00\x00\x22" + bytes(34), "flac"),
        (b"OggS\x00\x02" + bytes(22) + b"\x01\x13OpusHead", "ogg"),
        (b"OggS\x00\x02" + bytes(22) + b"\x01\x1e\x01vorbis", "ogg"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "webm"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isom", "mp4"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41", "mp4"),
        (b"FORM\x00\x01\x00\x00AIFFCOMM" + bytes(20), "aiff"),
        (b"FORM\x00\x01\x00\x00AIFCFVER" + bytes(20), "aiff"),
        (b"#!AMR\n" + bytes(10), "amr"),
        (b"#!AMR-WB\n" + bytes(10), "amr"),
    ],
)
def test_recognises_audio_containers(head: bytes, expected: str) -> None:
    assert sniff_format(head[:SNIFF_BYTES]) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",  # zip (also docx, jar)
        b"hello world, this is text\n",
        b"\x89PNG\r\n\x1a\n",
        riff(b"RIFF", b"AVI "),  # RIFF, but video
        riff(b"RIFF", b"WEBP"),
        b"FORM\x00\x00\x00\x10ILBMBMHD",  # IFF, but an image
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",  # an iPhone photo
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # JPEG: 0xFF then not a frame sync
        b"\xff\xf1\x50\x80\x02\x1f\xfc",  # AAC ADTS: sync bits, but layer 0
        b"\xff\xfb\xf0\x64",  # MP3-like sync with the reserved bitrate index
        b"RIFF",  # too short to say
        b"\xff\xfb",
    ],
)
def test_rejects_everything_else(head: bytes) -> None:
    assert sniff_format(head) is None


def test_decides_from_the_first_bytes_only() -> None:
    # A WAV whose later bytes look like another format is still a WAV.
    assert sniff_format(riff(b"RIFF", b"WAVE") + b"fLaC") == "wav"
    assert sniff_format(b"junk" + b"fLaC") is None
