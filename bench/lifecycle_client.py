"""The client of bench/lifecycle.py: the jobs it creates (a small WAV upload each,
round-robin over the vendors) and the wait for their webhooks at the receiver."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import multipart_body, wav_bytes
from bench.fake_vendors import VENDORS
from bench.lifecycle_stack import Stack

WAV = wav_bytes(8 * 1024)  # a quarter of a second: the upload is not what is measured
BOUNDARY = "lifecycle4b2e"
# What each vendor's job asks for, besides the file and the callback_url.
FIELDS: dict[str, dict[str, str]] = {
    "klangio": {"options": json.dumps({"outputs": ["midi"]})},  # music: no language
    "daglo": {},
    "aimlapi": {},
    "infomaniak": {},
    "phonexia": {"language": "en-US"},  # its default engine needs one
}


def multipart(vendor: str, callback_url: str) -> bytes:
    fields = {"provider": vendor, "callback_url": callback_url, **FIELDS[vendor]}
    body, _ = multipart_body(WAV, fields, "a.wav", BOUNDARY)
    return body


@dataclass
class Created:
    vendor: str
    started: float  # time.monotonic() when the POST went out
    answered: float


@dataclass
class Creation:
    jobs: dict[str, Created] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[float, float, str]] = field(default_factory=list)  # transport errors


async def create_jobs(
    stack: Stack, api_key: str, count: int, concurrency: int, rate: float = 0.0
) -> Creation:
    """``count`` creates, ``concurrency`` at a time; with ``rate``, job n is not
    sent before n/rate seconds (an open-loop client at a steady pace)."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    bodies = {v: multipart(v, f"{stack.receiver_url}/hook") for v in VENDORS}
    result = Creation()
    numbers = iter(range(count))
    # Idle connections expire before the server's keep-alive timeout (uvicorn: 5 s) can close them
    # under a request just sent (a ReadError).
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2
    )
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        begin = time.monotonic()

        async def one_worker() -> None:
            for n in numbers:
                if rate:
                    await asyncio.sleep(max(0.0, begin + n / rate - time.monotonic()))
                vendor = VENDORS[n % len(VENDORS)]
                url = f"{stack.api_urls[n % len(stack.api_urls)]}/jobs"
                started = time.monotonic()
                try:
                    response = await client.post(url, content=bodies[vendor], headers=headers)
                except httpx.HTTPError as exc:
                    result.errors[type(exc).__name__] += 1
                    result.failures.append((started, time.monotonic(), repr(exc)))
                    continue
                if response.status_code != 202:
                    result.errors[f"{response.status_code} {response.text[:120]}"] += 1
                    continue
                result.jobs[response.json()["id"]] = Created(vendor, started, time.monotonic())

        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
    return result


def wait_for_webhooks(receiver: str, expected: int, stall_seconds: float) -> dict[str, Any]:
    """Wait until ``expected`` terminal events came, or none came for ``stall_seconds``."""
    seen, last_change = -1, time.monotonic()
    while True:
        counts = httpx.get(f"{receiver}/count", timeout=30).json()
        terminal = sum(counts["events"].values())
        if terminal >= expected:
            break
        if terminal != seen:
            seen, last_change = terminal, time.monotonic()
        elif time.monotonic() - last_change > stall_seconds:
            print(f"  no webhook for {stall_seconds:.0f} s: {terminal} of {expected} came")
            break
        time.sleep(0.2)
    records: dict[str, Any] = httpx.get(f"{receiver}/records", timeout=60).json()
    return records
