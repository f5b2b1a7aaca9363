"""On the OpenAI route a synchronous provider is called from the request itself:
its submit task is claimed by the request when the job is written (no worker
hand-off), leased like a worker's claim, and in the submit ledger."""

from __future__ import annotations

import asyncio
import hashlib
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
    with fake:
        yield fake


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
    gateway, key = _with_a_job_at_the_upstream(upstream, vendor_gateway, WORKER_CONCURRENCY=1)

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
    # The request's job was written in hand (processing) with its ledger row.
    jobs = _rows(postgres_url, "SELECT status, provider_status FROM jobs ORDER BY created_at")
    assert [tuple(job) for job in jobs] == [("processing", None)] * 2
    request.join(timeout=30)

    assert answers == [TEXT]
    assert upstream.calls_made == 2
    settled = _rows(postgres_url, "SELECT outcome FROM provider_submissions")
    assert [row.outcome for row in settled] == ["accepted", "accepted"]


def test_the_request_s_submit_sends_the_stored_upload_and_settles_its_row(
    upstream: BadUpstream,
    vendor_gateway: Callable[..., tuple[ThreadedGateway, str]],
    postgres_url: str,
) -> None:
    upstream.mode = "ok"
    gateway, key = vendor_gateway(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=f"{upstream.base_url}/v1")
    client = OpenAI(base_url=gateway.base_url + "/v1", api_key=key, timeout=60)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="openai/whisper-1", file=SPEECH_WAV
    )
    assert raw.parse().text == TEXT
    [sent] = upstream.bodies
    assert SPEECH_WAV.read_bytes() in sent
    with gateway.client(key) as http:
        job = http.get(f"/jobs/{raw.headers['x-job-id']}").json()
    assert job["status"] == "completed"
    assert job["source"]["sha256"] == hashlib.sha256(SPEECH_WAV.read_bytes()).hexdigest()
    [(audio_key,)] = _rows(postgres_url, "SELECT audio_key FROM jobs")
    stored = gateway.settings.storage_dir / audio_key
    assert stored.read_bytes() == SPEECH_WAV.read_bytes()
    outcomes = _rows(postgres_url, "SELECT outcome FROM provider_submissions")
    assert [row.outcome for row in outcomes] == ["accepted"]


def test_a_busy_vendor_sends_the_request_s_submit_to_the_worker_without_doubt(
    upstream: BadUpstream,
    vendor_gateway: Callable[..., tuple[ThreadedGateway, str]],
    postgres_url: str,
) -> None:
    # One call to the vendor at a time, held for 3 s by a job of the asynchronous API.
    gateway, key = _with_a_job_at_the_upstream(upstream, vendor_gateway, PROVIDER_MAX_IN_FLIGHT=1)

    client = OpenAI(base_url=gateway.base_url + "/v1", api_key=key, timeout=60)
    result = client.audio.transcriptions.create(model="openai/whisper-1", file=SPEECH_WAV)

    # The request's own submit found the vendor busy: its ledger row says nothing
    # was sent, and a worker submitted the job once the vendor was free.
    assert result.text == TEXT
    assert upstream.calls_made == 2 and upstream.max_in_flight == 1
    rows = _rows(postgres_url, "SELECT outcome FROM provider_submissions ORDER BY id")
    assert [row.outcome for row in rows] == ["accepted", "retryable", "accepted"]
    assert _rows(postgres_url, "SELECT status FROM jobs") == [("completed",), ("completed",)]


def _with_a_job_at_the_upstream(
    upstream: BadUpstream,
    vendor_gateway: Callable[..., tuple[ThreadedGateway, str]],
    **settings: object,
) -> tuple[ThreadedGateway, str]:
    """A gateway in front of the upstream, and a job of the asynchronous API
    that the (slow) upstream is working on."""
    gateway, key = vendor_gateway(
        OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=f"{upstream.base_url}/v1", **settings
    )
    with gateway.client(key) as http:
        assert upload(http, provider="openai").status_code == 202
    _wait_until(lambda: upstream.in_flight == 1)
    return gateway, key


def _wait_until(condition: Callable[[], bool], timeout: float = 1.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
