"""httpx's API on aiohttp's connections: the wire under the gateway's one HTTP client.

Every vendor call, source download and webhook goes through one
``httpx.AsyncClient``, and the adapters (and their tests, on
``httpx.MockTransport``) keep its API. Only the transport changes: httpx's own
(httpcore on anyio, pure Python) cost more CPU than the rest of a vendor call
together. Measured with one client against a local upstream, interleaved
request by request: a small POST 2.30 -> 0.97 ms of CPU (0.96 ms to the
answer instead of 2.16), a 1 MiB multipart upload 3.75 -> 1.97 ms (3.45 ms to
the answer instead of 4.58).

What httpx's transport does and this one keeps: its trust store for TLS
(certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), its timeouts (connect, read
between chunks once the request is sent, write: the request body stalling for
that long, pool), errors as httpx's own (``httpx.TransportError`` and its
subclasses; nothing of aiohttp's leaks out), no cookies, no decompression
(httpx decodes), no redirects (httpx follows them, or not), and each new
connection resolves its host again (no DNS cache). For the URLs clients give
us, ``PublicAddressResolver`` refuses, as it resolves, a host with an address
that is not public (``httpx.ConnectError`` caused by ``app.urls.AddressRefused``).

Error map, most specific first::

    aiohttp.ConnectionTimeoutError   -> httpx.ConnectTimeout (also: no pooled connection in time)
    aiohttp.ServerTimeoutError       -> httpx.ReadTimeout
    the request body stalled         -> httpx.WriteTimeout
    aiohttp.ClientConnectorError     -> httpx.ConnectError (DNS included)
    aiohttp.ServerDisconnectedError  -> httpx.RemoteProtocolError (closed before an answer)
    aiohttp.ClientPayloadError       -> httpx.RemoteProtocolError (a body cut short)
    aiohttp.ClientResponseError      -> httpx.RemoteProtocolError (not HTTP)
    aiohttp.InvalidURL, non-HTTP URL -> httpx.UnsupportedProtocol
    any other aiohttp.ClientError    -> httpx.ReadError
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from app.urls import AddressRefused, is_public

_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ReadError),
)


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                # The exception's name only: aiohttp's text may carry the URL.
                raise ours(type(exc).__name__, request=request) from exc
        raise  # pragma: no cover (ClientError is the last entry)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class PublicAddressResolver(AbstractResolver):
    """aiohttp's own resolver, refusing a host with any address that is not
    public: the connection goes to an address that was just checked, whatever
    the name's DNS answered a moment before (``app.urls.check_url_target``)."""

    def __init__(self) -> None:
        self._resolver = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._resolver.resolve(host, port, family)
        if not all(is_public(address["host"]) for address in addresses):
            raise AddressRefused(host)
        return addresses

    async def close(self) -> None:
        await self._resolver.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp connection pool for an ``httpx.AsyncClient(transport=...)``.
    ``resolver`` makes the resolver of each pool (aiohttp's own if None)."""

    def __init__(
        self, limits: httpx.Limits, resolver: Callable[[], AbstractResolver] | None = None
    ) -> None:
        self._limits = limits
        self._resolver = resolver
        # httpx's trust store (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set), as before.
        self._ssl = httpx.create_ssl_context(verify=True, trust_env=True)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_for_this_loop(self) -> aiohttp.ClientSession:
        # Made on first use, inside the loop its connections belong to; a client
        # built for one loop and used in another gets a pool of its own there.
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=self._limits.keepalive_expiry or 5.0,
                use_dns_cache=False,
                resolver=self._resolver() if self._resolver else None,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                auto_decompress=False,  # httpx decodes
                skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        headers = [(k, v) for k, v in request.headers.multi_items()]
        try:
            content: bytes | None = request.content
        except httpx.RequestNotRead:
            content = None
            # Streamed with no length: aiohttp does the chunking, and says so itself.
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        source: AsyncIterable[bytes] | None
        if content is not None:
            source = _one_chunk(content) if content else None
        elif isinstance(request.stream, httpx.AsyncByteStream):
            source = request.stream
        else:  # a synchronous body on the async client: httpx refuses it too
            raise RuntimeError("an async transport needs an async request body")
        stall = asyncio.timeout(None)
        try:
            async with stall:
                body = _watched(source, stall, timeouts.get("write")) if source else None
                with _as_httpx_errors(request):
                    response = await self._session_for_this_loop().request(
                        request.method,
                        str(request.url),
                        headers=headers,
                        data=body,
                        allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(
                            total=None,
                            connect=timeouts.get("pool"),
                            sock_connect=timeouts.get("connect"),
                            sock_read=timeouts.get("read"),
                        ),
                    )
        except TimeoutError:
            if stall.expired():
                raise httpx.WriteTimeout("the request body stalled", request=request) from None
            raise httpx.ReadTimeout("TimeoutError", request=request) from None
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_ResponseStream(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            with contextlib.suppress(RuntimeError):  # its loop is gone: nothing left open
                await self._session.close()


async def _one_chunk(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _watched(
    source: AsyncIterable[bytes], stall: asyncio.Timeout, seconds: float | None
) -> AsyncIterator[bytes]:
    """The body, each chunk given ``seconds`` to be written (aiohttp asks for the
    next only once the last is in the socket's buffer), as httpx's write timeout."""
    loop = asyncio.get_running_loop()
    async for chunk in source:
        if seconds is not None:
            stall.reschedule(loop.time() + seconds)
        yield chunk
    stall.reschedule(None)
