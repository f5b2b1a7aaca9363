"""Sends one delivery attempt and decides what comes next.

2xx                      succeeded
410 Gone                 failed, no more retries (the receiver asked us to stop)
callback_url refused     failed (it resolves to a private address now)
anything else            retried on the schedule; 429/503 never sooner than Retry-After
the schedule used up     failed (POST /jobs/{id}/deliveries/{id}/retry sends it again)
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from app.config import Settings
from app.db import utcnow
from app.models import WebhookAttempt
from app.notify.deliveries import FAILED, PENDING, SUCCEEDED, Target
from app.notify.signing import signed_headers
from app.queue.backoff import parse_retry_after
from app.urls import UrlRefused, check_url_target, refused_address

_EXCERPT_CHARS = 500


@dataclass(frozen=True)
class Decision:
    status: str  # pending | succeeded | failed
    next_attempt_at: datetime | None


def body_of(target: Target) -> str:
    return json.dumps(target.delivery.payload, separators=(",", ":"), ensure_ascii=False)


async def attempt_once(
    http: httpx.AsyncClient, settings: Settings, target: Target
) -> tuple[WebhookAttempt, float | None]:
    """POST the event once; the attempt as recorded, and the receiver's Retry-After."""
    number = target.delivery.attempts + 1
    attempt = WebhookAttempt(
        delivery_id=target.delivery.id, attempt=number, attempted_at=utcnow(), duration_ms=0
    )
    try:
        # Again now, after DNS resolution: the name may point elsewhere than at creation.
        await check_url_target(target.url, allow_private=settings.allow_private_urls)
    except UrlRefused as exc:
        attempt.error = f"refused: callback_url {exc}"
        return attempt, None
    body = body_of(target)
    headers = {
        "content-type": "application/json",
        "user-agent": "stt-gateway-webhooks/1",
        **signed_headers(target.delivery.id, attempt.attempted_at, body, target.secrets),
    }
    started = time.perf_counter()
    retry_after = None
    try:
        # The whole exchange, not each read, is bounded: a receiver that trickles
        # its answer byte by byte cannot hold a worker slot; and only the start
        # of the answer is read, however large it is.
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            async with http.stream(
                "POST",
                target.url,
                content=body.encode(),
                headers=headers,
                timeout=settings.webhook_timeout_seconds,
                follow_redirects=False,
            ) as response:
                attempt.status_code = response.status_code
                attempt.response_excerpt = await _excerpt(response) or None
                retry_after = parse_retry_after(response.headers.get("retry-after"))
    except (httpx.TimeoutException, TimeoutError):
        if attempt.status_code is None:  # else only the excerpt was cut short
            attempt.error = f"no answer within {settings.webhook_timeout_seconds:g} s"
    except httpx.TransportError as exc:
        if refused := refused_address(exc):  # the name now resolves elsewhere
            attempt.error = f"refused: callback_url {refused}"
        else:
            attempt.error = f"{type(exc).__name__}: could not deliver"
    attempt.duration_ms = int((time.perf_counter() - started) * 1000)
    return attempt, retry_after


async def _excerpt(response: httpx.Response) -> str:
    head = b""
    async for chunk in response.aiter_raw():
        head += chunk
        if len(head) >= _EXCERPT_CHARS * 4:  # enough bytes for the characters kept
            break
    return head.decode("utf-8", "replace")[:_EXCERPT_CHARS]


def decide(attempt: WebhookAttempt, retry_after: float | None, settings: Settings) -> Decision:
    code = attempt.status_code
    if code is not None and 200 <= code < 300:
        return Decision(SUCCEEDED, None)
    if code == 410 or (attempt.error or "").startswith("refused:"):
        return Decision(FAILED, None)
    schedule = settings.webhook_retry_schedule
    if attempt.attempt > len(schedule):
        return Decision(FAILED, None)
    delay = schedule[attempt.attempt - 1] * random.uniform(0.9, 1.1)  # jitter spreads a storm
    if code in (429, 503) and retry_after is not None:
        delay = max(delay, retry_after)
    return Decision(PENDING, utcnow() + timedelta(seconds=delay))
