"""The name and type a Daglo upload is sent under.

Daglo takes a file by its extension, from a fixed list (daglo.txt, "Support file
formats"; anything else is "400: Bad Request. Invalid format."), and warns that
"Even if the format is the same, transcription may not proceed if the actual
content (encoding) is different". So the extension comes from the bytes, never
from the client's file name. Our sniffed format names a container; for Ogg and
EBML the list names only some of what they hold (Opus as .opus, WebM as .weba),
so those are told apart here from the file's first bytes.
"""

from __future__ import annotations

from app.audio.sniff import MEDIA_TYPES
from app.providers.base import AudioFormat

HEAD_BYTES = 4096  # enough for an Ogg file's first pages and an EBML header

# The formats whose container alone decides the extension.
_EXTENSIONS: dict[AudioFormat, str] = {
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "aiff": "aiff",
    "amr": "amr",
}
# By extension: the formats above as MEDIA_TYPES has them, and the names Daglo
# lists for what an Ogg, EBML or MP4 container holds.
CONTENT_TYPES = {ext: MEDIA_TYPES[fmt] for fmt, ext in _EXTENSIONS.items()} | {
    "opus": MEDIA_TYPES["ogg"],  # RFC 7845
    "weba": MEDIA_TYPES["webm"],
    "m4a": MEDIA_TYPES["mp4"],
    "3gp": "audio/3gpp",
    "mov": "video/quicktime",
}
# What the list lacks, as said to the client when a job is refused for it.
UNSUPPORTED = {
    "ogg": "daglo takes Ogg audio only as Opus (.opus), not Vorbis, FLAC or Speex",
    "webm": "daglo takes WebM (.weba), not other Matroska files",
}

_OGG_BOS = 0x02  # a stream's first page
_OPUS = b"OpusHead"
_SKELETON = b"fishead\x00"  # an index stream, no audio
_EBML_DOCTYPE = b"\x42\x82"


def upload_extension(fmt: AudioFormat, head: bytes) -> str | None:
    """The extension Daglo documents for a file of format ``fmt`` starting with
    ``head``; None when Daglo documents none for what it holds."""
    if fmt == "ogg":
        return "opus" if _ogg_codecs(head) == {_OPUS} else None
    if fmt == "webm":
        return "weba" if _ebml_doctype(head) == b"webm" else None
    if fmt == "mp4":
        # ISO-BMFF all the same; the major brand says which of Daglo's names fits.
        brand = head[8:12]
        if brand[:3] in (b"3gp", b"3g2"):
            return "3gp"
        return "mov" if brand == b"qt  " else "m4a"
    return _EXTENSIONS.get(fmt)


def refusal(fmt: AudioFormat, head: bytes) -> str | None:
    """Why Daglo cannot take a file of format ``fmt`` starting with ``head``, when
    these bytes already show it (a stream other than Opus in an Ogg file, a
    Matroska DocType other than WebM); None when they do not, or it can."""
    if fmt == "ogg" and _ogg_codecs(head) - {_OPUS}:
        return UNSUPPORTED["ogg"]
    if fmt == "webm" and _ebml_doctype(head) not in (None, b"webm"):
        return UNSUPPORTED["webm"]
    return None


def upload_name(filename: str | None, job_id: str, extension: str) -> str:
    """The client's file name (its last path part) with ``extension`` for its own,
    or the job's id when the client gave none."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return f"{stem or job_id}.{extension}"


def _ogg_codecs(head: bytes) -> set[bytes]:
    """The codecs of the logical streams whose first pages open the file (by the
    spec, all first pages come before any other), Skeleton left out."""
    codecs: set[bytes] = set()
    pos = 0
    while head[pos : pos + 4] == b"OggS" and len(head) > pos + 27:
        if not head[pos + 5] & _OGG_BOS:
            break
        segments = head[pos + 26]
        table = head[pos + 27 : pos + 27 + segments]
        packet = pos + 27 + segments
        if packet + 8 > len(head):
            break  # the head ends inside this page: its codec is not known
        codec = head[packet : packet + 8]
        if codec != _SKELETON:
            codecs.add(codec)
        pos = packet + sum(table)
    return codecs


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType of an EBML header ("webm", "matroska"), or None if not found."""
    try:
        size, pos = _vint(head, 4)  # after the EBML element's ID
        end = pos + size
        while pos < end:
            width = _width(head[pos])
            element = head[pos : pos + width]
            size, pos = _vint(head, pos + width)
            if element == _EBML_DOCTYPE:
                if pos + size > len(head):
                    return None  # cut off inside the DocType: unknown, not another one
                return head[pos : pos + size].rstrip(b"\x00")
            pos += size
    except (IndexError, ValueError):
        pass
    return None


def _width(first: int) -> int:
    """An EBML variable-length integer's byte count, from its first byte."""
    for width in range(1, 9):
        if first & (0x80 >> (width - 1)):
            return width
    raise ValueError("not an EBML variable-length integer")


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    """The EBML variable-length integer at ``pos``, and the position after it."""
    width = _width(data[pos])
    value = data[pos] & (0xFF >> width)
    for byte in data[pos + 1 : pos + width]:
        value = value << 8 | byte
    if pos + width > len(data):
        raise IndexError("cut short")
    return value, pos + width
