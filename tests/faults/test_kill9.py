"""kill -9 with 100 jobs in every state, then a restart: no job lost, no vendor paid
twice, every client webhook delivered at least once.

At the kill, 25 jobs of each kind are in a known state (checked, not hoped for):

    delivered   daglo    completed, webhook delivered
    queued      aimlapi  queued: the vendor answers every submit 503 + Retry-After 5 s
    unsent      daglo    completed, webhook pending (the receiver answers 500)
    at_vendor   klangio  processing: the fake vendor holds the result until released

After the kill the vendors and the receiver are well again.

Then either the whole gateway or a lone worker (beside `serve --no-worker`) is
killed with SIGKILL and a new one started. Every job must end `completed`, except
any whose submit was cut off while the vendor had it (`in_doubt` in the submit
ledger): such a job ends `failed` with `submit_interrupted` and is not sent again.
No vendor may take a job twice (the fakes count the SHA-256 of each upload).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.aimlapi import FakeAimlApi
from tests.fakes.daglo import FakeDaglo
from tests.fakes.klangio import FakeKlangio
from tests.faults.support import (
    WEBHOOK_RETRY_SCHEDULE,
    accepted_audio,
    create_job,
    jobs_by_id,
    ledger,
    restarted,
    sha256,
    submitted_audio,
    unique_wav,
    wait_all_terminal,
    wait_until,
)
from tests.support.gateway import GatewayProcess, create_client, gateway_env
from tests.support.postgres import free_port
from tests.support.receiver import WebhookReceiver

PER_KIND = 25
HELD = ["IN_PROGRESS"] * 10_000  # Klangio status words until the test releases its jobs


@pytest.fixture
def vendors() -> Iterator[dict[str, Any]]:
    fakes: dict[str, Any] = {"daglo": FakeDaglo(), "klangio": FakeKlangio(),
                             "aimlapi": FakeAimlApi()}  # fmt: skip
    fakes["daglo"].steps = ["transcribing"]  # one progress callback, then the result
    for fake in fakes.values():
        fake.start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


@dataclass
class Run:
    http: httpx.Client
    hooks: dict[str, WebhookReceiver]
    vendors: dict[str, Any]
    kinds: dict[str, list[str]] = field(default_factory=dict)  # kind -> job ids
    audio: dict[str, str] = field(default_factory=dict)  # job id -> SHA-256 of its upload
    provider: dict[str, str] = field(default_factory=dict)  # job id -> vendor


# kind -> (vendor, receiver), created in this order: the polled and the failing ones
# last, so that they load the gateway and use up webhook attempts for the least time.
KINDS: dict[str, tuple[str, str]] = {
    "delivered": ("daglo", "ok"),
    "queued": ("aimlapi", "ok"),
    "unsent": ("daglo", "failing"),
    "at_vendor": ("klangio", "ok"),
}


def _create_jobs(run: Run) -> None:
    for number, (kind, (vendor, hook)) in enumerate(KINDS.items()):
        indexes = range(number * PER_KIND, (number + 1) * PER_KIND)

        def create(index: int, vendor: str = vendor, hook: str = hook) -> dict[str, Any]:
            return create_job(run.http, index, provider=vendor, callback_url=run.hooks[hook].url)

        with ThreadPoolExecutor(4) as pool:  # a client's burst, not one upload at a time
            for index, job in zip(indexes, pool.map(create, indexes), strict=True):
                run.kinds.setdefault(kind, []).append(job["id"])
                run.audio[job["id"]] = sha256(unique_wav(index))
                run.provider[job["id"]] = vendor


def _answered_2xx(hook: WebhookReceiver) -> dict[str, list[dict[str, Any]]]:
    """job id -> the webhooks the receiver answered with a 2xx (their headers and body)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for got in list(hook.received):
        if 200 <= got.answered < 300:
            body = json.loads(got.body)
            found.setdefault(body["data"]["id"], []).append(
                {
                    "id": got.headers["webhook-id"],
                    "type": body["type"],
                    "verified": got.verified_with,
                }
            )
    return found


