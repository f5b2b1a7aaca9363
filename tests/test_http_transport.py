"""httpx on aiohttp (app/http_transport.py) against a raw HTTP server on 127.0.0.1:
what goes out is what httpx built, what comes back is httpx's, and every
failure is one of httpx's errors, each timeout included."""

from __future__ import annotations

import asyncio
import gzip
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import trustme

from app.http_transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A server on 127.0.0.1 that runs ``handler`` on each connection, and counts them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """The request line, its headers (lower-cased names) and its whole body."""
    head = await reader.readuntil(b"\r\n\r\n")
    line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for raw in lines:
        name, _, value = raw.partition(b":")
        assert name.lower() not in headers, f"header {name!r} sent twice"
        headers[name.lower()] = value.strip()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
    else:
        body = b""
    return line, headers, body


def client(**timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=AiohttpTransport(httpx.Limits(max_connections=10)),
        timeout=httpx.Timeout(5.0, **timeouts),
    )


async def test_what_goes_out_and_comes_back_is_httpx_s():
    seen: list[tuple[bytes, dict[bytes, bytes], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            body = gzip.compress(b"hello " * 1000)
            writer.write(
                b"HTTP/1.1 201 Made It\r\ncontent-encoding: gzip\r\nx-twice: a\r\nx-twice: b\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    server = RawServer(handler)
    audio = os.urandom(3 * 1024 * 1024)
    async with server as url, client() as http:
        response = await http.post(
            f"{url}/v1/x?q=1",
            headers={"Authorization": "Bearer k"},
            data={"model": "m"},
            files={"file": ("a.wav", audio, "audio/wav")},
        )
        again = await http.get(f"{url}/again")
    assert response.status_code == 201
    assert response.reason_phrase == "Made It"
    assert response.text == "hello " * 1000  # decoded by httpx, not by aiohttp
    assert response.headers.get_list("x-twice") == ["a", "b"]
    assert again.status_code == 201
    assert server.connections == 1  # the connection was kept and reused

    (line, headers, body), (get_line, get_headers, get_body) = seen
    assert line == b"POST /v1/x?q=1 HTTP/1.1"
    assert headers[b"authorization"] == b"Bearer k"
    assert headers[b"content-type"].startswith(b"multipart/form-data; boundary=")
    assert headers[b"user-agent"].startswith(b"python-httpx/")  # httpx's, not aiohttp's
    assert int(headers[b"content-length"]) == len(body)  # its length, not chunked
    assert b"transfer-encoding" not in headers
    assert audio in body and b'name="model"\r\n\r\nm\r\n' in body
    assert get_line == b"GET /again HTTP/1.1"
    assert b"content-length" not in get_headers and b"content-type" not in get_headers
    assert get_body == b""


async def test_a_body_of_unknown_length_goes_chunked():
    seen: list[tuple[bytes, dict[bytes, bytes], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            yield part

    async with RawServer(handler) as url, client() as http:
        response = await http.post(url, content=parts())
    assert response.status_code == 204
    [(_, headers, body)] = seen
    assert headers[b"transfer-encoding"] == b"chunked"
    assert body == b"one,two,three"


async def test_a_refused_connection_is_a_connect_error():
    async with RawServer(lambda r, w: asyncio.sleep(0)) as url:
        pass  # closed again: nothing listens on that port now
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


async def test_no_answer_is_a_read_timeout():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async with RawServer(handler) as url, client(read=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url, content=b"x")


async def test_a_peer_that_stops_reading_the_body_is_a_write_timeout():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)  # reads nothing: the socket buffers fill, then the writes wait

    async def endless() -> AsyncIterator[bytes]:
        chunk = b"z" * 1024 * 1024
        for _ in range(512):
            yield chunk

    async with RawServer(handler) as url, client(write=0.5) as http:
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.WriteTimeout):
            await http.post(url, content=endless())
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_slow_but_steady_upload_is_not_cut_off():
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, _, body = await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%d" % (len(str(len(body))), len(body))
        )
        await writer.drain()

    async def steady() -> AsyncIterator[bytes]:
        for _ in range(8):
            await asyncio.sleep(0.1)  # 0.8 s in all, each part well within the timeout
            yield b"s" * 1000

    async with RawServer(handler) as url, client(write=0.5, read=0.5) as http:
        response = await http.post(url, content=steady())
    assert response.text == "8000"


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without an answer
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..",  # a body cut short
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",  # not HTTP
    ],
    ids=["no-answer", "body-cut-short", "not-http"],
)
async def test_a_broken_answer_is_a_protocol_error(answer):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()  # then the connection closes

    async with RawServer(handler) as url, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(url)


async def test_a_streamed_answer_arrives_as_it_is_sent():
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")
        await writer.drain()

    async with RawServer(handler) as url, client() as http, http.stream("GET", url) as response:
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"first"  # before the rest was sent
        release.set()
        assert b"".join([chunk async for chunk in chunks]) == b"last"


async def test_tls_trusts_what_httpx_trusts(monkeypatch, tmp_path):
    # An unknown CA is refused; the same CA named by SSL_CERT_FILE (httpx's own
    # setting for its trust store) is taken.
    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ssl)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure")
        await writer.drain()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ssl)
    url = f"https://localhost:{server.sockets[0].getsockname()[1]}/"
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(url)
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        async with client() as http:
            response = await http.get(url)
        assert response.text == "secure"
    finally:
        server.close()
