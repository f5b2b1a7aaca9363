"""``Idempotency-Key`` on ``POST /jobs``: one job per key and request, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.db import create_engine
from app.jobs import idempotency
from app.providers import registry
from tests.api.helpers import assert_problem
from tests.conftest import SPEECH_WAV, SPEECH_WAV_STEREO
from tests.support.gateway import ThreadedGateway, create_key
from tests.support.scripted_provider import ScriptedProvider, completed
from tests.support.vendor import wait_for_job

REPLAYED = "Idempotent-Replayed"


@dataclass
class Env:
    gateway: ThreadedGateway
    database_url: str
    client: httpx.Client

    def blobs(self) -> list[Path]:
        """Every file stored under STORAGE_DIR/jobs (audio, and any leftover part)."""
        root = self.gateway.settings.storage_dir / "jobs"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    def jobs(self, client: httpx.Client | None = None) -> list[str]:
        page = (client or self.client).get("/jobs", params={"limit": 100}).json()
        return [job["id"] for job in page["data"]]


@pytest.fixture
def env(database_url, make_settings, start_gateway) -> Iterator[Env]:
    """A gateway whose worker is off: jobs and their submit tasks stay as created."""
    gateway = start_gateway(make_settings(database_url, run_worker=False))
    with gateway.client(create_key(database_url, "acme")) as client:
        yield Env(gateway, database_url, client)


def sql(database_url: str, statement: str, **params: Any) -> list[Any]:
    """Run one statement on the gateway's database (from synchronous test code)."""

    async def run() -> list[Any]:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def post(
    client: httpx.Client,
    key: str | None,
    path: Path = SPEECH_WAV,
    filename: str | None = None,
    **fields: str,
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    files = {"file": (filename or path.name, path.read_bytes(), "audio/wav")}
    return client.post("/jobs", files=files, data=fields, headers=headers)


def multipart(boundary: str, audio: bytes | None, **fields: str) -> bytes:
    """A multipart body written by hand, to choose its boundary (the file as hello.wav)."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if audio is not None:
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="hello.wav"\r\nContent-Type: audio/wav\r\n\r\n'.encode()
            + audio
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def send_multipart(client: httpx.Client, key: str, boundary: str, body: Any) -> httpx.Response:
    return client.post(
        "/jobs",
        content=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Idempotency-Key": key,
        },
    )


def test_same_key_and_upload_answer_one_job_stored_once(env: Env):
    first = post(env.client, "order-42")
    assert first.status_code == 202, first.text
    assert REPLAYED not in first.headers
    again = post(env.client, "order-42")
    assert again.status_code == 202, again.text
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"] == f"/jobs/{first.json()['id']}"
    assert env.jobs() == [first.json()["id"]]
    # One audio blob (and no half-written one), one submit task: one vendor submit.
    assert env.blobs() == [env.gateway.settings.storage_dir / "jobs" / first.json()["id"] / "audio"]
    tasks = sql(env.database_url, "SELECT job_id, kind FROM tasks")
    assert tasks == [(first.json()["id"], "submit")]


def test_replay_answers_the_current_state_and_the_vendor_gets_one_submit(
    monkeypatch, database_url, make_settings, start_gateway
):
    ScriptedProvider.reset()
    spec = registry.ProviderSpec(("LOCAL_PROVIDER",), "tests.support.scripted_provider:build")
    monkeypatch.setitem(registry.SPECS, "scripted", spec)
    ScriptedProvider.submits.append(completed())
    gateway = start_gateway(make_settings(database_url))
    with gateway.client(create_key(database_url, "acme")) as client:
        first = post(client, "k1", provider="scripted")
        assert first.status_code == 202 and first.json()["status"] == "queued"
        assert wait_for_job(client, first.json()["id"])["status"] == "completed"
        again = post(client, "k1", provider="scripted")
        assert again.status_code == 202 and again.headers[REPLAYED] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["status"] == "completed"  # the job as it is now
        time.sleep(1.0)  # the worker polls every 0.5 s: a second job would be submitted by now
        assert [job["id"] for job in client.get("/jobs").json()["data"]] == [first.json()["id"]]
    assert [name for name, _ in ScriptedProvider.calls if name == "submit"] == ["submit"]


@pytest.mark.parametrize(
    ("path", "filename", "fields"),
    [
        (SPEECH_WAV_STEREO, None, {}),  # another file
        (SPEECH_WAV, "other-name.wav", {}),  # the same bytes under another name
        (SPEECH_WAV, None, {"language": "en"}),
        (SPEECH_WAV, None, {"options": '{"word_timestamps": false}'}),
        (SPEECH_WAV, None, {"metadata": '{"order": "43"}'}),
        (SPEECH_WAV, None, {"provider": "openai"}),  # even one that is not enabled
    ],
)
def test_same_key_with_a_different_request_is_422(env: Env, path, filename, fields):
    first = post(env.client, "k-diff", metadata='{"order": "42"}')
    assert first.status_code == 202, first.text
    fields = {"metadata": '{"order": "42"}', **fields}
    answer = post(env.client, "k-diff", path, filename, **fields)
    body = assert_problem(answer, 422, "Idempotency-Key", "different request")
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert env.jobs() == [first.json()["id"]]
    assert len(env.blobs()) == 1  # the refused upload was not stored


def test_the_fingerprint_ignores_the_encoding(env: Env):
    audio = SPEECH_WAV.read_bytes()
    fields = {
        "provider": "local",
        "options": '{"a": 1}',
        "metadata": '{"x": {"p": 1, "q": [1, 2]}, "y": "2"}',
    }
    refused = send_multipart(env.client, "enc", "one", multipart("one", audio, **fields))
    # `local` takes no options: a 422, and the key is free again for the corrected request.
    assert_problem(refused, 422, "options")
    fields["options"] = "{}"
    first = send_multipart(env.client, "enc", "one", multipart("one", audio, **fields))
    assert first.status_code == 202 and REPLAYED not in first.headers
    # Another boundary, the fields in another order, the JSON keys in another order
    # and spacing, and the default provider left out: the same request.
    same = {"metadata": '{"y":"2","x":{"q":[1,2],"p":1}}', "options": " { } "}
    again = send_multipart(env.client, "enc", "two-2", multipart("two-2", audio, **same))
    assert again.status_code == 202, again.text
    assert again.headers[REPLAYED] == "true" and again.json()["id"] == first.json()["id"]


def test_json_requests_with_a_source_url(env: Env):
    body = {"source_url": "http://127.0.0.1:9/call.wav", "metadata": {"a": 1, "b": 2}}
    headers = {"Idempotency-Key": "from-url"}
    first = env.client.post("/jobs", json=body, headers=headers)
    assert first.status_code == 202, first.text
    reordered = json.dumps({"metadata": {"b": 2, "a": 1}, "source_url": body["source_url"]})
    again = env.client.post(
        "/jobs",
        content=reordered,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.status_code == 202 and again.headers[REPLAYED] == "true"
    assert again.json()["id"] == first.json()["id"]
    # The same content as a multipart form is the same request.
    form = multipart("f", None, source_url=body["source_url"], metadata='{"b":2,"a":1}')
    as_form = send_multipart(env.client, "from-url", "f", form)
    assert as_form.status_code == 202 and as_form.headers[REPLAYED] == "true"
    assert as_form.json()["id"] == first.json()["id"]
    other_url = env.client.post(
        "/jobs", json={**body, "source_url": "http://127.0.0.1:9/other.wav"}, headers=headers
    )
    assert_problem(other_url, 422, "different request")
    assert env.jobs() == [first.json()["id"]]


def test_keys_are_per_client(env: Env):
    other_key = create_key(env.database_url, "other")
    mine = post(env.client, "shared-key")
    with env.gateway.client(other_key) as other:
        theirs = post(other, "shared-key")
        assert theirs.status_code == 202 and REPLAYED not in theirs.headers
        assert theirs.json()["id"] != mine.json()["id"]
        assert env.jobs(other) == [theirs.json()["id"]]
    assert env.jobs() == [mine.json()["id"]]


def test_the_key_is_free_again_once_its_job_is_deleted(env: Env):
    first = post(env.client, "del")
    assert env.client.delete(f"/jobs/{first.json()['id']}").status_code == 204
    again = post(env.client, "del")
    assert again.status_code == 202 and REPLAYED not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert env.jobs() == [again.json()["id"]]


def test_a_refused_request_frees_its_key_for_the_corrected_retry(env: Env):
    assert_problem(post(env.client, "fix-me", provider="no-such-vendor"), 422, "no-such-vendor")
    assert_problem(post(env.client, "fix-me", language="not a tag"), 422, "language")
    pdf = env.client.post(
        "/jobs",
        files={"file": ("a.wav", b"%PDF-1.7 not audio at all", "audio/wav")},
        headers={"Idempotency-Key": "fix-me"},
    )
    assert_problem(pdf, 415)
    fixed = post(env.client, "fix-me")
    assert fixed.status_code == 202 and REPLAYED not in fixed.headers
    assert env.jobs() == [fixed.json()["id"]]
    assert len(env.blobs()) == 1
    assert sql(env.database_url, "SELECT count(*) FROM idempotency_keys") == [(1,)]


def test_a_client_that_hangs_up_mid_upload_frees_its_key(env: Env):
    audio = SPEECH_WAV.read_bytes()
    body = multipart("cut", audio)
    host, port = env.gateway.base_url.removeprefix("http://").split(":")
    head = (
        f"POST /jobs HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {env.client.headers['Authorization']}\r\n"
        "Idempotency-Key: hang-up\r\n"
        "Content-Type: multipart/form-data; boundary=cut\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)  # the gateway has claimed the key and is reading the file
    deadline = time.monotonic() + 10
    while True:
        retry = post(env.client, "hang-up")
        if retry.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert retry.status_code == 202, retry.text
    assert REPLAYED not in retry.headers
    assert env.jobs() == [retry.json()["id"]]
    assert len(env.blobs()) == 1  # nothing of the cut upload is left


def test_concurrent_requests_with_one_key_make_one_job(env: Env):
    audio = SPEECH_WAV.read_bytes()
    answers: list[httpx.Response] = []
    start = threading.Barrier(20)

    def send() -> None:
        with env.gateway.client(api_key(env.client)) as client:
            start.wait()
            answers.append(
                client.post(
                    "/jobs",
                    files={"file": ("hello.wav", audio, "audio/wav")},
                    headers={"Idempotency-Key": "burst"},
                )
            )

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 20
    (job_id,) = env.jobs()
    created = [a for a in answers if a.status_code == 202 and REPLAYED not in a.headers]
    assert len(created) == 1
    for answer in answers:
        if answer.status_code == 202:
            assert answer.json()["id"] == job_id
        else:
            assert_problem(answer, 409, "in progress")
            assert answer.headers["Retry-After"] == "1"
    assert len(env.blobs()) == 1
    assert sql(env.database_url, "SELECT count(*) FROM tasks") == [(1,)]


def test_a_repeat_waits_for_the_first_request_to_finish(env: Env):
    audio = SPEECH_WAV.read_bytes()
    body = multipart("slow", audio)
    first: dict[str, httpx.Response] = {}

    def slow_body() -> Iterator[bytes]:
        yield body[:1000]
        time.sleep(1.5)  # the repeat arrives while the first is still uploading
        yield body[1000:]

    def send_first() -> None:
        with env.gateway.client(api_key(env.client)) as client:
            first["answer"] = send_multipart(client, "wait", "slow", slow_body())

    thread = threading.Thread(target=send_first)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    again = post(env.client, "wait", filename="hello.wav")
    thread.join(timeout=30)
    assert first["answer"].status_code == 202, first["answer"].text
    assert again.status_code == 202, again.text
    assert again.headers[REPLAYED] == "true"
    assert again.json()["id"] == first["answer"].json()["id"]
    assert 0.5 < time.monotonic() - started < 8  # it waited, not the full 10 s


def test_an_unfinished_claim_is_409_then_taken_over_once_abandoned(env: Env, monkeypatch):
    monkeypatch.setattr(idempotency, "_REPLAY_WAIT_SECONDS", 1.0)
    (client_id,) = sql(env.database_url, "SELECT id FROM clients")[0]
    # As a request that died with its process leaves it: claimed, never finished.
    sql(
        env.database_url,
        "INSERT INTO idempotency_keys (client_id, key, request_hash, job_id, created_at) "
        "VALUES (:c, 'orphan', :h, NULL, :t)",
        c=client_id,
        h=uuid.uuid4().hex * 2,
        t=_ago(env, seconds=30),
    )
    started = time.monotonic()
    busy = post(env.client, "orphan")
    assert_problem(busy, 409, "Idempotency-Key", "in progress")
    assert busy.headers["Retry-After"] == "1"
    assert 0.9 < time.monotonic() - started < 5
    assert env.jobs() == [] and env.blobs() == []
    sql(
        env.database_url,
        "UPDATE idempotency_keys SET created_at = :t WHERE key = 'orphan'",
        t=_ago(env, seconds=idempotency.ABANDONED_AFTER.total_seconds() + 10),
    )
    taken = post(env.client, "orphan")
    assert taken.status_code == 202 and REPLAYED not in taken.headers
    assert post(env.client, "orphan").headers[REPLAYED] == "true"


def test_a_key_older_than_24_hours_counts_as_absent(env: Env):
    first = post(env.client, "old")
    sql(
        env.database_url,
        "UPDATE idempotency_keys SET created_at = :t WHERE key = 'old'",
        t=_ago(env, seconds=idempotency.IDEMPOTENCY_TTL.total_seconds() + 60),
    )
    # Even with another request: the old one is forgotten.
    again = post(env.client, "old", metadata='{"new": true}')
    assert again.status_code == 202 and REPLAYED not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert sorted(env.jobs()) == sorted([first.json()["id"], again.json()["id"]])
    assert post(env.client, "old", metadata='{"new": true}').headers[REPLAYED] == "true"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"", "empty"),
        (b"k" * 256, "too long"),
        (b"k" * 300, "too long"),
        ("clé".encode(), "not ASCII"),
        (b"a\tb", "not printable"),
    ],
)
def test_an_invalid_header_is_422_naming_it(env: Env, value: bytes, why: str):
    answer = env.client.post(
        "/jobs",
        files={"file": ("hello.wav", SPEECH_WAV.read_bytes(), "audio/wav")},
        headers=[(b"Idempotency-Key", value)],
    )
    body = assert_problem(answer, 422, "Idempotency-Key", "printable ASCII")
    assert body["errors"] == [
        {
            "field": "Idempotency-Key",
            "message": "must be 1 to 255 printable ASCII characters",
            "type": "header",
        }
    ], why
    assert env.jobs() == [] and env.blobs() == []


def test_the_longest_valid_key_works(env: Env):
    key = "K-" + "x" * 249 + " ~!@"  # 255 characters
    assert post(env.client, key).status_code == 202
    assert post(env.client, key).headers[REPLAYED] == "true"


def api_key(client: httpx.Client) -> str:
    return client.headers["Authorization"].removeprefix("Bearer ")


def _ago(env: Env, *, seconds: float) -> datetime | str:
    """A time ``seconds`` ago, as the backend stores UTC times."""
    moment = datetime.now(UTC) - timedelta(seconds=seconds)
    if env.database_url.startswith("sqlite"):
        # SQLAlchemy's text form, without an offset (app.db.UTCDateTime)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment
