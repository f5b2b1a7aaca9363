"""What the Infomaniak adapter tests share: recorded payloads, the adapter on a MockTransport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import pytest

from app.providers.base import ProviderError
from app.providers.infomaniak import InfomaniakProvider
from tests.providers.helpers import recorded

TOKEN = "ik-secret-token-123"
BASE = "https://infomaniak.test"
BATCH = "9b9fec49-cc95-44d5-8d3a-be56a6e05970"

Handler = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> Any:
    return recorded("infomaniak", name)


Make = Callable[..., tuple[InfomaniakProvider, list[httpx.Request]]]


@pytest.fixture
async def vendor() -> AsyncIterator[Make]:
    """make(handler, base=...) -> (adapter, the requests it sent)."""
    clients: list[httpx.AsyncClient] = []

    def make(handler: Handler, base: str = BASE) -> tuple[InfomaniakProvider, list[httpx.Request]]:
        sent: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return handler(request)

        http = httpx.AsyncClient(transport=httpx.MockTransport(record))
        clients.append(http)
        return InfomaniakProvider(api_key=TOKEN, product_id="24250", base_url=base, http=http), sent

    yield make
    for client in clients:
        await client.aclose()


def routes(table: Mapping[str, httpx.Response | Callable[[], httpx.Response]]) -> Handler:
    """Answer by path; anything else is a test failure."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = table.get(request.url.path)
        assert answer is not None, f"unexpected call to {request.url}"
        return answer() if callable(answer) else answer

    return handle


def assert_no_secret(error: ProviderError) -> None:
    assert TOKEN not in error.message
    assert TOKEN not in repr(error.provider_detail)
