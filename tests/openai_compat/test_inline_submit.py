"""On the OpenAI route a synchronous provider is called from the request itself:
its submit task is claimed by the request when the job is written (no worker
hand-off), leased like a worker's claim, and in the submit ledger."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openai import OpenAI
from sqlalchemy import text

from app.db import create_engine
from tests.api.helpers import upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import ThreadedGateway
from tests.vendor_faults.bad_upstream import API_KEY, TEXT, BadUpstream


@pytest.fixture
def upstream() -> Iterator[BadUpstream]:
    fake = BadUpstream()
    fake.mode, fake.delay = "slow", 3.0  # long enough to look at the rows meanwhile
    fake.start()
    yield fake
    fake.stop()


def _rows(url: str, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return list(await connection.execute(text(sql)))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_the_request_claims_and_runs_its_own_submit(
    upstream: BadUpstream,
    vendor_gateway: Callable[..., tuple[ThreadedGateway, str]],
    postgres_url: str,
) -> None:
    # One worker slot, held by a job of the asynchronous API while the upstream
    # works on it: a transcription that needed a worker would wait for it.
    gateway, key = vendor_gateway(
        OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=f"{upstream.base_url}/v1", WORKER_CONCURRENCY=1
    )
    with gateway.client(key) as http:
        assert upload(http, provider="openai").status_code == 202
    _wait_until(lambda: upstream.in_flight == 1)

    answers: list[str] = []
    client = OpenAI(base_url=gateway.base_url + "/v1", api_key=key, timeout=60)

    def transcribe() -> None:
        result = client.audio.transcriptions.create(model="openai/whisper-1", file=SPEECH_WAV)
        answers.append(result.text)

    request = threading.Thread(target=transcribe)
    request.start()
    _wait_until(lambda: upstream.in_flight == 2)  # called while the worker's slot is taken
    # The request's task is claimed (by the request: never due for a worker),
    # and both submits are written down in the ledger, not yet settled.
    claimed = _rows(postgres_url, "SELECT attempts, claim_token, run_at - now() FROM tasks")
    assert len(claimed) == 2
    assert all(t.attempts == 1 and t.claim_token and t[2].total_seconds() > 20 for t in claimed), (
        claimed
    )
    open_rows = _rows(postgres_url, "SELECT outcome FROM provider_submissions")
    assert [row.outcome for row in open_rows] == [None, None]
    request.join(timeout=30)

    assert answers == [TEXT]
    assert upstream.calls_made == 2
    settled = _rows(postgres_url, "SELECT outcome FROM provider_submissions")
    assert [row.outcome for row in settled] == ["accepted", "accepted"]


def _wait_until(condition: Callable[[], bool], timeout: float = 1.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
