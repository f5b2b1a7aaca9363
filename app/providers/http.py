"""The one place where a vendor's HTTP answers become our two kinds of error.

    transport error, timeout, 408, 429, 5xx  -> RetryableProviderError (with Retry-After)
    any other 4xx                            -> PermanentProviderError (the vendor's detail kept)
    a 2xx whose body is not the JSON we need -> RetryableProviderError (may be transient)

Messages name the vendor, the operation and the status, never a header, a key
or the request URL (some vendors take credentials in the query string). So do
the metrics every call is counted in (vendor, operation, outcome, duration).
The vendor's own body is kept as ``provider_detail`` for the client, with the
credentials the request carried cut out: some vendors echo a request's headers
in their errors. So is the signature of any link, such as our callback URLs.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

from app.metrics import vendor_call
from app.providers.base import PermanentProviderError, RetryableProviderError
from app.queue.backoff import parse_retry_after

_DETAIL_CHARS = 2000
_REDACTED = "[redacted]"
# Names of the request headers and parameters that carry credentials: Authorization,
# kl-api-key, X-Api-Token, api_key ...
_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|signature|cookie", re.IGNORECASE)
# The signature of a signed link (our callback and media URLs), also when URL-encoded.
_LINK_SIGNATURE = re.compile(r"((?:\b|%26|%3F)sig(?:=|%3D))[^&\s\"'%]+", re.IGNORECASE)

# The vendor refused this input (or us): a normalised error code per status.
_PERMANENT_CODES = {
    400: "invalid_request",
    401: "provider_auth",
    402: "provider_quota",
    403: "provider_auth",
    404: "provider_not_found",
    409: "invalid_request",
    410: "provider_not_found",
    413: "input_too_large",
    415: "unsupported_media",
    422: "invalid_request",
}


def vendor_detail(response: httpx.Response) -> Any:
    """The vendor's error body: JSON when it is JSON, else a short piece of text;
    without the request's credentials either way."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text[:_DETAIL_CHARS] or None
    return redact(body, credentials_of(response))


def credentials_of(response: httpx.Response) -> list[str]:
    """The credentials the request of ``response`` carried (in headers, whole and without
    their scheme, and in the query string)."""
    try:
        request = response.request
    except RuntimeError:  # a response made without a request (tests)
        return []
    found = []
    for name, value in request.headers.items():
        if _CREDENTIAL_HEADER.search(name):
            found += [value, value.partition(" ")[2]]
    found += [v for k, v in request.url.params.multi_items() if _CREDENTIAL_HEADER.search(k)]
    # Longest first, so that "Bearer k" goes before "k"; short values would mangle words.
    return sorted({v for v in found if len(v) >= 8}, key=len, reverse=True)


def redact(value: Any, secrets: list[str]) -> Any:
    """``value`` with each secret, and the signature of any link, cut out of every string."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, _REDACTED)
        return _LINK_SIGNATURE.sub(r"\1" + _REDACTED, value)
    if isinstance(value, dict):
        return {key: redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secrets) for item in value]
    return value


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    vendor: str,
    operation: str,
    **kwargs: Any,
) -> httpx.Response:
    """Make one vendor call; return a 2xx response or raise one of our two errors."""
    started = time.perf_counter()
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.TransportError as exc:  # timeouts included
        vendor_call(vendor, operation, "transport_error", time.perf_counter() - started)
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
        raise RetryableProviderError(f"{vendor} {operation}: {what}") from None
    seconds = time.perf_counter() - started
    try:
        raise_for_vendor_status(response, vendor=vendor, operation=operation)
    except RetryableProviderError:
        vendor_call(vendor, operation, "retryable", seconds)
        raise
    except PermanentProviderError:
        vendor_call(vendor, operation, "permanent", seconds)
        raise
    vendor_call(vendor, operation, "ok", seconds)
    return response


def raise_for_vendor_status(response: httpx.Response, *, vendor: str, operation: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = {"status_code": status, "body": vendor_detail(response)}
    if status in (408, 425, 429) or status >= 500:
        raise RetryableProviderError(
            f"{vendor} {operation}: HTTP {status}",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            provider_detail=detail,
        )
    code = _PERMANENT_CODES.get(status, "provider_rejected")
    raise PermanentProviderError(
        code, f"{vendor} {operation} refused: HTTP {status}", provider_detail=detail
    )


def json_object(response: httpx.Response, *, vendor: str, operation: str) -> dict[str, Any]:
    """The body as a JSON object; anything else is an answer we cannot use (yet)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise RetryableProviderError(
            f"{vendor} {operation}: the answer is not a JSON object",
            provider_detail={
                "body": redact(response.text[:_DETAIL_CHARS], credentials_of(response))
            },
        )
    return body
