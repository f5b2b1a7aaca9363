"""Real processes on PostgreSQL: a crash loses no job; API and worker apart."""

from __future__ import annotations

import re
import time

import httpx

from tests.api.helpers import upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import GatewayProcess, create_key, gateway_env


def _statuses(client: httpx.Client, ids: list[str]) -> list[str]:
    return [client.get(f"/jobs/{job_id}").json()["status"] for job_id in ids]


def test_kill_9_in_the_middle_of_work_loses_no_job(postgres_url, make_settings, tmp_path):
    settings = make_settings(postgres_url, task_lease_seconds=3.0)
    env = gateway_env(settings)
    key = create_key(postgres_url, "acme")
    first = GatewayProcess(env, tmp_path / "first.log").start()
    with httpx.Client(
        base_url=first.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        ids = [upload(client, SPEECH_WAV).json()["id"] for _ in range(10)]
        deadline = time.monotonic() + 60
        while "processing" not in _statuses(client, ids) and time.monotonic() < deadline:
            time.sleep(0.05)
    first.kill()  # SIGKILL while the engine is working: no shutdown code runs

    second = GatewayProcess(env, tmp_path / "second.log").start()
    try:
        with httpx.Client(
            base_url=second.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=90
        ) as client:
            before = _statuses(client, ids)
            assert before.count("completed") < len(ids), "the kill came too late to prove anything"
            for job_id in ids:
                job = client.get(f"/jobs/{job_id}", params={"wait": 60}).json()
                assert job["status"] == "completed", job
                text = client.get(f"/jobs/{job_id}/transcript", params={"format": "text"}).text
                assert "hello" in text
    finally:
        second.terminate()


def test_api_and_worker_as_separate_processes(postgres_url, make_settings, tmp_path):
    settings = make_settings(postgres_url, worker_poll_seconds=30.0)  # only NOTIFY wakes it fast
    env = gateway_env(settings)
    key = create_key(postgres_url, "acme")
    api = GatewayProcess(env, tmp_path / "api.log")
    api.args = ("serve", "--no-worker", "--port", str(api.port))
    api.start()
    worker = GatewayProcess(env, tmp_path / "worker.log", "worker").start()
    try:
        with httpx.Client(
            base_url=api.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=90
        ) as client:
            time.sleep(2)  # the worker is up and has done its first (empty) poll
            started = time.monotonic()
            job_id = upload(client).json()["id"]
            job = client.get(f"/jobs/{job_id}", params={"wait": 60}).json()
            elapsed = time.monotonic() - started
            assert job["status"] == "completed", job
            # With a 30 s polling timer, finishing sooner shows NOTIFY woke the worker
            # and the API's waiter across processes.
            assert elapsed < 20, elapsed
    finally:
        worker.terminate()
        api.terminate()
    # Both entry points keep their start-up objects out of the garbage collector's
    # full passes (app/heap.py); the job above ran in processes that did.
    for log in (api.log_path, worker.log_path):
        frozen = re.search(r"kept out of garbage collection: (\d+)", log.read_text())
        assert frozen and int(frozen.group(1)) > 10_000, log.read_text()[-2000:]
