"""Klangio end to end: a real gateway on PostgreSQL and the fake Klangio, both on
127.0.0.1, talking real HTTP both ways (uploads, status polls, result downloads,
Klangio's webhook back to the gateway)."""

from __future__ import annotations

import asyncio
import json
import time
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest

from app.providers import klangio as adapter
from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.fakes.klangio import FILES, FakeKlangio
from tests.providers import helpers
from tests.providers.helpers import Start
from tests.support.gateway import ThreadedGateway
from tests.support.vendor import wait_for_job

CONTENT_TYPES = {
    "midi": "audio/midi",
    "midi_quant": "audio/midi",
    "mxml": "application/vnd.recordare.musicxml+xml",
    "pdf": "application/pdf",
    "gp5": "application/octet-stream",
}


fake = helpers.fake_vendor_fixture(FakeKlangio)


@pytest.fixture
def klangio(vendor_gateway: Start, fake: FakeKlangio) -> Start:
    return helpers.gateway_starter(
        vendor_gateway, KLANGIO_BASE_URL=fake.base_url, KLANGIO_API_KEY=fake.api_key
    )


def test_upload_is_transcribed_into_the_requested_files(klangio: Start, fake: FakeKlangio):
    fake.quant_path = "midi_unq"  # the MIDI page's path: /midi_quant is a 404 here
    outputs = ["midi", "midi_quant", "mxml", "pdf", "gp5"]
    gateway, key = klangio(poll_min_seconds=1.0)  # Klangio's webhook comes before a poll would
    with gateway.client(key) as client:
        options = {"model": "guitar", "outputs": outputs, "title": "Hello", "composer": "Espeak"}
        done = helpers.finished_job(client, "klangio", options=options)

        assert done["status"] == "completed", done
        assert done["provider_status"] == "COMPLETED"
        (vendor_id,) = fake.jobs
        assert done["provider_job_id"] == vendor_id  # Klangio's own job id, as it is
        assert done["artifacts"] == [
            {"name": name, "content_type": CONTENT_TYPES[name], "size": len(FILES[name])}
            for name in outputs
        ]
        for name in outputs:
            got = client.get(f"/jobs/{done['id']}/artifacts/{name}")
            assert got.status_code == 200, got.text
            assert got.content == FILES[name]
            assert got.headers["content-type"] == CONTENT_TYPES[name]
        assert_problem(client.get(f"/jobs/{done['id']}/artifacts/json"), 404)
        # Notes, not words: nothing is made up for the transcript.
        transcript = client.get(f"/jobs/{done['id']}/transcript").json()
        assert transcript == {
            "text": "",
            "language": None,
            "duration": None,
            "provider": "klangio",
            "segments": [],
        }

    (submit,) = fake.calls("submit")
    assert submit.headers["kl-api-key"] == fake.api_key
    webhook = submit.query.pop("webhook_url")
    assert submit.query == {"model": "guitar", "title": "Hello", "composer": "Espeak"}
    assert webhook.startswith(f"{gateway.base_url}/callbacks/klangio/{done['id']}?")
    vendor_job = fake.jobs[vendor_id]
    assert vendor_job.outputs == outputs
    assert vendor_job.audio == SPEECH_WAV.read_bytes()
    assert (vendor_job.filename, vendor_job.content_type) == (SPEECH_WAV.name, "audio/wav")
    assert all(r.headers.get("kl-api-key") == fake.api_key for r in fake.requests)
    assert [r.path.rsplit("/", 1)[1] for r in fake.calls("result")] == [
        "midi",
        "midi_quant",  # 404 here ...
        "midi_unq",  # ... so the other documented path
        "xml",
        "pdf",
        "gp5",
    ]

    # IN_QUEUE, IN_PROGRESS, then COMPLETED; Klangio's webhook was answered and made
    # the last poll come before a poll interval (1 s or more for a young job) was over.
    statuses = fake.status_times()
    assert len(statuses) == 3
    assert fake.callbacks_sent == [(webhook, 204)]
    assert statuses[2] - statuses[1] < 0.95


def _stored_raw(gateway: ThreadedGateway, job_id: str) -> Any:
    """The vendor payload the gateway kept beside the job's transcript."""

    async def read() -> Any:
        dsn = gateway.settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval("SELECT raw FROM job_results WHERE job_id = $1", job_id)
        finally:
            await conn.close()

    return json.loads(asyncio.run(read()))


def _completed_looks(fake: FakeKlangio) -> list[float]:
    """When the status GETs answered COMPLETED (the fake's default steps come first)."""
    return fake.status_times()[len(fake.steps) :]