def _received_ids(hook: WebhookReceiver) -> set[str]:
    return {json.loads(got.body)["data"]["id"] for got in list(hook.received)}


def _every_state_is_there(run: Run) -> None:
    """Wait until each kind of job is in its state, then check it once more."""
    waiting_for: list[str] = []

    def ready() -> bool:
        jobs = jobs_by_id(run.http)
        refused = submitted_audio(run.vendors["aimlapi"])
        delivered = _answered_2xx(run.hooks["ok"])
        failed_once = _received_ids(run.hooks["failing"])

        def in_state(kind: str, job_id: str) -> bool:
            status = jobs[job_id]["status"]
            if kind == "delivered":
                return status == "completed" and job_id in delivered
            if kind == "unsent":
                return status == "completed" and job_id in failed_once
            if kind == "at_vendor":
                return status == "processing"
            return status == "queued" and refused[run.audio[job_id]] >= 1

        waiting_for[:] = [
            f"{job_id} ({kind}: {jobs[job_id]['status']})"
            for kind, ids in run.kinds.items()
            for job_id in ids
            if not in_state(kind, job_id)
        ]
        return not waiting_for

    try:
        wait_until("every kind of job is in its state", ready, timeout=25, every=0.5)
    except AssertionError:
        raise AssertionError(f"still waiting for: {waiting_for[:10]}") from None
    jobs = jobs_by_id(run.http)
    assert Counter(j["status"] for j in jobs.values()) == {
        "completed": 2 * PER_KIND,
        "processing": PER_KIND,
        "queued": PER_KIND,
    }
    for job_id in run.kinds["unsent"][:5]:
        (delivery,) = run.http.get(f"/jobs/{job_id}/deliveries").json()["data"]
        assert delivery["status"] == "pending", delivery
        assert delivery["attempts"] and delivery["attempts"][0]["status_code"] == 500


def _release_everything(run: Run) -> None:
    run.hooks["failing"].default_answer = 200
    run.vendors["klangio"].steps = []  # the next status GET finishes each job
    run.vendors["aimlapi"].clear_faults()


def _check_outcome(run: Run, database_url: str, jobs: dict[str, dict[str, Any]]) -> int:
    """Every job completed, or failed as in doubt; no vendor took a job twice.
    Returns how many jobs were in doubt."""
    outcomes = ledger(database_url)
    accepted = {name: accepted_audio(fake) for name, fake in run.vendors.items()}
    sent = {name: submitted_audio(fake) for name, fake in run.vendors.items()}
    in_doubt = 0
    for job_id, job in jobs.items():
        vendor, audio = run.provider[job_id], run.audio[job_id]
        took = accepted[vendor][audio]
        for other, counts in accepted.items():
            assert other == vendor or counts[audio] == 0, f"{job_id} reached {other}"
        assert took <= 1, f"{vendor} took job {job_id} {took} times: paid twice"
        if vendor != "aimlapi":  # the only vendor told to refuse submits
            assert sent[vendor][audio] == took, f"{job_id} was sent {sent[vendor][audio]} times"
        if job["status"] == "completed":
            assert took == 1, (job_id, took)
            vendor_job = run.vendors[vendor].jobs[job["provider_job_id"]]
            assert sha256(vendor_job.audio) == audio, f"{job_id} completed with another's job"
        else:
            assert job["status"] == "failed", job
            assert job["error"]["code"] == "submit_interrupted", job["error"]
            assert job["error"]["retryable"] is True
            assert "in_doubt" in outcomes.get(job_id, []), outcomes.get(job_id)
            in_doubt += 1
    # Whatever the kill cut off, no submit is left open.
    assert all(None not in rows for rows in outcomes.values()), outcomes
    return in_doubt


def _check_webhooks(run: Run, jobs: dict[str, dict[str, Any]]) -> None:
    def delivered() -> dict[str, list[dict[str, Any]]]:
        found = _answered_2xx(run.hooks["ok"])
        found.update(_answered_2xx(run.hooks["failing"]))
        return found

    wait_until("every webhook is delivered", lambda: set(jobs) <= set(delivered()), timeout=20)
    found = delivered()
    for job_id, job in jobs.items():
        assert {got["type"] for got in found[job_id]} == {f"job.{job['status']}"}
        assert all(got["verified"] == [0] for got in found[job_id])
    # Repeats of one event keep its webhook-id, whichever process sent them.
    for hook in run.hooks.values():
        ids: dict[str, set[str]] = {}
        for got in list(hook.received):
            ids.setdefault(json.loads(got.body)["data"]["id"], set()).add(got.headers["webhook-id"])
        assert all(len(webhook_ids) == 1 for webhook_ids in ids.values()), ids


def _env(settings_env: dict[str, str], vendors: dict[str, Any], port: int) -> dict[str, str]:
    daglo, klangio, aimlapi = vendors["daglo"], vendors["klangio"], vendors["aimlapi"]
    return settings_env | {
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "LOCAL_PROVIDER": "false",
        "DAGLO_API_KEY": daglo.api_key,
        "DAGLO_BASE_URL": daglo.base_url,
        "KLANGIO_API_KEY": klangio.api_key,
        "KLANGIO_BASE_URL": klangio.base_url,
        "AIMLAPI_API_KEY": aimlapi.api_key,
        "AIMLAPI_BASE_URL": aimlapi.base_url,
        "WEBHOOK_RETRY_SCHEDULE": WEBHOOK_RETRY_SCHEDULE,
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        # The refusals must not open the breaker: it would hold the queued jobs
        # back for its whole open time, which is not what is being tested.
        "BREAKER_FAILURE_THRESHOLD": "1000",
        "TASK_MAX_ATTEMPTS": "1000",  # nor must the refusals use up the submit's attempts
    }


@pytest.mark.parametrize("victim", ["gateway", "worker"])
def test_kill_9_with_jobs_in_every_state_loses_none_and_pays_once(
    victim: str,
    postgres_url: str,
    make_settings: Callable[..., Any],
    vendors: dict[str, Any],
    receiver: Callable[..., WebhookReceiver],
    processes: list[GatewayProcess],
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    port = free_port()
    settings = make_settings(postgres_url, task_lease_seconds=2.0)
    env = _env(gateway_env(settings), vendors, port)
    client = create_client(postgres_url, "acme")
    hooks = {"ok": receiver(client.webhook_secret), "failing": receiver(client.webhook_secret)}
    hooks["failing"].default_answer = 500
    vendors["klangio"].steps = HELD
    vendors["aimlapi"].fail("submit", 503, times=10_000, headers={"Retry-After": "5"})

    if victim == "gateway":
        api = GatewayProcess(env, tmp_path / "gateway-1.log", port=port)
        processes.append(api.start())
        doomed = api
    else:
        api = GatewayProcess(env, tmp_path / "api.log", "serve", "--no-worker", "--port",
                             str(port), port=port)  # fmt: skip
        processes.append(api.start())
        doomed = GatewayProcess(env, tmp_path / "worker-1.log", "worker")
        processes.append(doomed.start())

    auth = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.Client(base_url=api.base_url, headers=auth, timeout=30) as http:
        run = Run(http, hooks, vendors)
        _create_jobs(run)
        _every_state_is_there(run)
        doomed.kill()  # SIGKILL: no shutdown code runs
        killed_at = time.monotonic()
        _release_everything(run)
        # On the same port: the callback links the vendors were given still work.
        processes.append(restarted(doomed, tmp_path / f"{victim}-2.log"))

        jobs = wait_all_terminal(http, run.audio, timeout=30)
        in_doubt = _check_outcome(run, postgres_url, jobs)
        _check_webhooks(run, jobs)

    print(
        f"\n{victim} killed: {in_doubt} job(s) in doubt; all settled "
        f"{time.monotonic() - killed_at:.1f} s after the kill, {time.monotonic() - started:.1f} s "
        "in all"
    )
