"""No secret in any answer, log line, webhook or error message of a full run.

A real ``stt-gateway serve`` process logs at DEBUG, with distinctive secrets:
a client's API key and webhook secret, three vendors' keys (fake Daglo,
Klangio and OpenAI on loopback), the signing secret, and the tokens of the
callback links it makes (PUBLIC_BASE_URL is set). The run: jobs that
complete, with signed webhooks; vendors that refuse and echo the credentials
the gateway sent them back in their error bodies (some do); wrong API keys; a
forged vendor callback. Then every log line of the process, every answer the
test received (status, headers, body) and every webhook delivered is searched
for each secret. ``stt-gateway keys create`` prints the key once by design, so
the client is made through the library here.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tests.conftest import SPEECH_WAV
from tests.fakes.daglo import FakeDaglo
from tests.fakes.klangio import FakeKlangio
from tests.fakes.openai import FakeOpenAI
from tests.hostile.helpers import wav
from tests.support.gateway import GatewayProcess, create_client, gateway_env
from tests.support.receiver import WebhookReceiver
from tests.support.vendor import wait_for_job


def _secret(name: str) -> str:
    return f"{name}-SECRET-{uuid.uuid4().hex}"


DAGLO_KEY = _secret("daglo")
KLANGIO_KEY = _secret("klangio")
OPENAI_KEY = "sk-" + _secret("openai")
SIGNING_SECRET = _secret("signing")


class EchoingDaglo(FakeDaglo):
    """Refuses submits, when told, with the Authorization header it was sent in the body."""

    echo = False

    async def _begin(self, operation: str, request: Request) -> Response | None:
        answer = await super()._begin(operation, request)
        if answer is None and self.echo and operation == "submit":
            seen = {"authorization": request.headers.get("authorization")}
            return JSONResponse({"error": "Invalid format.", "request": seen}, status_code=400)
        return answer


class EchoingKlangio(FakeKlangio):
    """Refuses submits, when told, naming the key header it was sent in the detail."""

    echo = False

    async def _begin(self, operation: str, request: Request) -> Response | None:
        answer = await super()._begin(operation, request)
        if answer is None and self.echo and operation == "submit":
            detail = f"bad input for kl-api-key={request.headers.get('kl-api-key')}"
            return JSONResponse({"detail": detail}, status_code=422)
        return answer


class EchoingOpenAI(FakeOpenAI):
    """Refuses, when told, with a plain-text body that repeats the request's headers."""

    echo = False

    async def transcribe(self, request: Request) -> Response:
        if self.echo:
            await self.record("transcribe", request)
            seen = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
            return PlainTextResponse(f"403 Forbidden\n{seen}", status_code=403)
        return await super().transcribe(request)


@dataclass
class Run:
    """What the test saw of the gateway: every answer, in full."""

    answers: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)

    def record(self, response: httpx.Response) -> None:
        response.read()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.answers.append(f"{response.status_code}\n{headers}\n\n{response.text}")


@dataclass
class Vendors:
    daglo: EchoingDaglo
    klangio: EchoingKlangio
    openai: EchoingOpenAI

    def all(self) -> list[Any]:
        return [self.daglo, self.klangio, self.openai]


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    started = Vendors(
        EchoingDaglo(DAGLO_KEY), EchoingKlangio(KLANGIO_KEY), EchoingOpenAI(OPENAI_KEY)
    )
    for vendor in started.all():
        vendor.start()
    started.klangio.steps = []  # done on the first status look
    started.klangio.callback_delay = 0.05
    yield started
    for vendor in started.all():
        vendor.stop()


def _callback_tokens(vendors: Vendors) -> set[str]:
    """The ``sig`` of every signed link the gateway gave a vendor."""
    seen = ""
    for vendor in vendors.all():
        for request in vendor.requests:
            seen += f"{request.query} {request.body!r} {request.form} {request.json}"
    return set(re.findall(r"sig=([A-Za-z0-9_\-]{16,})", seen))


def _where(secret: str, text: str) -> str:
    at = text.find(secret)
    return text[max(0, at - 300) : at + len(secret) + 100]


