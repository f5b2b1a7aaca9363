"""Vendor callbacks and media links: signed, expiring, never a way in."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from app.db import create_engine, create_session_factory, utcnow
from app.links import CALLBACK_PURPOSE, MEDIA_PURPOSE, callback_url, media_url
from app.models import Task
from app.signing import LinkSigner, load_or_create_key
from tests.api.helpers import upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import create_key


@pytest.fixture
def env(postgres_url, make_settings, start_gateway):
    gateway = start_gateway(
        make_settings(postgres_url, run_worker=False, public_base_url="https://stt.example.com")
    )
    ctx = gateway.server.config.app.state.ctx
    with gateway.client(create_key(postgres_url, "acme")) as client:
        job_id = upload(client).json()["id"]
        yield gateway, client, ctx, job_id


def _path(url: str) -> str:
    return url.removeprefix("https://stt.example.com")


def test_media_link_serves_the_upload_and_nothing_else(env):
    gateway, _, ctx, job_id = env
    link = media_url(ctx.settings, ctx.signer, job_id)
    assert link is not None and link.startswith(f"https://stt.example.com/media/{job_id}?")
    with gateway.client() as anonymous:  # no API key: the signature is the credential
        served = anonymous.get(_path(link))
        assert served.status_code == 200
        assert served.content == SPEECH_WAV.read_bytes()
        tampered = _path(link).replace("sig=", "sig=A")
        assert anonymous.get(tampered).status_code == 404
        assert anonymous.get(f"/media/{job_id}").status_code == 404
        other_purpose = ctx.signer.query(CALLBACK_PURPOSE, job_id, 60)
        assert anonymous.get(f"/media/{job_id}?{other_purpose}").status_code == 404


def test_expired_links_are_404(env):
    gateway, _, ctx, job_id = env
    expired_media = ctx.signer.query(MEDIA_PURPOSE, job_id, -1)
    expired_callback = ctx.signer.query(CALLBACK_PURPOSE, job_id, -1)
    with gateway.client() as anonymous:
        assert anonymous.get(f"/media/{job_id}?{expired_media}").status_code == 404
        assert anonymous.post(f"/callbacks/local/{job_id}?{expired_callback}").status_code == 404


def test_a_callback_makes_the_poll_due_now(env, postgres_url):
    gateway, client, ctx, job_id = env

    async def poll_task_run_at(later: bool) -> object:
        engine = create_engine(postgres_url)
        async with create_session_factory(engine)() as session:
            if later:
                session.add(Task(kind="poll", job_id=job_id, run_at=utcnow() + timedelta(hours=1)))
                await session.commit()
            task = await session.scalar(
                Task.__table__.select().where(Task.kind == "poll").with_only_columns(Task.run_at)
            )
        await engine.dispose()
        return task

    asyncio.run(poll_task_run_at(later=True))
    link = callback_url(ctx.settings, ctx.signer, "local", job_id)
    assert link is not None
    with gateway.client() as vendor:
        before = time.time()
        answer = vendor.post(_path(link), json={"status": "done", "text": "forged result"})
        assert answer.status_code == 204
        run_at = asyncio.run(poll_task_run_at(later=False))
        assert run_at.timestamp() <= time.time() and run_at.timestamp() >= before - 1
    # The body was not taken as a result: the job is as it was.
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "queued" and job["provider_status"] is None


def test_forged_or_misdirected_callbacks_are_404(env):
    gateway, client, ctx, job_id = env
    good = ctx.signer.query(CALLBACK_PURPOSE, job_id, 60)
    with gateway.client() as vendor:
        assert (
            vendor.post(f"/callbacks/local/{job_id}?expires=9999999999&sig=forged").status_code
            == 404
        )
        assert vendor.post(f"/callbacks/local/{job_id}").status_code == 404
        assert vendor.post(f"/callbacks/daglo/{job_id}?{good}").status_code == 404  # wrong provider
        other = "job_" + "0" * 26
        assert vendor.post(f"/callbacks/local/{other}?{good}").status_code == 404  # wrong job
    assert client.get(f"/jobs/{job_id}").json()["status"] == "queued"


def test_internal_routes_are_not_in_the_openapi_document(env):
    gateway, _, _, _ = env
    with gateway.client() as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/callbacks", "/media"))]


def test_signing_key_is_shared_through_storage(tmp_path):
    first = load_or_create_key(None, tmp_path)
    assert load_or_create_key(None, tmp_path) == first  # a second process reads it
    assert (tmp_path / ".signing-key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_key("configured", tmp_path) != first
    signer = LinkSigner(first)
    query = dict(part.split("=") for part in signer.query("media", "job_1", 60).split("&"))
    assert signer.verify("media", "job_1", query["expires"], query["sig"])
    assert not signer.verify("media", "job_2", query["expires"], query["sig"])
    assert not LinkSigner(b"x" * 32).verify("media", "job_1", query["expires"], query["sig"])
