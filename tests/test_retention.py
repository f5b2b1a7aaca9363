"""Retention: old audio, old jobs and expired idempotency keys are swept away.

Jobs are made by a real gateway (the offline engine) or inserted as rows with
real blobs; ages are set with an UPDATE, and ``sweep_once`` is called with an
explicit ``now``. One test lets the worker's own sweeper loop do the work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import create_client as create_client_row
from app.config import Settings
from app.context import GatewayContext
from app.db import create_engine, create_session_factory, utcnow
from app.ids import new_id
from app.links import media_url
from app.migrate import upgrade_to_head
from app.models import Client, IdempotencyKey, Job, JobResult, Task, WebhookDelivery
from app.retention import BATCH, SweepReport, run_sweeper, sweep_once
from app.storage import LocalStorage, artifact_key, audio_key
from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import ThreadedGateway, create_client
from tests.support.receiver import WebhookReceiver

T = TypeVar("T")
PUBLIC = "https://stt.example.com"


# --- helpers -------------------------------------------------------------------


def _in_session(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed session of a fresh engine (from synchronous code)."""

    async def run() -> T:
        engine = create_engine(database_url)
        try:
            async with create_session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def sweep(settings: Settings, now: datetime | None = None) -> SweepReport:
    """One sweep by a context of this test's own, as a separate worker would run it."""

    async def run() -> SweepReport:
        ctx = GatewayContext.build(settings)
        try:
            return await sweep_once(ctx, now or utcnow())
        finally:
            await ctx.aclose()

    return asyncio.run(run())


def age(database_url: str, job_id: str, **values: object) -> None:
    """Set columns of a job (its times, mostly) as if time had passed."""

    async def work(session: AsyncSession) -> None:
        await session.execute(update(Job).where(Job.id == job_id).values(**values))

    _in_session(database_url, work)


def job_row(database_url: str, job_id: str) -> Job | None:
    async def work(session: AsyncSession) -> Job | None:
        return await session.get(Job, job_id)

    return _in_session(database_url, work)


def rows_of_job(database_url: str, job_id: str) -> dict[str, int]:
    async def work(session: AsyncSession) -> dict[str, int]:
        counts = {}
        for model in (JobResult, Task, WebhookDelivery):
            query = select(func.count()).select_from(model).where(model.job_id == job_id)
            counts[model.__tablename__] = await session.scalar(query) or 0
        return counts

    return _in_session(database_url, work)


def completed(client: httpx.Client, **fields: str) -> dict[str, Any]:
    created = upload(client, SPEECH_WAV, language="en", **fields)
    assert created.status_code == 202, created.text
    return wait_done(client, created.json()["id"])


def wait_done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/jobs/{job_id}", params={"wait": 60}).json()
    assert job["status"] == "completed", job
    return job


def media_path(gateway: ThreadedGateway, job_id: str) -> str:
    ctx: GatewayContext = gateway.server.config.app.state.ctx  # type: ignore[union-attr]
    link = media_url(ctx.settings, ctx.signer, job_id)
    assert link is not None
    return link.removeprefix(PUBLIC)


def job_dir(gateway: ThreadedGateway, job_id: str) -> Path:
    return gateway.settings.storage_dir / "jobs" / job_id


@pytest.fixture
def gateway_and_client(
    database_url: str, make_settings: Callable[..., Settings], start_gateway: Any
) -> Iterator[Callable[..., tuple[ThreadedGateway, httpx.Client, str]]]:
    """Start a gateway (these settings) and a client: (gateway, client, webhook_secret)."""
    clients: list[httpx.Client] = []

    def start(**overrides: object) -> tuple[ThreadedGateway, httpx.Client, str]:
        gateway = start_gateway(make_settings(database_url, public_base_url=PUBLIC, **overrides))
        new = create_client(database_url, "acme")
        clients.append(gateway.client(new.api_key))
        return gateway, clients[-1], new.webhook_secret

    yield start
    for client in clients:
        client.close()


# --- through the API ---------------------------------------------------------------


def test_old_audio_is_deleted_and_the_transcript_stays(database_url, gateway_and_client):
    gateway, client, _ = gateway_and_client()
    job = completed(client)
    audio = job_dir(gateway, job["id"]) / "audio"
    assert audio.is_file()
    with gateway.client() as anonymous:
        assert anonymous.get(media_path(gateway, job["id"])).status_code == 200

    assert not sweep(gateway.settings)  # not 24 hours old yet
    assert audio.is_file()

    age(database_url, job["id"], completed_at=utcnow() - timedelta(hours=25))
    before = client.get(f"/jobs/{job['id']}").json()
    assert sweep(gateway.settings) == SweepReport(audio_deleted=1)

    assert not audio.exists()
    row = job_row(database_url, job["id"])
    assert row is not None and row.audio_key is None
    after = client.get(f"/jobs/{job['id']}").json()
    assert after == before  # the job, its source description and updated_at unchanged
    assert after["source"]["type"] == "upload" and after["source"]["size"] > 0
    transcript = client.get(f"/jobs/{job['id']}/transcript", params={"format": "text"})
    assert transcript.status_code == 200 and "hello" in transcript.text
    with gateway.client() as anonymous:
        assert_problem(anonymous.get(media_path(gateway, job["id"])), 404)

    assert not sweep(gateway.settings)  # a second sweep has nothing to do


