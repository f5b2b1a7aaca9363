"""A job the vendor took and then failed in a way an identical request may cure
(Phonexia's ``failed``, Daglo's ``transcript_error``) is sent again, up to
VENDOR_FAILURE_RESUBMITS times, then falls back or fails; a failure of the
input itself (``rejected``, ``file_error``) is never sent again."""

from __future__ import annotations

import pytest

from tests.api.helpers import upload
from tests.fakes.daglo import FakeDaglo
from tests.fakes.phonexia import FakePhonexia
from tests.providers import helpers
from tests.providers.helpers import Start
from tests.support.vendor import wait_for_job

phonexia = helpers.fake_vendor_fixture(FakePhonexia)
daglo = helpers.fake_vendor_fixture(FakeDaglo)


@pytest.fixture
def start(vendor_gateway: Start, phonexia: FakePhonexia, daglo: FakeDaglo) -> Start:
    return helpers.gateway_starter(
        vendor_gateway,
        PHONEXIA_BASE_URL=phonexia.base_url,
        DAGLO_BASE_URL=daglo.base_url,
        DAGLO_API_KEY=daglo.api_key,
    )


def test_a_task_the_vendor_failed_is_sent_again_and_completes(
    start: Start, phonexia: FakePhonexia
) -> None:
    phonexia.outcomes.extend(["failed", "failed"])  # then "done"
    gateway, key = start()
    with gateway.client(key) as client:
        job = helpers.finished_job(client, "phonexia", language="en")
    assert job["status"] == "completed", job
    assert job["provider_status"] == "done" and job["error"] is None
    first, second, third = phonexia.tasks.values()
    assert (first.outcome, second.outcome, third.outcome) == ("failed", "failed", "done")
    assert job["provider_job_id"] == third.task_id
    assert first.audio == second.audio == third.audio != b""
    # The pause before each resubmit grows: 5 and 10 x POLL_MIN_SECONDS (0.2 s here).
    submits = helpers.call_times(phonexia, "submit")
    assert submits[1] - submits[0] >= 1.0 and submits[2] - submits[1] >= 2.0


def test_once_the_resubmits_are_used_up_the_job_fails_with_the_vendors_error(
    start: Start, phonexia: FakePhonexia
) -> None:
    phonexia.outcomes.extend(["failed"] * 5)
    job = helpers.run_job(start(VENDOR_FAILURE_RESUBMITS=1), "phonexia", language="en")
    assert job["status"] == "failed", job
    assert job["provider_status"] == "failed"
    assert job["error"]["code"] == "provider_failed" and job["error"]["retryable"] is True
    assert len(phonexia.tasks) == 2  # the first submit and one more


@pytest.mark.parametrize(("outcome", "resubmits"), [("rejected", 2), ("failed", 0)])
def test_a_rejected_input_or_no_resubmits_fails_after_one_submit(
    start: Start, phonexia: FakePhonexia, outcome: str, resubmits: int
) -> None:
    phonexia.outcomes.extend([outcome] * 3)
    job = helpers.run_job(start(VENDOR_FAILURE_RESUBMITS=resubmits), "phonexia", language="en")
    assert job["status"] == "failed" and job["provider_status"] == outcome
    assert len(phonexia.tasks) == 1


def test_after_the_resubmits_the_job_moves_to_its_fallback(
    start: Start, phonexia: FakePhonexia, daglo: FakeDaglo
) -> None:
    phonexia.outcomes.extend(["failed"] * 5)
    gateway, key = start(VENDOR_FAILURE_RESUBMITS=1)
    with gateway.client(key) as client:
        created = upload(client, provider="phonexia", language="en", fallback_providers='["daglo"]')
        assert created.status_code == 202, created.text
        job = wait_for_job(client, created.json()["id"])
    assert job["status"] == "completed", job
    assert job["provider"] == "daglo" and len(phonexia.tasks) == 2
    [tried] = job["provider_attempts"]
    assert tried["provider"] == "phonexia"
    assert tried["error"]["code"] == "provider_failed"


def test_daglos_transcript_error_is_requested_again(start: Start, daglo: FakeDaglo) -> None:
    daglo.outcome = "transcript_error"
    gateway, key = start()
    with gateway.client(key) as client:
        job_id = helpers.create_job(client, "daglo")["id"]
        helpers.wait_until(lambda: len(daglo.calls("submit")) == 1)
        daglo.outcome = "transcribed"  # the next request goes through, as the guide says
        job = wait_for_job(client, job_id)
    assert job["status"] == "completed", job
    assert job["provider_status"] == "transcribed"
    assert len(daglo.calls("submit")) == 2 and len(daglo.jobs) == 2
    assert daglo.jobs[job["provider_job_id"]].status == "transcribed"
