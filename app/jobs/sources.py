"""Fetching a job's ``source_url`` into storage, for providers that need the bytes."""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin

import httpx

from app.audio.sniff import sniff_format
from app.providers.base import AudioFormat, PermanentProviderError, RetryableProviderError
from app.queue.backoff import parse_retry_after
from app.storage import BlobWriter
from app.urls import UrlRefused, check_url_target, refused_address

_MAX_REDIRECTS = 5


class SourceFailing(RetryableProviderError):
    """The source_url failed in a way worth another try (a 5xx, a download cut
    off): when the tries run out, the job fails blaming the source."""

    code = "source_unavailable"


# A source nothing arrived from is tried this many times, 0.5 s apart and doubling.
_CONNECT_TRIES = 3
_CONNECT_BACKOFF_SECONDS = 0.5


async def download_source(
    http: httpx.AsyncClient,
    url: str,
    writer: BlobWriter,
    *,
    max_bytes: int,
    allow_private: bool,
    max_seconds: float,
) -> AudioFormat:
    """Stream ``url`` into ``writer``; every hop is checked before it is requested.
    The whole download is bounded by ``max_seconds`` (a source that trickles its
    bytes would otherwise pass every per-read timeout)."""
    try:
        async with asyncio.timeout(max_seconds):
            return await _download(http, url, writer, max_bytes, allow_private)
    except TimeoutError:
        raise PermanentProviderError(
            "source_too_slow", f"source_url did not finish downloading within {max_seconds:g} s"
        ) from None


async def _download(
    http: httpx.AsyncClient, url: str, writer: BlobWriter, max_bytes: int, allow_private: bool
) -> AudioFormat:
    for _ in range(_MAX_REDIRECTS + 1):
        try:
            await check_url_target(url, allow_private=allow_private)
        except UrlRefused as exc:
            raise PermanentProviderError("source_refused", f"source_url {exc}") from None
        redirect = await _get(http, url, writer, max_bytes)
        if redirect is not None:
            url = redirect
            continue
        fmt = sniff_format(writer.head)
        if fmt is None:
            raise PermanentProviderError(
                "unsupported_media", "the content at source_url is not audio in a known format"
            )
        return fmt
    raise PermanentProviderError("source_unavailable", "source_url redirects too many times")


async def _get(http: httpx.AsyncClient, url: str, writer: BlobWriter, max_bytes: int) -> str | None:
    """One hop into ``writer``: the redirect's target, or None once the body is in.

    A source that cannot be reached (refused, reset, no answer) is tried again a
    few times here, as it may be a moment's trouble; then the job fails blaming
    the source (``source_unavailable``), not the provider, which was never asked.
    """
    for attempt in range(1, _CONNECT_TRIES + 1):
        try:
            return await _get_once(http, url, writer, max_bytes)
        except httpx.TransportError as exc:
            if refused := refused_address(exc):  # the name now resolves elsewhere
                raise PermanentProviderError("source_refused", f"source_url {refused}") from None
            if writer.size:  # broke off mid-body: the task is retried, with a fresh file
                raise SourceFailing(f"fetching source_url failed: {type(exc).__name__}") from None
            if attempt == _CONNECT_TRIES:
                raise PermanentProviderError(
                    "source_unavailable",
                    f"source_url could not be reached ({type(exc).__name__}; "
                    f"tried {_CONNECT_TRIES} times)",
                    provider_detail={"error": type(exc).__name__},
                    retryable=True,
                ) from None
        await asyncio.sleep(_CONNECT_BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


async def _get_once(
    http: httpx.AsyncClient, url: str, writer: BlobWriter, max_bytes: int
) -> str | None:
    async with http.stream("GET", url, timeout=httpx.Timeout(60.0, connect=10.0)) as resp:
        if resp.is_redirect and "location" in resp.headers:
            return urljoin(url, resp.headers["location"])
        _raise_for_status(resp)
        declared = int(resp.headers.get("content-length") or 0)
        if declared > max_bytes:
            raise _too_large(max_bytes)
        async for chunk in resp.aiter_bytes():
            if writer.size + len(chunk) > max_bytes:
                raise _too_large(max_bytes)
            writer.write(chunk)
            if writer.needs_flush:
                await writer.flush()
    return None


# 501 (no GET there) and 505 (no HTTP/1.1): the same answer however long we wait.
_LASTING_5XX = frozenset({501, 505})


def _raise_for_status(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    detail = {"status_code": resp.status_code}
    status = resp.status_code
    if status in (408, 429) or (status >= 500 and status not in _LASTING_5XX):
        raise SourceFailing(
            f"source_url answered {resp.status_code}",
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
            provider_detail=detail,
        )
    raise PermanentProviderError(
        "source_unavailable", f"source_url answered {resp.status_code}", provider_detail=detail
    )


def _too_large(max_bytes: int) -> PermanentProviderError:
    return PermanentProviderError(
        "source_too_large", f"the content at source_url is larger than {max_bytes} bytes"
    )