def test_a_file_made_after_completed_is_waited_for_and_kept(
    klangio: Start, fake: FakeKlangio, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(adapter, "PARTIAL_POLL_SECONDS", 0.5)  # the grace stays a minute
    fake.callbacks_enabled = False  # only the adapter's own pace between the looks
    fake.late_outputs = {"pdf": 3}  # there from the third COMPLETED look on
    gateway, key = klangio()
    with gateway.client(key) as client:
        job = helpers.create_job(client, "klangio", options={"outputs": ["midi", "pdf"]})
        helpers.wait_until(lambda: len(_completed_looks(fake)) >= 2)
        # Klangio said COMPLETED, but the PDF is not there: the job waits for it.
        waiting = client.get(f"/jobs/{job['id']}").json()
        assert (waiting["status"], waiting["provider_status"]) == ("processing", "COMPLETED")
        assert waiting["artifacts"] == []
        done = wait_for_job(client, job["id"])

    assert done["status"] == "completed", done
    assert done["artifacts"] == [
        {"name": name, "content_type": CONTENT_TYPES[name], "size": len(FILES[name])}
        for name in ("midi", "pdf")
    ]
    looks = _completed_looks(fake)
    assert len(looks) == 3
    assert all(b - a >= 0.45 for a, b in pairwise(looks))  # at the adapter's interval
    assert _stored_raw(gateway, done["id"])["missing_outputs"] == []


def test_a_file_never_made_is_left_out_after_the_grace(
    klangio: Start, fake: FakeKlangio, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(adapter, "PARTIAL_GRACE_SECONDS", 1.5)
    monkeypatch.setattr(adapter, "PARTIAL_POLL_SECONDS", 0.5)
    fake.late_outputs = {"pdf": None}
    gateway, key = klangio()
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "klangio", options={"outputs": ["midi", "pdf"]})
        got = client.get(f"/jobs/{done['id']}/artifacts/midi")

    assert done["status"] == "completed", done
    assert [a["name"] for a in done["artifacts"]] == ["midi"]
    assert got.status_code == 200 and got.content == FILES["midi"]
    looks = _completed_looks(fake)
    assert len(looks) >= 3  # looked at again meanwhile, not given up at once ...
    assert looks[-1] - looks[0] >= 1.5  # ... until the grace was over
    assert _stored_raw(gateway, done["id"])["missing_outputs"] == ["pdf"]


def test_no_file_ever_made_fails_the_job_after_the_grace(
    klangio: Start, fake: FakeKlangio, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(adapter, "PARTIAL_GRACE_SECONDS", 1.5)
    monkeypatch.setattr(adapter, "PARTIAL_POLL_SECONDS", 0.5)
    fake.late_outputs = {"pdf": None}  # asked for, never made (gen_pdf false, say)
    done = helpers.run_job(klangio(), "klangio", options={"outputs": ["pdf"]})

    assert done["status"] == "failed", done
    assert done["error"] == {
        "code": "provider_failed",
        "message": done["error"]["message"],
        "retryable": False,
        "provider_detail": {"status": "COMPLETED"},
    }
    assert "made none of the outputs asked for (pdf)" in done["error"]["message"]
    assert done["artifacts"] == []
    looks = _completed_looks(fake)
    assert len(looks) >= 3  # looked at again meanwhile, not given up at once ...
    assert looks[-1] - looks[0] >= 1.5  # ... until the grace was over
    assert len(fake.jobs) == 1  # failed, not sent again


def test_source_url_is_downloaded_and_sent_as_a_file(klangio: Start, fake: FakeKlangio):
    with helpers.serving() as audio_server:
        done = helpers.run_job(klangio(), "klangio", source_url=audio_server.url)
        assert done["status"] == "completed", done
        assert [a["name"] for a in done["artifacts"]] == ["midi", "mxml"]  # the defaults
        assert audio_server.requests == 1
        (submit,) = fake.calls("submit")
        assert submit.query["model"] == "universal"
        vendor_job = fake.jobs[done["provider_job_id"]]
        assert vendor_job.audio == SPEECH_WAV.read_bytes()
        assert vendor_job.outputs == ["midi", "mxml"]
        assert (vendor_job.filename, vendor_job.content_type) == (f"{done['id']}.wav", "audio/wav")


def test_without_callbacks_the_job_completes_by_polling(klangio: Start, fake: FakeKlangio):
    fake.callbacks_enabled = False
    done = helpers.run_job(klangio(poll_min_seconds=1.0), "klangio")
    assert done["status"] == "completed", done
    assert fake.callbacks_sent == []
    statuses = fake.status_times()
    assert len(statuses) == 3
    # Polls a poll interval apart (a young job: 1 s), not woken by any callback.
    assert all(b - a >= 0.9 for a, b in pairwise(statuses))


def test_without_public_url_no_webhook_is_asked_for(klangio: Start, fake: FakeKlangio):
    fake.steps = []  # done at the first look
    done = helpers.run_job(klangio(public=False), "klangio")
    assert done["status"] == "completed", done
    assert "webhook_url" not in fake.calls("submit")[0].query
    assert fake.callbacks_sent == []


def test_a_500_on_submit_and_a_503_on_a_result_are_retried(klangio: Start, fake: FakeKlangio):
    fake.fail("submit", 500, body={"detail": "Internal Server Error"})
    fake.fail("result", 503, headers={"Retry-After": "1"})
    done = helpers.run_job(klangio(), "klangio", options={"outputs": ["pdf"]})
    assert done["status"] == "completed", done
    assert len(fake.calls("submit")) == 2
    assert len(fake.jobs) == 1  # the 500 made no job at Klangio
    assert [r.path.rsplit("/", 1)[1] for r in fake.calls("result")] == ["pdf", "pdf"]
    assert [a["name"] for a in done["artifacts"]] == ["pdf"]


def test_429_retry_after_is_honoured(klangio: Start, fake: FakeKlangio):
    fake.fail("status", 429, headers={"Retry-After": "2"}, body={"detail": "Too Many Requests"})
    done = helpers.run_job(klangio(), "klangio")
    assert done["status"] == "completed", done
    first, second = fake.status_times()[:2]
    assert second - first >= 2.0


@pytest.mark.parametrize(
    ("status", "detail", "code"),
    [
        (413, "File too large", "input_too_large"),
        (415, "Unsupported file type", "unsupported_media"),
        (422, [{"loc": ["body", "file"], "msg": "invalid audio", "type": "value_error"}], None),
    ],
    ids=["413", "415", "422"],
)
def test_refused_input_fails_the_job_with_the_vendor_detail(
    klangio: Start, fake: FakeKlangio, status: int, detail: Any, code: str | None
):
    fake.reject_input(detail, status=status)
    done = helpers.run_job(klangio(), "klangio")
    assert done["status"] == "failed", done
    assert done["error"]["code"] == (code or "invalid_request")
    assert done["error"]["retryable"] is False
    assert done["error"]["provider_detail"] == {"status_code": status, "body": {"detail": detail}}
    said = detail if isinstance(detail, str) else "body.file: invalid audio"
    assert done["error"]["message"] == f"klangio submit refused: HTTP {status}: {said}"
    assert len(fake.calls("submit")) == 1  # a refusal is not retried
    assert fake.calls("status") == []


@pytest.mark.parametrize(
    ("word", "code", "retryable"),
    [("FAILED", "provider_failed", False), ("TIMED_OUT", "provider_timeout", True)],
)
def test_vendor_side_failure_fails_the_job(
    klangio: Start, fake: FakeKlangio, word: str, code: str, retryable: bool
):
    fake.fail_jobs(word, error="No notes detected")
    done = helpers.run_job(klangio(), "klangio")
    assert done["status"] == "failed", done
    assert done["provider_status"] == word
    assert done["error"] == {
        "code": code,
        "message": f"klangio reported the job {word}: No notes detected",
        "retryable": retryable,
        "provider_detail": {"status": word, "error": "No notes detected"},
    }
    assert done["artifacts"] == []
    assert fake.calls("result") == []


def test_a_wrong_key_fails_the_job_without_showing_the_key(klangio: Start, fake: FakeKlangio):
    gateway, key = klangio(KLANGIO_API_KEY="not-the-key-4711")
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "klangio")
        deliveries = client.get(f"/jobs/{done['id']}/deliveries").text
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "provider_auth"
    assert done["error"]["provider_detail"]["body"] == {"detail": "Invalid API key"}
    assert fake.calls("submit")[0].headers["kl-api-key"] == "not-the-key-4711"
    assert "not-the-key-4711" not in json.dumps(done) + deliveries


def test_a_duplicate_callback_after_completion_changes_nothing(klangio: Start, fake: FakeKlangio):
    gateway, key = klangio()
    with gateway.client(key) as client:
        done = helpers.finished_job(client, "klangio")
        assert done["status"] == "completed", done
        webhook = fake.calls("submit")[0].query["webhook_url"]
        statuses = len(fake.calls("status"))

        vendor_id = done["provider_job_id"]
        for body in ({"job_id": vendor_id, "status": "COMPLETED"}, {"status": "FAILED"}):
            assert httpx.post(webhook, json=body).status_code == 204
        time.sleep(0.5)  # time enough for a poll, were one due

        after = client.get(f"/jobs/{done['id']}").json()
    assert after == done  # still completed, updated_at and all unchanged
    assert len(fake.calls("status")) == statuses


def _with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        query.pop(k, None)
    return parts._replace(query=urlencode(query)).geturl()


def test_forged_callbacks_are_404_and_cost_no_vendor_call(klangio: Start, fake: FakeKlangio):
    fake.callbacks_enabled = False  # only this test's own POSTs reach the gateway
    fake.steps = ["IN_QUEUE"] * 50  # the jobs stay queued at Klangio
    gateway, key = klangio(poll_min_seconds=1.0)  # the poll interval measured below
    with gateway.client(key) as client:
        job = helpers.create_job(client, "klangio")
        other = helpers.create_job(client, "klangio")  # a second job, to borrow the id of
        helpers.wait_until(lambda: len(fake.jobs) == 2)
        # The two submits may reach Klangio in either order: take this job's.
        (webhook,) = [
            call.query["webhook_url"]
            for call in fake.calls("submit")
            if f"/{job['id']}?" in call.query["webhook_url"]
        ]
        vendor_id = next(j.id for j in fake.jobs.values() if j.webhook_url == webhook)

        def polls() -> list[float]:
            return [t for r, t in fake.stamped("status") if f"/job/{vendor_id}/" in r.path]

        # Right after a poll the next one is a poll interval (1 s or more) away.
        helpers.wait_until(polls)
        seen, last = len(polls()), polls()[-1]
        query = parse_qs(urlsplit(webhook).query)
        sig, expires = query["sig"][0], query["expires"][0]
        forged = [
            _with_query(webhook, sig=helpers.tampered(sig)),
            _with_query(webhook, expires=str(int(expires) + 1)),
            _with_query(webhook, sig=None),
            webhook.replace(f"/{job['id']}?", f"/{other['id']}?"),
            webhook.replace("/klangio/", "/daglo/"),
        ]
        for url in forged:
            assert_problem(httpx.post(url, json={"job_id": vendor_id, "status": "COMPLETED"}), 404)
        time.sleep(0.2)
        assert len(polls()) == seen

        # The genuine link, for contrast: a poll comes before the interval is over.
        assert httpx.post(webhook, json={"status": "COMPLETED"}).status_code == 204
        helpers.wait_until(lambda: len(polls()) > seen, timeout=5)
        assert polls()[seen] - last < 0.95
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "processing"


def test_cancel_stops_polling(klangio: Start, fake: FakeKlangio):
    fake.steps = ["IN_QUEUE"] * 50  # the job stays queued at Klangio
    gateway, key = klangio()
    with gateway.client(key) as client:
        job = helpers.create_job(client, "klangio")
        helpers.wait_until(lambda: fake.calls("status"))
        canceled = client.post(f"/jobs/{job['id']}/cancel")
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "canceled"
        polls = len(fake.calls("status"))
        time.sleep(1.5)  # longer than a young job's poll interval
        assert client.get(f"/jobs/{job['id']}").json()["status"] == "canceled"
    # Klangio has no cancel endpoint: nothing but the submit and the polls reached it.
    assert len(fake.calls("status")) <= polls + 1  # at most one poll was under way
    assert {r.operation for r in fake.requests} == {"submit", "status"}


def test_options_and_language_are_checked_at_creation(klangio: Start, fake: FakeKlangio):
    gateway, key = klangio()
    with gateway.client(key) as client:
        with_language = upload(client, provider="klangio", language="en")
        assert_problem(with_language, 422, "language")
        unknown = upload(client, provider="klangio", options='{"instrument": "guitar"}')
        assert_problem(unknown, 422, "instrument")
        bad_output = upload(client, provider="klangio", options='{"outputs": ["wav"]}')
        assert_problem(bad_output, 422, "outputs")
        bad_model = upload(client, provider="klangio", options='{"model": "kazoo"}')
        assert_problem(bad_model, 422, "model")

        listed = client.get("/providers").json()["data"]
    assert fake.requests == []
    (entry,) = [p for p in listed if p["name"] == "klangio"]
    assert entry["capabilities"]["callbacks"] is True
    assert entry["capabilities"]["cancel"] is False
    assert entry["capabilities"]["languages"] == []
    schema = entry["options_schema"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["model"]["default"] == "universal"
    assert schema["properties"]["outputs"]["default"] == ["midi", "mxml"]
