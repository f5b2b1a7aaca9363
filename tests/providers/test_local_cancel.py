"""A canceled or deleted local job stops the engine's work on it: the next job starts at once.

The long clip is the committed speech 30 times over (97 s of audio): about 30 s
of engine time on this 2-core machine, where the committed clip itself takes
about 1 s and starting an engine process about 1 s more. Before the fix, a
canceled long job kept the only engine (LOCAL_ENGINE_PROCESSES=1) busy to its
end, so the bounds below (a few seconds) fail by 20 s or more.
"""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.providers.base import PermanentProviderError, SubmitRequest
from app.providers.local import LocalProvider
from tests.api.helpers import upload
from tests.conftest import SPEECH_WAV
from tests.providers.helpers import submit_request_for
from tests.support.gateway import ThreadedGateway, create_key

REPEATS = 30  # 97 s of speech: ~30 s for the engine
QUICK = 8.0  # seconds: the short clip's engine time, a fresh engine's start, and slack


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with wave.open(str(SPEECH_WAV)) as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames * REPEATS)
    with wave.open(str(path)) as check:
        assert check.getnframes() / check.getframerate() > 90
    return path


def _request(path: Path, job_id: str) -> SubmitRequest:
    return submit_request_for(
        path, job_id=job_id, audio_format="wav", filename=None, content_type=None, language=None
    )


@pytest.fixture
def local() -> Iterator[LocalProvider]:
    provider = LocalProvider(processes=1)
    yield provider
    provider.close()


async def _timed_short(local: LocalProvider) -> float:
    started = time.monotonic()
    update = await asyncio.wait_for(local.submit(_request(SPEECH_WAV, "short")), 60)
    assert update.status == "completed" and update.result is not None
    assert "hello" in update.result.transcript.text
    return time.monotonic() - started


async def test_a_canceled_submit_stops_the_engine(local: LocalProvider, long_wav: Path) -> None:
    await _timed_short(local)  # the engine is up
    long = asyncio.create_task(local.submit(_request(long_wav, "long")))
    await asyncio.sleep(1.5)  # the engine is well into it
    assert local._engines.running("long")

    started = time.monotonic()
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    assert time.monotonic() - started < 1.0
    assert not local._engines.running("long")

    assert await _timed_short(local) < QUICK


async def test_cancel_stops_the_job_this_process_runs(local: LocalProvider, long_wav: Path) -> None:
    long = asyncio.create_task(local.submit(_request(long_wav, "long")))
    await asyncio.sleep(2.5)  # the engine started, and is into the clip

    await local.cancel("long")
    with pytest.raises(PermanentProviderError) as caught:
        await asyncio.wait_for(long, 5)
    assert caught.value.code == "canceled"
    assert await _timed_short(local) < QUICK


async def test_stopping_one_job_leaves_the_others_alone(long_wav: Path) -> None:
    local = LocalProvider(processes=2)
    try:
        long = asyncio.create_task(local.submit(_request(long_wav, "long")))
        other = asyncio.create_task(local.submit(_request(SPEECH_WAV, "other")))
        # With both engines taken, a third job waits its turn; canceled while it
        # waits, it gives nothing back twice and takes no engine.
        waiting = asyncio.create_task(local.submit(_request(SPEECH_WAV, "waiting")))
        await asyncio.sleep(0.2)
        waiting.cancel()
        await asyncio.sleep(1.5)
        await local.cancel("long")

        update = await asyncio.wait_for(other, 30)
        assert update.result is not None and "hello" in update.result.transcript.text
        with pytest.raises(PermanentProviderError):
            await long
        assert waiting.cancelled()
        # Both engines are free again: two jobs at once, neither waiting long.
        times = await asyncio.gather(_timed_short(local), _timed_short(local))
        assert max(times) < QUICK
    finally:
        local.close()


async def test_audio_deleted_before_the_engine_reads_it(
    local: LocalProvider, tmp_path: Path
) -> None:
    # A DELETE removes the job's files while its submit waits for the engine.
    with pytest.raises(PermanentProviderError) as caught:
        await local.submit(_request(tmp_path / "jobs" / "gone" / "audio", "gone"))
    assert caught.value.code == "audio_missing"
    assert await _timed_short(local) < QUICK  # the engine is fine


