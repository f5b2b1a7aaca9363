"""The five asynchronous vendors' fakes (tests/fakes/) in one process, answering at once.

    python bench/fake_vendors.py [klangio daglo aimlapi infomaniak phonexia]
                                 [--callback-delay 0.1]

Prints one JSON line, ``{"klangio": "http://127.0.0.1:…", …}``, then serves
until killed. For a benchmark the fakes lose their test-time pacing:

- every job is finished the moment it is submitted (no in-progress steps, no
  step delays), so the first status GET shows the result;
- Klangio and Daglo, which have webhooks, call the gateway back
  ``--callback-delay`` seconds after the submit (Klangio's fake would otherwise
  wait for a status GET first), each over one shared HTTP client instead of a
  new one per callback;
- requests are counted per operation but their bodies are not kept (a test
  fake remembers every upload; 10,000 of them would only cost memory).

``GET /_bench/counts`` on each fake answers its tallies: requests per
operation, jobs accepted, callbacks sent and refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.aimlapi import FakeAimlApi
from tests.fakes.daglo import FakeDaglo
from tests.fakes.infomaniak import FakeInfomaniak
from tests.fakes.klangio import FakeKlangio
from tests.fakes.phonexia import FakePhonexia
from tests.support.vendor import FakeVendor, Recorded

# What a gateway needs to talk to each fake: its settings, given the fake's base URL.
# The keys are the fakes' own defaults (test values, not secrets).
VENDOR_SETTINGS = {
    "klangio": lambda url: {"KLANGIO_API_KEY": "test-klangio-key-0123", "KLANGIO_BASE_URL": url},
    # The fake has no rate limit: the run measures the gateway, not Daglo's 20/s.
    "daglo": lambda url: {
        "DAGLO_API_KEY": "test-daglo-key",
        "DAGLO_BASE_URL": url,
        "DAGLO_REQUESTS_PER_SECOND": "10000",
    },
    "aimlapi": lambda url: {"AIMLAPI_API_KEY": "test-aimlapi-key", "AIMLAPI_BASE_URL": url},
    "infomaniak": lambda url: {
        "INFOMANIAK_API_KEY": "ik-test-token",
        "INFOMANIAK_PRODUCT_ID": "24250",
        "INFOMANIAK_BASE_URL": url,
    },
    "phonexia": lambda url: {"PHONEXIA_BASE_URL": url},
}
VENDORS = tuple(VENDOR_SETTINGS)


class BenchTallies(FakeVendor):
    """Counts instead of records, one pooled client for callbacks, and /_bench/counts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] = Counter()
        self.callback_statuses: Counter[int] = Counter()
        self._client: httpx.AsyncClient | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def record(self, operation: str, request: Request) -> Recorded:
        for name in ("stamps", "times", "seen"):  # the fakes' timing logs hold records too
            log = getattr(self, name, None)
            if isinstance(log, list):
                log.clear()
        recorded = await super().record(operation, request)
        self.requests.clear()  # the handler has what it needs: the returned record
        self.counts[operation] += 1
        return recorded

    def call_back_later(self, url: str, payload: Any, delay: float = 0.05) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            await self.call_back(url, payload)

        task = asyncio.get_running_loop().create_task(later())
        self._pending.add(task)  # a task nobody references may be collected mid-way
        task.add_done_callback(self._pending.discard)

    async def call_back(self, url: str, payload: Any) -> None:
        if not self.callbacks_enabled or not url:
            return
        if self._client is None:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            self._client = httpx.AsyncClient(timeout=30, limits=limits)
        try:
            response = await self._client.post(url, json=payload)
            self.callback_statuses[response.status_code] += 1
        except httpx.HTTPError:
            self.callback_statuses[0] += 1  # 0: no answer

    def accepted(self) -> int:
        """Jobs this vendor took (and would bill)."""
        raise NotImplementedError

    async def tallies(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "requests": dict(self.counts),
                "accepted": self.accepted(),
                "callbacks": {str(k): v for k, v in self.callback_statuses.items()},
            }
        )

    def routes(self) -> list[Route]:
        return [Route("/_bench/counts", self.tallies, methods=["GET"]), *super().routes()]


class Klangio(BenchTallies, FakeKlangio):
    def __init__(self, callback_delay: float) -> None:
        super().__init__()
        self.steps = []
        self.callback_delay = callback_delay

    def accepted(self) -> int:
        return len(self.jobs)

    async def create(self, request: Request) -> Response:
        response = await super().create(request)
        if response.status_code == 200:  # done at once: the webhook goes out now
            self._finish(self.jobs[json.loads(bytes(response.body))["job_id"]])
        return response


class Daglo(BenchTallies, FakeDaglo):
    def __init__(self, callback_delay: float) -> None:
        super().__init__()
        self.steps = []  # straight to "transcribed", and its callback
        self.step_seconds = callback_delay

    def accepted(self) -> int:
        return len(self.jobs)


class AimlApi(BenchTallies, FakeAimlApi):
    def __init__(self, callback_delay: float) -> None:
        super().__init__()
        self.answer.steps = 0  # the first status GET has the result

    def accepted(self) -> int:
        return len(self.jobs)


class Infomaniak(BenchTallies, FakeInfomaniak):
    def __init__(self, callback_delay: float) -> None:
        super().__init__()
        self.progression = ["success"]

    def accepted(self) -> int:
        return len(self.batches)


class Phonexia(BenchTallies, FakePhonexia):
    def __init__(self, callback_delay: float) -> None:
        super().__init__()
        self.progression = []  # the first status GET shows "done"

    def accepted(self) -> int:
        return len(self.tasks)


FAKES: dict[str, type[BenchTallies]] = {
    "klangio": Klangio,
    "daglo": Daglo,
    "aimlapi": AimlApi,
    "infomaniak": Infomaniak,
    "phonexia": Phonexia,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("vendors", nargs="*", help=f"some of {', '.join(VENDORS)} (default: all)")
    parser.add_argument(
        "--callback-delay", type=float, default=0.1, help="seconds from submit to webhook"
    )
    args = parser.parse_args()
    unknown = set(args.vendors) - set(VENDORS)
    if unknown:
        parser.error(f"unknown vendors: {', '.join(sorted(unknown))}")
    started = {}
    for name in args.vendors or VENDORS:
        fake = FAKES[name](args.callback_delay)
        started[name] = fake.start().base_url
    print(json.dumps(started), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
