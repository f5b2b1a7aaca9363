"""Schemathesis against the served OpenAPI document: every operation, with a valid key.

A real gateway (threaded uvicorn, PostgreSQL, worker on, the local engine) is
seeded with finished jobs, so generated requests reach real jobs, transcripts
and deliveries, not only 404s. Hooks put a real WAV in half the uploads and
point every URL a request names at loopback servers: nothing leaves the machine.

Checks: no 5xx; every answer (status code, content type, headers, body) as the
document declares it; a 405 lists the methods the path takes. Off:
``negative_data_rejection`` and ``positive_data_acceptance``. The gateway reads
its multipart forms itself and sniffs the file's bytes, so a "schema-valid" PNG
as ``file`` or a random ``cursor`` is rightly refused, and a file part sent as
plain text is refused the same way (415) rather than taken, as FastAPI's own
form parsing would; what remains are deliberate leniencies (a Unix time for a
date-time query parameter, as pydantic reads it).

The document is built from the app at import, as pytest collects one test per
operation; the module's gateway checks that it serves the very same document.
(``schemathesis.pytest.from_fixture`` would load it from the gateway itself, but
schemathesis 4.32 breaks on pytest 9.2 there: it sets ``Function._nodeid``.)
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st

from app.config import Settings
from app.main import create_app
from tests.api.helpers import WAV_UNDECODABLE
from tests.conftest import SPEECH_WAV
from tests.hostile.helpers import wav
from tests.support.gateway import create_client, gateway_settings, start_threaded
from tests.support.postgres import clone_database, drop_database, sqlalchemy_url
from tests.support.receiver import WebhookReceiver
from tests.support.static_server import StaticServer
from tests.support.vendor import wait_for_job

# Per operation, in each of the examples, coverage and fuzzing phases; the same cases on
# every run. SCHEMATHESIS_MAX_EXAMPLES=500 makes a deeper run with fresh random cases.
DEEPER = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES")
MAX_EXAMPLES = int(DEEPER or 15)
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
]
TINY_WAV = wav(0.25)
DOCUMENT = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


@dataclass
class Seeded:
    """The module's gateway, its finished jobs, and how many requests each operation got."""

    base_url: str = ""
    api_key: str = ""
    jobs: list[str] = field(default_factory=list)  # terminal jobs, for every per-job operation
    deletable: list[str] = field(default_factory=list)  # the jobs DELETE is pointed at
    delivery_ids: list[str] = field(default_factory=list)
    audio_url: str = ""
    hook_url: str = ""
    requests: Counter[str] = field(default_factory=Counter)


# Filled by the `seeded` fixture; the hooks below read it while cases are drawn.
SEEDED = Seeded()


def _seed(http: httpx.Client, hook_url: str) -> tuple[list[str], list[str], list[str]]:
    def create(audio: bytes, **fields: str) -> str:
        response = http.post("/jobs", files={"file": ("a.wav", audio, "audio/wav")}, data=fields)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    completed = create(SPEECH_WAV.read_bytes(), language="en", callback_url=hook_url)
    failed = create(WAV_UNDECODABLE)  # the engine fails a WAV it cannot decode
    silent = create(TINY_WAV)
    deletable = [create(TINY_WAV) for _ in range(3)]
    jobs = [completed, failed, silent]
    for job_id in jobs + deletable:
        assert wait_for_job(http, job_id)["status"] in ("completed", "failed")
    deadline = time.monotonic() + 20
    while not (deliveries := http.get(f"/jobs/{completed}/deliveries").json()["data"]):
        assert time.monotonic() < deadline, "the webhook of the completed job was not sent"
        time.sleep(0.1)
    return jobs, deletable, [d["id"] for d in deliveries]


