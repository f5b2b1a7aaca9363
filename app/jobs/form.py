"""Streams a ``multipart/form-data`` job request: the file goes straight to storage.

The file is never held in memory: each chunk is hashed, counted and written
as it arrives, and the request is refused as soon as it is too large or its
first bytes are not audio, when a WAV turns out shorter than its header says
or holds no samples, when a text field is not text in the form's charset, and
when the client stops sending for ``idle_timeout`` seconds. The rest is
bounded too: parts in number and size (their headers by python-multipart, at
8 lines of 4 KiB), and the whole body.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from app.audio.duration import wav_seconds
from app.audio.sniff import SNIFF_BYTES, sniff_format
from app.audio.truncation import HEAD_BYTES, wav_truncation, wav_without_samples
from app.errors import InvalidRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from app.providers.base import AudioFormat
from app.storage import BlobWriter

FORM_FIELDS = frozenset(
    {
        "file",
        "source_url",
        "provider",
        "language",
        "options",
        "metadata",
        "callback_url",
        "fallback_providers",
    }
)
_MAX_FIELD_BYTES = 64 * 1024
# The body beyond the file: the other fields, part headers, boundaries, preamble.
_MAX_FORM_OVERHEAD = 1024 * 1024


@dataclass(frozen=True)
class FilePart:
    """What the form said about its file; the bytes themselves went to the writer."""

    filename: str | None
    content_type: str | None
    format: AudioFormat
    seconds: float | None = None  # how long it lasts, where its header says (WAV)
    head: bytes = b""  # its first bytes (HEAD_BYTES), for a provider's look at the codec


class DigestSink:
    """Takes the file as a BlobWriter does but stores nothing: only its size, first
    bytes and SHA-256 (a request replayed by its Idempotency-Key is only fingerprinted)."""

    needs_flush = False

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self.size = 0
        self.head = b""

    def write(self, chunk: bytes) -> None:
        if len(self.head) < 64:
            self.head += chunk[: 64 - len(self.head)]
        self._sha256.update(chunk)
        self.size += len(chunk)

    async def flush(self) -> None:
        pass

    async def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    async def discard(self) -> None:
        pass

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


class FileListener(Protocol):
    """Told of the file's bytes as they arrive, after the writer (the OpenAI
    route's early vendor upload: ``app.openai_compat.early_start``)."""

    def file_data(self, reader: JobFormReader, chunk: bytes) -> None: ...

    def file_ended(self, size: int) -> None: ...

    async def drained(self) -> None: ...


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    is_file: bool = False


