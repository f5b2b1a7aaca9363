"""uvicorn's HTTP protocol with limits on how a request's headers arrive.

uvicorn times out idle keep-alive connections, but not a client that opens a
connection and sends its request line and headers a byte at a time
(slowloris), and its httptools parser takes headers of any size. Each such
client would hold a socket and memory for as long as it likes. Here a request
has ``header_timeout`` seconds, from the connection or from its first byte, to
finish its headers (else 408), and ``max_header_bytes`` for its URL and
headers together (else 431); a request the parser cannot read is a 400. All
three answers are problem+json and close the connection. The body has its own
idle timeout (UPLOAD_IDLE_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import problem_type

_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}
_SLUGS = {400: "bad-request", 408: "request-timeout", 431: "headers-too-large"}
_NOT_HTTP = (
    "the request is not valid HTTP/1.1: a malformed request line or header, a control "
    "character in a header, or a bad Content-Length or chunked encoding"
)


class _HeadersTooLarge(Exception):
    pass


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._headers_deadline is None:  # the next request on a kept-alive connection
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # The parser reports our own refusal (raised from a callback) as a bad request;
        # anything else it could not parse gets problem+json too, not uvicorn's text.
        self._refuse(*(self._refusal or (400, _NOT_HTTP)))

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            limit = self.max_header_bytes
            self._refusal = (431, f"the request's URL and headers exceed {limit} bytes")
            raise _HeadersTooLarge

    def _arm(self) -> None:
        self._headers_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._headers_deadline is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _too_slow(self) -> None:
        self._headers_deadline = None
        self._refuse(408, f"the request's headers did not arrive within {self.header_timeout:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        reason = _REASONS[status]
        body = json.dumps(
            {
                "type": problem_type(_SLUGS[status]),
                "title": reason,
                "status": status,
                "detail": detail,
            }
        ).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()


def guarded_protocol(header_timeout: float, max_header_bytes: int) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's ``http=`` with these limits."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )
