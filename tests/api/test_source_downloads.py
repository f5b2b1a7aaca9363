"""Downloading a job's source_url: every redirect is checked, and the size and
the total time are capped. Real sockets on loopback where the address allows
it; a public first hop cannot be reached from here, so the redirect cases give
httpx a transport that answers as the internet would."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.context import GatewayContext
from app.http_transport import AiohttpTransport, PublicAddressResolver
from app.jobs.sources import download_source
from app.providers.base import PermanentProviderError, RetryableProviderError
from app.storage import LocalStorage
from app.urls import refused_address
from tests.conftest import SPEECH_WAV
from tests.support.gateway import gateway_settings
from tests.support.static_server import StaticServer
from tests.support.trickle import TricklingServer

PUBLIC = "http://93.184.216.34/speech.wav"  # an address literal: no DNS needed


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "blobs")


@pytest.fixture
def trickle() -> Iterator[TricklingServer]:
    server = TricklingServer(SPEECH_WAV.read_bytes())
    yield server
    server.close()


async def _download(
    http: httpx.AsyncClient,
    storage: LocalStorage,
    url: str,
    *,
    max_bytes: int = 10**8,
    max_seconds: float = 30,
    allow_private: bool = False,
) -> str:
    writer = storage.writer("job_1/audio")
    try:
        fmt = await download_source(
            http,
            url,
            writer,
            max_bytes=max_bytes,
            allow_private=allow_private,
            max_seconds=max_seconds,
        )
        await writer.commit()
        return fmt
    except BaseException:
        writer.abort()
        raise


def _redirecting(hops: dict[str, str], final: bytes) -> httpx.MockTransport:
    """Each URL in ``hops`` answers 302 to its value; any other URL the audio."""

    def answer(request: httpx.Request) -> httpx.Response:
        target = hops.get(str(request.url))
        if target is not None:
            return httpx.Response(302, headers={"location": target})
        return httpx.Response(200, content=final, headers={"content-type": "audio/wav"})

    return httpx.MockTransport(answer)


async def test_a_source_that_trickles_is_cut_off_by_the_total_time_cap(
    storage: LocalStorage, trickle: TricklingServer
) -> None:
    async with httpx.AsyncClient() as http:
        began = time.monotonic()
        with pytest.raises(PermanentProviderError) as caught:
            await _download(http, storage, trickle.url, max_seconds=1.0, allow_private=True)
    assert time.monotonic() - began < 3  # each byte came well within any read timeout
    assert caught.value.code == "source_too_slow"
    assert "1 s" in caught.value.message
    assert not list(storage.root.rglob("audio"))  # nothing kept


@pytest.mark.parametrize(
    "private",
    ["http://169.254.169.254/latest/meta-data", "http://127.0.0.1:9/a.wav", "http://10.0.0.7/a"],
)
async def test_a_redirect_to_a_private_address_is_refused_before_it_is_requested(
    storage: LocalStorage, private: str
) -> None:
    requested: list[str] = []
    transport = _redirecting({PUBLIC: private}, SPEECH_WAV.read_bytes())

    async def record(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return transport.handle_request(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as http:
        with pytest.raises(PermanentProviderError) as caught:
            await _download(http, storage, PUBLIC)
    assert caught.value.code == "source_refused"
    assert requested == [PUBLIC]  # the private hop was never asked


async def test_a_public_redirect_is_followed(storage: LocalStorage) -> None:
    second = "http://93.184.216.35/moved.wav"
    transport = _redirecting({PUBLIC: second}, SPEECH_WAV.read_bytes())
    async with httpx.AsyncClient(transport=transport) as http:
        assert await _download(http, storage, PUBLIC) == "wav"


async def test_too_many_redirects_fail_the_job(storage: LocalStorage) -> None:
    hops = {f"http://93.184.216.{i}/a.wav": f"http://93.184.216.{i + 1}/a.wav" for i in range(9)}
    async with httpx.AsyncClient(transport=_redirecting(hops, b"")) as http:
        with pytest.raises(PermanentProviderError) as caught:
            await _download(http, storage, "http://93.184.216.0/a.wav")
    assert caught.value.code == "source_unavailable"
    assert "redirects too many times" in caught.value.message


@pytest.mark.parametrize("declared", [True, False])
async def test_a_source_larger_than_the_cap_is_refused(
    storage: LocalStorage, declared: bool
) -> None:
    body = SPEECH_WAV.read_bytes()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield body[:50000]
        yield body[50000:]

    def answer(request: httpx.Request) -> httpx.Response:
        if declared:
            return httpx.Response(200, content=body)
        return httpx.Response(200, content=chunks())

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(PermanentProviderError) as caught:
            await _download(http, storage, PUBLIC, max_bytes=60000)
    assert caught.value.code == "source_too_large"
    assert not list(storage.root.rglob("audio"))


async def _check_passes(url: str, *, allow_private: bool) -> None:
    """Stands in for the check before a request, seeing the name's public address."""