class JobFormReader:
    """Feeds the request body through python-multipart's push parser.

    ``fields``: the part names taken (``file`` is the audio); ``repeatable``: those
    that may come more than once (``name[]`` arrays), collected in ``lists``;
    ``max_parts``: how many parts in all (default: one per field);
    ``idle_timeout``: seconds without a byte from the client before giving up (408);
    ``listener``: told of the file's bytes too, once they are checked.
    """

    def __init__(
        self,
        content_type: str,
        writer: BlobWriter | DigestSink,
        max_upload_bytes: int,
        *,
        fields: frozenset[str] = FORM_FIELDS,
        repeatable: frozenset[str] = frozenset(),
        max_parts: int | None = None,
        idle_timeout: float | None = None,
        listener: FileListener | None = None,
    ) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise UnsupportedMediaType("multipart/form-data needs a boundary parameter")
        self.boundary: bytes = boundary
        self._listener = listener
        self.file_offset: int | None = None  # where in the body the file's bytes begin
        charset = params.get(b"charset", b"utf-8").decode("latin-1")
        try:
            self._charset = codecs.lookup(charset).name
        except LookupError:
            self._charset = "utf-8"
        self._writer = writer
        self._max_upload = max_upload_bytes
        self._idle_timeout = idle_timeout
        self._received = 0
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""
        self._file_head = b""
        self._parts = 0
        self._names = fields
        self._repeatable = repeatable
        self._max_parts = max_parts if max_parts is not None else len(fields)
        self.fields: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.file: FilePart | None = None
        self._sniffed: AudioFormat | None = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
            },
        )

    async def read(self, body: AsyncIterator[bytes]) -> None:
        try:
            async with contextlib.aclosing(until_idle(body, self._idle_timeout)) as chunks:
                async for chunk in chunks:
                    self._received += len(chunk)
                    if self._received > self._max_upload + _MAX_FORM_OVERHEAD:
                        raise PayloadTooLarge(
                            f"the request is larger than the upload limit of "
                            f"{self._max_upload} bytes"
                        )
                    self._parser.write(chunk)
                    if self._writer.needs_flush:
                        await self._writer.flush()
                    if self._listener is not None:
                        await self._listener.drained()
            self._parser.finalize()
        except FormParserError as exc:
            raise InvalidRequest(f"malformed multipart body: {exc}") from None
        if self._part.is_file and self.file is None:
            raise InvalidRequest(
                "the multipart body ended in the middle of the file",
                errors=[{"field": "file", "message": "cut short", "type": "incomplete"}],
            )
        if self._parts and self._parser.state != MultipartState.END:
            # The part in progress was never finished: taking the fields without it
            # would make a job with a setting the client did send left out.
            where = f"the {self._part.name!r} part" if self._part.name else "a part's headers"
            raise InvalidRequest(
                f"the multipart body ended before its closing boundary, in {where}",
                errors=[{"field": self._part.name, "message": "cut short", "type": "incomplete"}],
            )

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self._max_parts:
            raise InvalidRequest(f"too many form fields: at most {self._max_parts} are taken")
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > 8192:
            raise InvalidRequest("a multipart part header is too long")

    def _on_header_end(self) -> None:
        self._part.headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise InvalidRequest("a multipart part has no Content-Disposition name")
        self._part.name = name.decode(self._charset, errors="replace")
        if self._part.name not in self._names:
            allowed = ", ".join(sorted(self._names))
            raise InvalidRequest(
                f"unknown form field {self._part.name!r}; the fields are: {allowed}",
                errors=[{"field": self._part.name, "message": "unknown field", "type": "extra"}],
            )
        if self._part.name in self.fields or (self._part.name == "file" and self.file):
            raise InvalidRequest(
                f"form field {self._part.name!r} is given twice",
                errors=[{"field": self._part.name, "message": "given twice", "type": "repeated"}],
            )
        if self._part.name == "file":
            self._part.is_file = True
            filename = options.get(b"filename")
            if filename is not None:
                self._part.filename = filename.decode(self._charset, errors="replace")[:255]

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if not self._part.is_file:
            if len(self._part.data) + len(chunk) > _MAX_FIELD_BYTES:
                raise InvalidRequest(
                    f"form field {self._part.name!r} is over 64 KiB",
                    errors=[{"field": self._part.name, "message": "too long", "type": "too_long"}],
                )
            self._part.data.extend(chunk)
            return
        if self._writer.size + len(chunk) > self._max_upload:
            raise PayloadTooLarge(f"the file is larger than the limit of {self._max_upload} bytes")
        self._writer.write(chunk)
        if len(self._file_head) < HEAD_BYTES:
            self._file_head += chunk[: HEAD_BYTES - len(self._file_head)]
        if self._sniffed is None and len(self._writer.head) >= min(SNIFF_BYTES, 12):
            self._sniff()
        if self._listener is not None:
            if self.file_offset is None:  # ``data`` is the chunk the parser was given
                self.file_offset = self._received - len(data) + start
            self._listener.file_data(self, chunk)

    @property
    def sniffed_format(self) -> AudioFormat | None:
        """The file's format, once its first bytes have shown it."""
        return self._sniffed

    @property
    def filename(self) -> str | None:
        """The file part's name, while it is read."""
        return self._part.filename if self._part.is_file else None

    def _sniff(self) -> None:
        sniffed = sniff_format(self._writer.head)
        if sniffed is None:
            raise UnsupportedMediaType(
                "the file is not audio in a known format "
                "(wav, mp3, flac, ogg, webm, mp4/m4a, aiff, amr); "
                "its content was checked, not its name"
            )
        self._sniffed = sniffed

    def _refuse_if_truncated(self) -> None:
        """A WAV shorter than its header says, or one with no samples at all."""
        problem = wav_truncation(self._file_head, self._writer.size)
        if problem is not None:
            raise InvalidRequest(
                f"the WAV file is truncated: {problem}",
                errors=[{"field": "file", "message": "truncated WAV", "type": "truncated"}],
            )
        problem = wav_without_samples(self._file_head, self._writer.size)
        if problem is not None:
            raise InvalidRequest(
                f"the WAV file has no audio samples: {problem}",
                errors=[{"field": "file", "message": "no audio samples", "type": "no_samples"}],
            )

    def _on_part_end(self) -> None:
        part = self._part
        if not part.is_file:
            try:
                value = part.data.decode(self._charset)
            except UnicodeDecodeError as exc:
                # Replacing the bytes would store (and echo back) what was never sent.
                raise InvalidRequest(
                    f"form field {part.name!r} is not valid {self._charset} text "
                    f"(byte {exc.start})",
                    errors=[{"field": part.name, "message": "not valid text", "type": "unicode"}],
                ) from None
            if part.name in self._repeatable:
                self.lists.setdefault(part.name, []).append(value)
            else:
                self.fields[part.name] = value
            return
        if self._writer.size == 0:
            raise InvalidRequest(
                "the file is empty",
                errors=[{"field": "file", "message": "empty file", "type": "empty"}],
            )
        if self._sniffed is None:
            self._sniff()
        assert self._sniffed is not None
        if self._sniffed == "wav":
            self._refuse_if_truncated()
        content_type = part.headers.get(b"content-type")
        self.file = FilePart(
            filename=part.filename,
            content_type=content_type.decode("latin-1")[:100] if content_type else None,
            format=self._sniffed,
            seconds=wav_seconds(self._file_head, self._writer.size)
            if self._sniffed == "wav"
            else None,
            head=self._file_head,
        )
        if self._listener is not None:
            self._listener.file_ended(self._writer.size)


async def until_idle(
    body: AsyncIterator[bytes], seconds: float | None, what: str = "the upload"
) -> AsyncGenerator[bytes, None]:
    """The body's chunks, until the client sends nothing for ``seconds`` (then 408)."""
    chunks = aiter(body)
    while True:
        try:
            async with asyncio.timeout(seconds):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(
                f"{what} stalled: nothing arrived for {seconds:g} seconds"
            ) from None
        yield chunk