def test_no_secret_in_any_answer_log_line_or_webhook(
    postgres_url: str, make_settings: Any, tmp_path: Path, vendors: Vendors
) -> None:
    client = create_client(postgres_url, "acme")
    receiver = WebhookReceiver(client.webhook_secret).start()
    log_path = tmp_path / "gateway.log"
    env = gateway_env(
        make_settings(postgres_url),
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
        SIGNING_SECRET=SIGNING_SECRET,
        DAGLO_API_KEY=DAGLO_KEY,
        DAGLO_BASE_URL=vendors.daglo.base_url,
        KLANGIO_API_KEY=KLANGIO_KEY,
        KLANGIO_BASE_URL=vendors.klangio.base_url,
        OPENAI_API_KEY=OPENAI_KEY,
        OPENAI_BASE_URL=vendors.openai.base_url + "/v1",
        WEBHOOK_TIMEOUT_SECONDS="5",
    )
    gateway = GatewayProcess(env, log_path)
    env["PUBLIC_BASE_URL"] = gateway.base_url  # callbacks with signed links
    run = Run()
    try:
        gateway.start()
        _drive(gateway.base_url, client.api_key, client.webhook_secret, vendors, receiver, run)
    finally:
        gateway.terminate()
        receiver.stop()
    logs = log_path.read_text()

    # The search means something only if the logs are there and are about this run.
    lines = logs.splitlines()
    assert len(lines) > 50, logs
    assert sum('"level": "DEBUG"' in line for line in lines) > 0, "not logged at DEBUG"
    for job_id in run.job_ids:
        assert job_id in logs, f"the logs never mention {job_id}"
    tokens = _callback_tokens(vendors)
    assert len(tokens) >= 2, "no signed callback link was made"
    webhooks = [f"{r.headers}\n{r.body.decode()}" for r in receiver.received]
    assert webhooks and all(r.verified_with == [0] for r in receiver.received)

    secrets = {
        "client API key": client.api_key,
        "webhook secret": client.webhook_secret,
        "webhook secret key": client.webhook_secret.removeprefix("whsec_"),
        "Daglo key": DAGLO_KEY,
        "Klangio key": KLANGIO_KEY,
        "OpenAI key": OPENAI_KEY,
        "signing secret": SIGNING_SECRET,
        **{f"callback token {i}": token for i, token in enumerate(sorted(tokens))},
    }
    places = {"the gateway's logs": logs, **{f"webhook {i}": w for i, w in enumerate(webhooks)}}
    places |= {f"answer {i}": answer for i, answer in enumerate(run.answers)}
    leaks = [
        f"{name} in {place}: …{_where(secret, text)}…"
        for name, secret in secrets.items()
        for place, text in places.items()
        if secret in text
    ]
    assert not leaks, "\n\n".join(leaks)


def _drive(
    base_url: str,
    api_key: str,
    webhook_secret: str,
    vendors: Vendors,
    receiver: WebhookReceiver,
    run: Run,
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(
        base_url=base_url, headers=auth, timeout=60, event_hooks={"response": [run.record]}
    ) as http:

        def create(provider: str, audio: bytes = SPEECH_WAV.read_bytes(), **fields: str) -> str:
            files = {"file": ("speech.wav", audio, "audio/wav")}
            data = {"provider": provider, "callback_url": receiver.url, **fields}
            response = http.post("/jobs", files=files, data=data)
            assert response.status_code == 202, response.text
            job_id = str(response.json()["id"])
            run.job_ids.append(job_id)
            return job_id

        # Jobs that complete, each with a signed webhook.
        done = [
            create("local", wav(0.5)),
            create("daglo"),
            create("klangio", options='{"model": "piano", "outputs": ["midi"]}'),
            create("openai"),
        ]
        for job_id in done:
            assert wait_for_job(http, job_id)["status"] == "completed"
            http.get(f"/jobs/{job_id}/transcript", params={"format": "srt"})
            http.get(f"/jobs/{job_id}/deliveries")

        # Vendors that refuse and echo the credentials they were sent.
        for vendor in vendors.all():
            vendor.echo = True
        refused = [
            create("daglo"),
            create("klangio", options='{"model": "piano", "outputs": ["midi"]}'),
            create("openai"),
        ]
        for job_id in refused:
            job = wait_for_job(http, job_id)
            assert job["status"] == "failed" and job["error"]["provider_detail"], job
        sync = http.post(
            "/v1/audio/transcriptions",
            files={"file": ("speech.wav", SPEECH_WAV.read_bytes(), "audio/wav")},
            data={"model": "openai/whisper-1"},
        )
        assert sync.status_code >= 400, sync.text
        run.job_ids.append(sync.headers.get("x-job-id") or "")
        for vendor in vendors.all():
            vendor.echo = False
        http.get("/jobs", params={"limit": 100})

        # Wrong keys, among them other secrets: refused without being repeated.
        for wrong in (f"{api_key}x", webhook_secret, DAGLO_KEY, f"Basic {api_key}"):
            value = wrong if wrong.startswith("Basic ") else f"Bearer {wrong}"
            assert http.get("/jobs", headers={"Authorization": value}).status_code == 401
        # A forged vendor callback, and a link whose signature is another secret.
        job_id = done[1]
        for sig in ("forged", SIGNING_SECRET):
            http.post(f"/callbacks/daglo/{job_id}", params={"expires": 9999999999, "sig": sig})
        http.get(f"/media/{job_id}", params={"expires": 9999999999, "sig": "forged"})
        for path in ("/providers", "/metrics", "/healthz", "/readyz", "/openapi.json"):
            http.get(path)

        deadline = time.monotonic() + 20
        while len(receiver.received) < len(done) + len(refused):
            assert time.monotonic() < deadline, "not every webhook came"
            time.sleep(0.05)
    run.job_ids = [job_id for job_id in run.job_ids if job_id]
