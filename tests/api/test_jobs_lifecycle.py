"""Cancel, delete, waiting, and the transcript's availability."""

from __future__ import annotations

import io
import threading
import time

import pytest

from tests.api.helpers import WAV_UNDECODABLE, assert_problem, upload
from tests.support.gateway import create_key


@pytest.fixture
def idle(database_url, make_settings, start_gateway):
    """A gateway whose worker is off: jobs stay queued until the test acts."""
    gateway = start_gateway(make_settings(database_url, run_worker=False))
    with gateway.client(create_key(database_url, "acme")) as client:
        yield gateway, client


def test_cancel_a_queued_job_then_409(idle):
    _, client = idle
    job_id = upload(client).json()["id"]
    canceled = client.post(f"/jobs/{job_id}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["completed_at"] is not None
    assert_problem(client.post(f"/jobs/{job_id}/cancel"), 409, "canceled")
    assert_problem(client.get(f"/jobs/{job_id}/transcript"), 409, "canceled", "no transcript")


def test_transcript_is_409_until_completed(idle):
    _, client = idle
    job_id = upload(client).json()["id"]
    assert_problem(client.get(f"/jobs/{job_id}/transcript"), 409, "queued")
    assert_problem(client.get(f"/jobs/{job_id}/transcript", params={"format": "doc"}), 422)


def test_delete_removes_the_job_and_its_files(idle):
    gateway, client = idle
    job_id = upload(client).json()["id"]
    job_dir = gateway.settings.storage_dir / "jobs" / job_id
    assert (job_dir / "audio").is_file()
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert not job_dir.exists()
    assert_problem(client.get(f"/jobs/{job_id}"), 404)
    assert_problem(client.delete(f"/jobs/{job_id}"), 404)


def test_wait_answers_as_soon_as_the_job_is_terminal(idle):
    _, client = idle
    job_id = upload(client).json()["id"]
    answer: dict = {}

    def wait() -> None:
        started = time.monotonic()
        answer["job"] = client.get(f"/jobs/{job_id}", params={"wait": 30}).json()
        answer["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)
    assert "job" not in answer  # still held
    client.post(f"/jobs/{job_id}/cancel")
    waiter.join(timeout=30)
    assert answer["job"]["status"] == "canceled"
    assert answer["seconds"] < 4, answer  # woken by the change, not by the 5 s recheck


def test_wait_runs_out_and_answers_the_job_as_it_is(idle):
    _, client = idle
    job_id = upload(client).json()["id"]
    started = time.monotonic()
    job = client.get(f"/jobs/{job_id}", params={"wait": 1.5}).json()
    assert job["status"] == "queued"
    assert 1.4 < time.monotonic() - started < 5


def test_audio_the_engine_cannot_read_fails_with_a_clear_error(
    database_url, make_settings, start_gateway
):
    gateway = start_gateway(make_settings(database_url))
    with gateway.client(create_key(database_url, "acme")) as client:
        created = client.post(
            "/jobs", files={"file": ("t.wav", io.BytesIO(WAV_UNDECODABLE), "audio/wav")}
        )
        assert created.status_code == 202, created.text
        job = client.get(f"/jobs/{created.json()['id']}", params={"wait": 60}).json()
        assert job["status"] == "failed"
        assert job["error"]["code"] == "invalid_audio"
        assert job["error"]["retryable"] is False
        assert job["error"]["message"]
        assert_problem(client.get(f"/jobs/{job['id']}/transcript"), 409, "failed", "no transcript")


def test_unknown_artifact_is_404(idle):
    _, client = idle
    job_id = upload(client).json()["id"]
    assert_problem(client.get(f"/jobs/{job_id}/artifacts/midi"), 404, "midi")
