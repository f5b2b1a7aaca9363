"""A submit cut off by kill -9 while the vendor has it: the vendor may have taken
(and billed) the job, so by default it is not sent again; RESUBMIT_IN_DOUBT=true
sends it again.

The fake Daglo records the first submit, then holds its answer: the gateway is
killed while it waits, which is the submit ledger's open row, deterministically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.support import (
    WEBHOOK_RETRY_SCHEDULE,
    HoldingDaglo,
    create_job,
    ledger,
    restarted,
    sha256,
    unique_wav,
    wait_until,
)
from tests.support.gateway import GatewayProcess, create_client
from tests.support.receiver import WebhookReceiver
from tests.support.vendor import wait_for_job


@pytest.mark.parametrize("resubmit", [False, True], ids=["by-default", "resubmit-in-doubt"])
def test_a_submit_cut_off_by_kill_9_is_never_paid_twice(
    resubmit: bool,
    postgres_url: str,
    make_settings: Callable[..., Any],
    daglo: HoldingDaglo,
    daglo_gateway: Callable[..., GatewayProcess],
    receiver: Callable[..., WebhookReceiver],
    processes: list[GatewayProcess],
    tmp_path: Path,
) -> None:
    daglo.steps = []
    settings = make_settings(postgres_url, task_lease_seconds=2.0)
    first = daglo_gateway(
        settings, tmp_path / "first.log", WEBHOOK_RETRY_SCHEDULE=WEBHOOK_RETRY_SCHEDULE
    )
    client = create_client(postgres_url, "acme")
    hook = receiver(client.webhook_secret)
    daglo.hold = 1
    processes.append(first.start())
    auth = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.Client(base_url=first.base_url, headers=auth, timeout=30) as http:
        job_id = create_job(http, 7, provider="daglo", callback_url=hook.url)["id"]
        wait_until("the vendor has the submit", lambda: len(daglo.calls("submit")) == 1, 20)
        assert ledger(postgres_url) == {job_id: [None]}  # written before the vendor was called
        first.kill()
        # The vendor goes on with the request it had: it takes the job (and bills it).
        daglo.released = True
        wait_until("the vendor took the job", lambda: len(daglo.jobs) == 1, 10)

        second_env = first.env | {"RESUBMIT_IN_DOUBT": "true"} if resubmit else first.env
        processes.append(restarted(first, tmp_path / "second.log", second_env))
        job = wait_for_job(http, job_id, timeout=30)

    audio = sha256(unique_wav(7))
    submits = daglo.calls("submit")
    assert all(sha256(call.form["file"]) == audio for call in submits)
    (webhook,) = hook.wait_for(1, timeout=20)
    event = json.loads(webhook.body)
    assert webhook.verified_with == [0] and event["data"]["id"] == job_id
    if resubmit:
        assert job["status"] == "completed", job
        assert len(submits) == 2 and len(daglo.jobs) == 2  # paid twice, as configured
        assert ledger(postgres_url) == {job_id: ["in_doubt", "accepted"]}
        assert job["provider_job_id"] == list(daglo.jobs)[-1]
        assert event["type"] == "job.completed"
    else:
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "submit_interrupted" and job["error"]["retryable"]
        assert len(submits) == 1 and len(daglo.jobs) == 1  # sent once, paid once
        assert ledger(postgres_url) == {job_id: ["in_doubt"]}
        assert event["type"] == "job.failed"
        assert event["data"]["error"]["code"] == "submit_interrupted"
