"""Small helpers shared by the provider tests.

For the adapter tests: the recorded vendor payloads, and the SubmitRequest an
adapter is handed. For the end-to-end tests: a fake vendor per test, gateways
pointed at it, and jobs created through them and waited for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import pytest

from app.providers.base import NoOptions, SubmitRequest
from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import ThreadedGateway
from tests.support.static_server import StaticServer
from tests.support.vendor import FakeVendor, wait_for_job

PAYLOADS = Path(__file__).parent / "payloads"


# --- the adapter tests ---------------------------------------------------------------


def recorded(vendor: str, name: str) -> Any:
    """A file of payloads/<vendor>/: JSON parsed, anything else (subtitles, text) as text."""
    text = (PAYLOADS / vendor / name).read_text()
    return json.loads(text) if name.endswith(".json") else text


def stored_upload(folder: Path | None, name: str, data: bytes) -> Path | None:
    """``data`` as the file ``name`` in ``folder``, where the gateway would keep an upload;
    None without a folder (a job from a link has no upload)."""
    if folder is None:
        return None
    path = folder / name
    path.write_bytes(data)
    return path


def submit_request_for(audio: Path | None, **fields: Any) -> SubmitRequest:
    """What the worker hands an adapter for job_1: ``audio`` as a WAV upload, or no audio
    (given None, as for a link the vendor fetches). ``fields`` set any other field."""
    values: dict[str, Any] = {
        "job_id": "job_1",
        "audio_path": audio,
        "audio_format": "wav" if audio else None,
        "filename": audio.name if audio else None,
        "content_type": "audio/wav" if audio else None,
        "source_url": None,
        "language": None,
        "options": NoOptions(),
    }
    return SubmitRequest(**(values | fields))


# --- the end-to-end tests ------------------------------------------------------------

Started = tuple[ThreadedGateway, str]  # a running gateway and an API key for it
Start = Callable[..., Started]  # settings by environment name -> a gateway
FakeT = TypeVar("FakeT", bound=FakeVendor)


def fake_vendor_fixture(kind: Callable[[], FakeT]) -> Any:
    """A fixture: a fresh ``kind()`` serving on loopback for each test, stopped after it.

    Assign it to the name tests ask for: ``fake = fake_vendor_fixture(FakeDaglo)``.
    """

    @pytest.fixture
    def fake() -> Iterator[FakeT]:
        with kind() as vendor:
            yield vendor

    return fake


def gateway_starter(vendor_gateway: Start, **defaults: object) -> Start:
    """``vendor_gateway`` with these settings, unless a test gives its own for them."""

    def start(**settings: object) -> Started:
        return vendor_gateway(**(defaults | settings))

    return start


def create_job(client: httpx.Client, provider: str, **fields: Any) -> dict[str, Any]:
    """A job for ``provider``, asserted accepted (202): the test speech uploaded, or,
    given ``source_url``, a JSON request for that link. An upload sends the fields given
    as dicts or lists (options, metadata) as JSON text."""
    if "source_url" in fields:
        response = client.post("/jobs", json={"provider": provider, **fields})
    else:
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        response = upload(client, SPEECH_WAV, provider=provider, **form)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def finished_job(client: httpx.Client, provider: str, **fields: Any) -> dict[str, Any]:
    """A job created as ``create_job`` does, once it has ended."""
    return wait_for_job(client, create_job(client, provider, **fields)["id"])


def run_job(started: Started, provider: str, **fields: Any) -> dict[str, Any]:
    """``finished_job`` on this gateway, for a test that needs the gateway for nothing else."""
    gateway, key = started
    with gateway.client(key) as client:
        return finished_job(client, provider, **fields)


@contextmanager
def serving(
    body: bytes | None = None, content_type: str = "audio/wav", status: int = 200
) -> Iterator[StaticServer]:
    """A loopback server answering every GET with ``body`` (the test speech if None)."""
    server = StaticServer(SPEECH_WAV.read_bytes() if body is None else body, content_type, status)
    try:
        yield server
    finally:
        server.close()


def assert_too_large_for(client: httpx.Client, audio: Path, provider: str, *words: str) -> None:
    """``audio`` is a 413 naming ``words`` for ``provider``, and for it as a fallback
    (the job could end up there), and no job is made."""
    assert_problem(upload(client, audio, provider=provider), 413, f"'{provider}'", *words)
    as_fallback = upload(client, audio, provider="local", fallback_providers=f'["{provider}"]')
    assert_problem(as_fallback, 413, f"fallback provider '{provider}'")
    assert client.get("/jobs").json()["data"] == []


def wait_until(condition: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


class Timed(Protocol):
    times: list[tuple[str, float]]  # (operation, time.monotonic()) of each call


def call_times(fake: Timed, operation: str) -> list[float]:
    """When the fake was called for ``operation``, in order."""
    return [at for op, at in fake.times if op == operation]


def tampered(signature: str) -> str:
    """``signature`` with its last character changed: always a different value,
    unlike setting it to a fixed character, which matches one time in 64."""
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")