def test_audio_of_jobs_in_flight_is_never_touched(database_url, gateway_and_client):
    gateway, client, _ = gateway_and_client(run_worker=False)  # jobs stay queued
    queued, processing, canceled = (upload(client).json()["id"] for _ in range(3))
    long_ago = utcnow() - timedelta(days=400)
    age(database_url, queued, created_at=long_ago, updated_at=long_ago)
    age(database_url, processing, status="processing", created_at=long_ago, updated_at=long_ago)
    assert client.post(f"/jobs/{canceled}/cancel").status_code == 200

    report = sweep(gateway.settings, now=utcnow() + timedelta(days=400))

    # The canceled job is terminal and past both periods: gone whole, audio with it.
    assert report == SweepReport(jobs_deleted=1)
    assert_problem(client.get(f"/jobs/{canceled}"), 404)
    assert not job_dir(gateway, canceled).exists()
    for job_id, status in ((queued, "queued"), (processing, "processing")):
        assert (job_dir(gateway, job_id) / "audio").is_file()
        assert client.get(f"/jobs/{job_id}").json()["status"] == status
        row = job_row(database_url, job_id)
        assert row is not None and row.audio_key == audio_key(job_id)


def test_a_job_past_result_retention_is_deleted_whole(database_url, gateway_and_client):
    gateway, client, secret = gateway_and_client()
    receiver = WebhookReceiver(secret).start()
    try:
        old_id = upload(client, language="en", callback_url=receiver.url).json()["id"]
        fresh_id = upload(client, language="en").json()["id"]
        wait_done(client, old_id)
        wait_done(client, fresh_id)
        receiver.wait_for(1)
    finally:
        receiver.stop()
    assert rows_of_job(database_url, old_id)["job_results"] == 1
    assert rows_of_job(database_url, old_id)["webhook_deliveries"] == 1

    age(database_url, old_id, completed_at=utcnow() - timedelta(days=31))
    assert sweep(gateway.settings) == SweepReport(jobs_deleted=1)

    assert_problem(client.get(f"/jobs/{old_id}"), 404)
    assert_problem(client.get(f"/jobs/{old_id}/transcript"), 404)
    assert not job_dir(gateway, old_id).exists()
    assert rows_of_job(database_url, old_id) == {
        "job_results": 0,
        "tasks": 0,
        "webhook_deliveries": 0,
    }
    # The job that finished just now keeps everything.
    assert client.get(f"/jobs/{fresh_id}/transcript").status_code == 200
    assert (job_dir(gateway, fresh_id) / "audio").is_file()
    assert not sweep(gateway.settings)


def test_result_retention_zero_keeps_jobs_forever(database_url, gateway_and_client):
    gateway, client, _ = gateway_and_client(result_retention_days=0)
    job = completed(client)
    age(database_url, job["id"], completed_at=utcnow() - timedelta(days=3650))

    # The audio still goes after its 24 hours; the job and its results stay.
    assert sweep(gateway.settings) == SweepReport(audio_deleted=1)
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "completed"
    assert "hello" in client.get(f"/jobs/{job['id']}/transcript").json()["text"]
    assert not sweep(gateway.settings, now=utcnow() + timedelta(days=3650))


def test_the_worker_sweeps_by_itself_and_stops_cleanly(database_url, gateway_and_client):
    gateway, client, _ = gateway_and_client(retention_sweep_seconds=0.2, audio_retention_hours=0)
    job = completed(client)
    audio = job_dir(gateway, job["id"]) / "audio"
    deadline = time.monotonic() + 10
    # The file goes first, then the row forgets it: wait for both.
    while audio.exists() or (row := job_row(database_url, job["id"])) is None or row.audio_key:
        assert time.monotonic() < deadline, "the sweeper did not delete the audio"
        time.sleep(0.1)
    assert client.get(f"/jobs/{job['id']}/transcript").status_code == 200

    gateway.stop()
    assert not gateway.thread.is_alive()


# --- rows and blobs written directly: batches, crashes, idempotency keys ----------------