# --- through the gateway ---


def _processing(client: httpx.Client, job_id: str) -> None:
    """Until the engine has the job, and a moment more (it is recognising)."""
    deadline = time.monotonic() + 20
    while client.get(f"/jobs/{job_id}").json()["status"] != "processing":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    time.sleep(1.5)


def _short_job_seconds(client: httpx.Client) -> float:
    started = time.monotonic()
    job_id = upload(client, provider="local").json()["id"]
    job = client.get(f"/jobs/{job_id}", params={"wait": 20}).json()
    seconds = time.monotonic() - started
    assert job["status"] == "completed", job
    return seconds


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def local_gateway(
    postgres_url: str,
    make_settings: Callable[..., Settings],
    start_gateway: Callable[..., ThreadedGateway],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[httpx.Client]:
    caplog.set_level(logging.INFO)
    gateway = start_gateway(make_settings(postgres_url, local_engine_processes=1))
    with gateway.client(create_key(postgres_url, "acme"), timeout=60) as client:
        yield client


def test_canceling_a_long_job_frees_the_engine_for_the_next(
    local_gateway: httpx.Client, long_wav: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = local_gateway
    long_id = upload(client, long_wav, provider="local").json()["id"]
    _processing(client, long_id)

    canceled = client.post(f"/jobs/{long_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert _short_job_seconds(client) < QUICK

    job = client.get(f"/jobs/{long_id}").json()
    assert job["status"] == "canceled" and job["error"] is None
    (local,) = [p for p in client.get("/providers").json()["data"] if p["name"] == "local"]
    assert local["capabilities"]["cancel"] is True
    assert not _errors(caplog)
    assert any("its work was stopped" in r.getMessage() for r in caplog.records)


def test_deleting_a_processing_job_frees_the_engine_without_an_error(
    local_gateway: httpx.Client, long_wav: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = local_gateway
    long_id = upload(client, long_wav, provider="local").json()["id"]
    _processing(client, long_id)

    assert client.delete(f"/jobs/{long_id}").status_code == 204
    assert _short_job_seconds(client) < QUICK
    assert client.get(f"/jobs/{long_id}").status_code == 404
    assert not _errors(caplog), _errors(caplog)
    assert any("its work was stopped" in r.getMessage() for r in caplog.records)


def test_a_job_deleted_while_waiting_for_the_engine_ends_quietly(
    local_gateway: httpx.Client, long_wav: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two jobs for one engine: the second waits (processing) with its audio unread.
    client = local_gateway
    long_id = upload(client, long_wav, provider="local").json()["id"]
    waiting_id = upload(client, provider="local").json()["id"]
    _processing(client, long_id)
    assert client.get(f"/jobs/{waiting_id}").json()["status"] == "processing"

    assert client.delete(f"/jobs/{waiting_id}").status_code == 204
    assert client.delete(f"/jobs/{long_id}").status_code == 204
    assert _short_job_seconds(client) < QUICK
    assert not _errors(caplog), _errors(caplog)


def test_a_cancel_made_through_another_gateway_stops_the_engine(
    postgres_url: str,
    make_settings: Callable[..., Settings],
    start_gateway: Callable[..., ThreadedGateway],
    long_wav: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # `serve --no-worker` beside a worker: the cancel reaches the worker by NOTIFY.
    caplog.set_level(logging.INFO)
    worker = start_gateway(make_settings(postgres_url, local_engine_processes=1))
    api = start_gateway(make_settings(postgres_url, run_worker=False, local_provider=False))
    key = create_key(postgres_url, "acme")
    with worker.client(key, timeout=60) as on_worker, api.client(key, timeout=60) as on_api:
        long_id = upload(on_worker, long_wav, provider="local").json()["id"]
        _processing(on_worker, long_id)

        assert on_api.post(f"/jobs/{long_id}/cancel").json()["status"] == "canceled"
        assert _short_job_seconds(on_worker) < QUICK
    assert not _errors(caplog), _errors(caplog)
