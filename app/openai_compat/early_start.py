"""The OpenAI route's side of an early vendor upload (``app.providers.early_upload``).

Listens to the form reader: when the file part begins, with the fields read
before it naming a provider that can upload early, it starts that upload,
with the file's length predicted as the last part of a body of the client's
``Content-Length``; then it forwards each chunk. Anything that does not fit
(no length, fields after the file, a provider that uploads only from storage)
simply starts nothing: the job goes the usual way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from app.audio.sniff import MEDIA_TYPES
from app.jobs.form import JobFormReader
from app.providers.base import Capabilities, SubmitRequest
from app.providers.early_upload import EarlyUpload

# Bytes of the file held while its format is not known yet (a few tiny chunks).
_MAX_HELD_BYTES = 64 * 1024


@runtime_checkable
class UploadsEarly(Protocol):
    """A provider that can start its upload while the client's still arrives."""

    capabilities: Capabilities

    @property
    def early_uploads(self) -> int:
        """How many are under way."""
        ...

    def start_early(self, request: SubmitRequest, file_bytes: int) -> EarlyUpload: ...

    def drop_early(self, job_id: str) -> None: ...


@dataclass(frozen=True)
class Planned:
    """What the form's fields so far say the job's submit will be."""

    provider: UploadsEarly
    language: str | None
    options: BaseModel


Plan = Callable[[JobFormReader], Planned | None]


class EarlyStart:
    """A ``FileListener`` for one request. ``plan``: what the form's fields so far
    say the submit will be, or None when they are not all there, not valid, or
    the provider cannot take an early upload now."""

    def __init__(self, job_id: str, content_length: int | None, plan: Plan) -> None:
        self._job_id = job_id
        self._content_length = content_length
        self._plan = plan
        self._decided = content_length is None
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._provider: UploadsEarly | None = None
        self._upload: EarlyUpload | None = None

    def file_data(self, reader: JobFormReader, chunk: bytes) -> None:
        if self._upload is not None:
            self._upload.feed(chunk)
            return
        if self._decided:
            return
        self._held.append(chunk)
        self._held_bytes += len(chunk)
        if reader.sniffed_format is None and self._held_bytes <= _MAX_HELD_BYTES:
            return  # the format decides the part's content type
        self._decided = True
        self._upload = self._start(reader)
        held, self._held = self._held, []
        for piece in held:
            if self._upload is not None:
                self._upload.feed(piece)

    def file_ended(self, size: int) -> None:
        self._decided = True
        self._held = []
        if self._upload is not None:
            self._upload.end(size)

    async def drained(self) -> None:
        if self._upload is not None:
            await self._upload.drained()

    def abandon(self) -> None:
        """The request is over: an upload its submit did not take is cut off."""
        self._decided = True
        if self._provider is not None:
            self._provider.drop_early(self._job_id)

    def _start(self, reader: JobFormReader) -> EarlyUpload | None:
        fmt, offset = reader.sniffed_format, reader.file_offset
        if fmt is None or offset is None or self._content_length is None:
            return None
        planned = self._plan(reader)
        if planned is None or fmt not in planned.provider.capabilities.formats:
            return None
        provider = planned.provider
        closing = len(b"\r\n--" + reader.boundary + b"--\r\n")
        file_bytes = self._content_length - offset - closing
        if file_bytes <= 0:
            return None
        request = SubmitRequest(
            job_id=self._job_id,
            audio_path=None,
            audio_format=fmt,
            filename=reader.filename,
            content_type=MEDIA_TYPES.get(fmt),
            source_url=None,
            language=planned.language,
            options=planned.options,
        )
        self._provider = provider
        return provider.start_early(request, file_bytes)
