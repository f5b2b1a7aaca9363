"""A vendor upload sent while the client's upload still arrives, but for its last bytes.

A synchronous provider's request is only made after the client's upload is
whole: with the file stored, then sent, a 20 MiB upload crossed the machine
twice, one after the other. ``EarlyUpload`` starts the vendor's POST when
the file part begins, forwards each chunk as it is received, and holds back
the closing boundary until ``release``: the job row and its submit ledger
entry are written by then, so no complete request (the one a vendor could
act on and bill) reaches the vendor before the gateway has recorded it. A
request given up before that (the upload turned out bad, the client left,
the predicted length was wrong) is cut off mid-body, and the vendor never
sees it whole.

The body's length must be told up front (some servers take no chunked
bodies), so the file's length is predicted from the client's
``Content-Length``, with the file as the last part; a file that ends
elsewhere, or longer, gives the early request up, and the provider uploads
from storage as it always did.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

# Chunks received but not yet taken by the vendor's connection: past this the
# client's upload waits (its bytes are on disk too, but the memory is bounded)...
MAX_QUEUED_BYTES = 1024 * 1024
# ... for so long at most: a vendor that reads slower than the client sends is
# left behind, and the upload goes from storage once it is whole.
STALL_SECONDS = 2.0


class _GivenUp(Exception):
    """Raised inside the request body: the connection is closed before its end."""


@dataclass(frozen=True)
class UploadForm:
    """What the vendor's multipart body holds apart from the file's bytes."""

    fields: tuple[tuple[str, str], ...]
    filename: str
    content_type: str


def multipart_frame(form: UploadForm) -> tuple[bytes, bytes, str]:
    """(the body up to the file's bytes, the closing boundary, the Content-Type),
    encoded by httpx itself, so that the body is the one the normal path sends."""
    request = httpx.Request(
        "POST",
        "http://frame.invalid/",
        data=multi_dict(form.fields),
        files={"file": (form.filename, b"", form.content_type)},
    )
    body = request.read()
    content_type = request.headers["content-type"]
    boundary = content_type.split("boundary=", 1)[1].encode()
    closing = b"\r\n--" + boundary + b"--\r\n"
    assert body.endswith(closing)
    return body[: -len(closing)], closing, content_type


def multi_dict(fields: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    """``fields`` as httpx's ``data=``, which sends a list value once per item."""
    out: dict[str, str | list[str]] = {}
    for key, value in fields:
        existing = out.get(key)
        if existing is None:
            out[key] = value
        else:
            out[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
    return out


Send = Callable[[AsyncIterator[bytes], int, str], Awaitable[httpx.Response]]


class EarlyUpload:
    """One vendor request whose file part is fed as the client's upload arrives.

    ``send(body, content_length, content_type)`` makes the request
    (the provider's own call, with its URL, key, error mapping and metrics).
    """

    def __init__(self, form: UploadForm, file_bytes: int, send: Send) -> None:
        self.form = form
        self.file_bytes = file_bytes  # predicted
        self._preamble, self._closing, content_type = multipart_frame(form)
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0
        self._forwarded = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._released = asyncio.Event()
        self._given_up = False
        self._ended = False  # the whole file fed, as predicted
        length = len(self._preamble) + file_bytes + len(self._closing)
        self._request = asyncio.ensure_future(send(self._body(), length, content_type))

    @property
    def usable(self) -> bool:
        """The whole file fed as predicted, the request waiting for its last bytes."""
        return self._ended and not self._given_up and not self._request.done()

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the file (called by the form reader, as they arrive)."""
        if self._given_up:
            return
        if self._forwarded + len(chunk) > self.file_bytes:
            self.give_up()  # longer than predicted: this body would be wrong
            return
        self._forwarded += len(chunk)
        self._queued += len(chunk)
        self._chunks.put_nowait(chunk)
        if self._queued > MAX_QUEUED_BYTES:
            self._drained.clear()

    async def drained(self) -> None:
        """Returns once the vendor's connection has taken most of what was fed, or
        (the request given up) once it has not for ``STALL_SECONDS``."""
        if self._drained.is_set():
            return
        try:
            await asyncio.wait_for(self._drained.wait(), STALL_SECONDS)
        except TimeoutError:
            self.give_up()

    def end(self, file_bytes: int) -> None:
        """The file part is over, ``file_bytes`` long: given up unless as predicted."""
        if file_bytes != self.file_bytes or self._forwarded != file_bytes:
            self.give_up()
        elif not self._given_up:
            self._ended = True
            self._chunks.put_nowait(None)

    async def release(self) -> httpx.Response | None:
        """Send the closing boundary and wait for the vendor's answer (or its error,
        raised as the provider's call raises it). None: the request was given up or
        ended before this (the vendor answered early, the connection failed); nothing
        complete was sent, and the caller uploads the normal way."""
        if not self.usable:
            self.give_up()
            return None
        self._released.set()
        return await self._request

    def give_up(self) -> None:
        """Cut the request off before its end (idempotent)."""
        self._given_up = True
        self._drained.set()
        self._chunks.put_nowait(None)
        if not self._released.is_set():
            self._request.cancel()
        # An answer that came before the give-up is not wanted: no warning about it.
        self._request.add_done_callback(_consume)

    async def _body(self) -> AsyncIterator[bytes]:
        yield self._preamble
        while True:
            chunk = await self._chunks.get()
            if chunk is None:
                break
            self._queued -= len(chunk)
            if self._queued <= MAX_QUEUED_BYTES // 2:
                self._drained.set()
            yield chunk
        if self._given_up:
            raise _GivenUp()
        await self._released.wait()
        yield self._closing


def _consume(request: asyncio.Future[httpx.Response]) -> None:
    if not request.cancelled():
        with contextlib.suppress(BaseException):
            request.result()
