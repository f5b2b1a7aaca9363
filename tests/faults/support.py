"""What the fault tests share: uploads that tell jobs apart at the vendor, the submit
ledger as the database has it, and the vendors' count of paid work."""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.daglo import FakeDaglo
from tests.support.gateway import GatewayProcess
from tests.support.vendor import TERMINAL

# Webhook retries 3 s apart at most, yet for 30 s: long enough to outlast a kill and
# a restart. A delivery that ran out of attempts while the gateway was down would
# prove nothing.
WEBHOOK_RETRY_SCHEDULE = "[0.5, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3]"


def unique_wav(index: int) -> bytes:
    """0.1 s of 16 kHz mono audio whose samples spell ``index``: one SHA-256 per job."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(struct.pack("<I", index) * 800)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create_job(http: httpx.Client, index: int, **fields: str) -> dict[str, Any]:
    files = {"file": (f"job-{index}.wav", unique_wav(index), "audio/wav")}
    response = http.post("/jobs", files=files, data=fields)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def jobs_by_id(http: httpx.Client) -> dict[str, dict[str, Any]]:
    """The client's newest 100 jobs (every job of these tests), by id."""
    response = http.get("/jobs", params={"limit": 100})
    assert response.status_code == 200, response.text
    return {job["id"]: job for job in response.json()["data"]}


def wait_until(
    what: str, condition: Callable[[], bool], timeout: float, every: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting until {what}"
        time.sleep(every)


def wait_all_terminal(http: httpx.Client, ids: Iterable[str], timeout: float) -> dict[str, dict]:
    wanted = set(ids)
    jobs: dict[str, dict[str, Any]] = {}

    def all_terminal() -> bool:
        nonlocal jobs
        jobs = {i: j for i, j in jobs_by_id(http).items() if i in wanted}
        return len(jobs) == len(wanted) and all(j["status"] in TERMINAL for j in jobs.values())

    try:
        wait_until("every job is terminal", all_terminal, timeout, every=0.5)
    except AssertionError:
        left = Counter(j["status"] for j in jobs.values())
        raise AssertionError(f"not every job is terminal after {timeout} s: {left}") from None
    return jobs


def restarted(
    process: GatewayProcess, log_path: Path, env: dict[str, str] | None = None
) -> GatewayProcess:
    """A new process like ``process`` (same port, same arguments), started."""
    again = GatewayProcess(env or process.env, log_path, *process.args, port=process.port)
    return again.start()


def _plain_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


async def _fetch(database_url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_plain_dsn(database_url))
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def ledger(database_url: str) -> dict[str, list[str | None]]:
    """job id -> the outcomes of its submits, oldest first (None: still open)."""
    rows = asyncio.run(
        _fetch(database_url, "SELECT job_id, outcome FROM provider_submissions ORDER BY id")
    )
    outcomes: dict[str, list[str | None]] = {}
    for row in rows:
        outcomes.setdefault(row["job_id"], []).append(row["outcome"])
    return outcomes


def accepted_audio(fake: Any) -> Counter[str]:
    """SHA-256 of the audio of every job the fake vendor took (and would bill)."""
    return Counter(sha256(job.audio) for job in fake.jobs.values())


def submitted_audio(fake: Any) -> Counter[str]:
    """SHA-256 of the audio of every submit the fake received, taken or refused."""
    counts: Counter[str] = Counter()
    for call in fake.calls("submit"):
        audio = call.form.get("file") or call.form.get("audio")
        if isinstance(audio, bytes):
            counts[sha256(audio)] += 1
    return counts


class HoldingDaglo(FakeDaglo):
    """Takes the first ``hold`` submits in (body read and recorded) and answers them
    only once ``released``: until then the gateway waits for the vendor's answer."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = 0
        self.released = False

    async def _begin(self, operation: str, request: Request) -> Response | None:
        answer = await super()._begin(operation, request)
        if operation == "submit" and self.hold > 0:
            self.hold -= 1
            while not self.released:
                await asyncio.sleep(0.05)
        return answer