@pytest.fixture(scope="module")
def seeded(
    postgres_admin_dsn: str, postgres_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """One seeded gateway for the module (each operation is a test of its own)."""
    database = clone_database(postgres_admin_dsn, postgres_template)
    database_url = sqlalchemy_url(postgres_admin_dsn, database)
    storage: Path = tmp_path_factory.mktemp("blobs")
    audio = StaticServer(TINY_WAV)
    client = create_client(database_url, "acme")
    receiver = WebhookReceiver(client.webhook_secret).start()
    gateway = start_threaded(gateway_settings(database_url, storage))
    try:
        with gateway.client(client.api_key) as http:
            assert http.get("/openapi.json").json() == DOCUMENT
            SEEDED.jobs, SEEDED.deletable, SEEDED.delivery_ids = _seed(http, receiver.url)
        SEEDED.base_url, SEEDED.api_key = gateway.base_url, client.api_key
        SEEDED.audio_url, SEEDED.hook_url = audio.url, receiver.url
        SEEDED.requests.clear()
        yield SEEDED
        total = sum(SEEDED.requests.values())
        print(f"\nschemathesis: {len(SEEDED.requests)} operations, {total} requests")
        for label, count in sorted(SEEDED.requests.items()):
            print(f"  {count:4d}  {label}")
    finally:
        gateway.stop()
        receiver.stop()
        audio.close()
        drop_database(postgres_admin_dsn, database)


def _loopback(value: Any, target: str) -> Any:
    """An http(s) URL re-pointed at a loopback server (its path kept); anything else as is."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    return parts._replace(scheme="http", netloc=urlsplit(target).netloc).geturl()


schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.update(request_timeout=30)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=not DEEPER)
schema.config.checks.update(included_check_names=CHECKS)


@schema.hook
def flatmap_path_parameters(ctx: Any, params: dict[str, Any]) -> Any:
    """Half the time a real job (and delivery) of this client instead of a made-up id.

    The schema's own examples are drawn while pytest collects, before any job exists."""
    if not params or "job_id" not in params or not SEEDED.jobs:
        return st.just(params)
    ids = SEEDED.deletable if ctx.operation.method.lower() == "delete" else SEEDED.jobs
    real = {"job_id": st.sampled_from(ids)}
    if "delivery_id" in params:
        real["delivery_id"] = st.sampled_from(SEEDED.delivery_ids)
    return st.one_of(st.just(params), st.fixed_dictionaries(real).map(lambda r: {**params, **r}))


@schema.hook
def flatmap_body(ctx: Any, body: Any) -> Any:
    """Half the uploads carry real audio (the other half whatever was generated)."""
    if not isinstance(body, dict) or "file" not in body:
        return st.just(body)
    return st.sampled_from([body, {**body, "file": TINY_WAV}])


def _keep_on_loopback(case: Any, seeded: Seeded) -> None:
    """Every URL the request names points at this test's loopback servers.

    Done at call time: the schema's own examples are drawn before the servers exist."""
    if isinstance(case.body, dict):
        body = dict(case.body)
        if "source_url" in body:
            body["source_url"] = _loopback(body["source_url"], seeded.audio_url)
        if "callback_url" in body:
            body["callback_url"] = _loopback(body["callback_url"], seeded.hook_url)
        case.body = body


@schema.parametrize()
def test_every_operation_answers_as_documented(case: Any, seeded: Seeded) -> None:
    seeded.requests[case.operation.label] += 1
    _keep_on_loopback(case, seeded)
    case.call_and_validate(
        base_url=seeded.base_url, headers={"Authorization": f"Bearer {seeded.api_key}"}
    )


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/jobs", "GET, POST"), ("/jobs/job_x", "GET, DELETE"), ("/jobs/job_x/cancel", "POST")],
)
def test_a_405_names_every_method_of_the_path(seeded: Seeded, path: str, allowed: str) -> None:
    """Found by schemathesis' unsupported_method check: Starlette named only the first route's."""
    headers = {"Authorization": f"Bearer {seeded.api_key}"}
    response = httpx.request("PUT", seeded.base_url + path, headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == "application/problem+json"