@pytest.mark.parametrize("resolver", [PublicAddressResolver, None], ids=["ours", "aiohttp's"])
async def test_a_name_that_turns_private_at_connection_time_is_not_connected_to(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch, resolver: type | None
) -> None:
    """DNS rebinding: the name was public when it was checked and is loopback
    when the connection resolves it again. The client for clients' URLs (with
    ``PublicAddressResolver``) refuses it without connecting; one without it
    (the vendors') fetches it, which shows the check before is not what stops it."""
    monkeypatch.setattr("app.jobs.sources.check_url_target", _check_passes)
    server = StaticServer(SPEECH_WAV.read_bytes())
    url = server.url.replace("127.0.0.1", "localhost")
    transport = AiohttpTransport(httpx.Limits(), resolver)
    try:
        async with httpx.AsyncClient(transport=transport) as http:
            if resolver is None:
                assert await _download(http, storage, url) == "wav"
                assert server.requests == 1
                return
            with pytest.raises(PermanentProviderError) as caught:
                await _download(http, storage, url)
    finally:
        server.close()
    assert caught.value.code == "source_refused"
    assert "'localhost' resolves to a loopback, private or link-local address" in str(
        caught.value.message
    )
    assert server.requests == 0


@pytest.mark.parametrize("allow_private", [False, True])
async def test_the_gateway_reaches_clients_urls_at_public_addresses_only(
    tmp_path: Path, allow_private: bool
) -> None:
    """The gateway's client for source_url and callback_url connects to no
    private address unless ALLOW_PRIVATE_URLS; its client for vendors (whose
    addresses the operator sets, a local one included) connects anywhere."""
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", tmp_path, allow_private_urls=allow_private
    )
    ctx = GatewayContext.build(settings)
    server = StaticServer(SPEECH_WAV.read_bytes())
    url = server.url.replace("127.0.0.1", "localhost")
    try:
        assert (await ctx.http.get(url)).status_code == 200
        if allow_private:
            assert (await ctx.client_urls_http.get(url)).status_code == 200
        else:
            with pytest.raises(httpx.ConnectError) as caught:
                await ctx.client_urls_http.get(url)
            assert refused_address(caught.value) is not None
    finally:
        server.close()
        await ctx.aclose()
    assert server.requests == (2 if allow_private else 1)


@pytest.mark.parametrize(
    ("status", "retried"),
    [(503, True), (500, True), (429, True), (408, True), (501, False), (505, False), (404, False)],
)
async def test_a_source_error_is_retried_only_when_waiting_can_cure_it(
    storage: LocalStorage, status: int, retried: bool
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises((PermanentProviderError, RetryableProviderError)) as caught:
            await _download(http, storage, PUBLIC)
    assert isinstance(caught.value, RetryableProviderError) is retried
    assert f"answered {status}" in caught.value.message
    if not retried:
        assert isinstance(caught.value, PermanentProviderError)
        assert caught.value.code == "source_unavailable"