def _job(client_id: str, status: str, created: datetime, completed_at: datetime | None) -> Job:
    job_id = new_id("job")
    return Job(
        id=job_id,
        client_id=client_id,
        provider="local",
        fallback_providers=[],
        provider_attempts=[],
        status=status,
        options={},
        meta={},
        source={"type": "upload", "filename": "a.wav", "content_type": "audio/wav", "size": 5},
        audio_key=audio_key(job_id),
        audio_format="wav",
        artifacts=[],
        created_at=created,
        updated_at=completed_at or created,
        completed_at=completed_at,
    )


def test_sweeps_in_batches_and_finishes_what_a_crash_left(database_url, make_settings):
    settings = make_settings(database_url)
    storage = LocalStorage(settings.storage_dir)
    now = utcnow()
    create_client(database_url, "acme")

    async def insert(session: AsyncSession) -> tuple[list[Job], list[Job], list[Job]]:
        client_id = await session.scalar(select(Client.id).where(Client.name == "acme"))
        assert client_id is not None
        two_days, forty_days = now - timedelta(days=2), now - timedelta(days=40)
        old_audio = [_job(client_id, "completed", two_days, two_days) for _ in range(2 * BATCH + 7)]
        expired = [_job(client_id, "failed", forty_days, forty_days) for _ in range(BATCH + 3)]
        in_flight = [_job(client_id, "processing", forty_days, None) for _ in range(5)]
        session.add_all([*old_audio, *expired, *in_flight])
        keys = [
            IdempotencyKey(client_id=client_id, key=f"k{i}", request_hash="0" * 64, created_at=at)
            for i, at in enumerate([now - timedelta(hours=25)] * (BATCH * 2 + 3) + [now] * 2)
        ]
        session.add_all(keys)
        return old_audio, expired, in_flight

    old_audio, expired, in_flight = _in_session(database_url, insert)
    # The first three lost their blob to a sweeper that died before clearing the column.
    for job in [*old_audio[3:], *expired, *in_flight]:
        storage.write_bytes(audio_key(job.id), b"RIFF?")
    for job in expired[:10]:
        storage.write_bytes(artifact_key(job.id, "midi"), b"MThd")

    report = sweep(settings, now)

    assert report == SweepReport(
        audio_deleted=len(old_audio),
        jobs_deleted=len(expired),
        idempotency_keys_deleted=BATCH * 2 + 3,
    )
    assert not any(storage.exists(audio_key(job.id)) for job in old_audio)
    assert not any((storage.root / "jobs" / job.id).exists() for job in expired)
    assert all(storage.exists(audio_key(job.id)) for job in in_flight)

    async def check(session: AsyncSession) -> None:
        still_keyed = select(func.count()).where(Job.audio_key.is_not(None))
        assert await session.scalar(still_keyed) == len(in_flight)
        remaining = await session.scalar(select(func.count()).select_from(Job))
        assert remaining == len(old_audio) + len(in_flight)
        keys = list(await session.scalars(select(IdempotencyKey.key).order_by(IdempotencyKey.key)))
        assert len(keys) == 2  # the fresh ones

    _in_session(database_url, check)  # the crashed ones were counted and cleared too
    assert not sweep(settings, now)


def test_the_sweeper_survives_database_errors(tmp_path, make_settings, caplog):
    """The loop outlives a database that is not ready (no tables yet), and sweeps once it is."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'late.db'}"
    settings = make_settings(url, retention_sweep_seconds=0.1)

    async def scenario() -> None:
        ctx = GatewayContext.build(settings)
        sweeper = asyncio.create_task(run_sweeper(ctx))
        try:
            await asyncio.sleep(0.5)
            assert not sweeper.done()
            await asyncio.to_thread(upgrade_to_head, url)
            async with ctx.sessions() as session:
                await create_client_row(session, "acme")
                client_id = await session.scalar(select(Client.id))
                session.add(
                    IdempotencyKey(
                        client_id=client_id,
                        key="old",
                        request_hash="0" * 64,
                        created_at=utcnow() - timedelta(days=2),
                    )
                )
                await session.commit()
            deadline = time.monotonic() + 10
            while True:
                async with ctx.sessions() as session:
                    if not await session.scalar(select(func.count()).select_from(IdempotencyKey)):
                        break
                assert time.monotonic() < deadline, "the sweeper did not recover"
                await asyncio.sleep(0.1)
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await ctx.aclose()
        assert sweeper.cancelled()

    with caplog.at_level(logging.INFO, logger="app.retention"):
        asyncio.run(scenario())
    assert "retention sweep failed (OperationalError)" in caplog.text
    assert "retention sweep deleted the" in caplog.text and "1 idempotency key" in caplog.text
