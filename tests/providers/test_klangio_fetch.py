"""The Klangio fetch against httpx.MockTransport: statuses, downloads and their grace, failures."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.providers.base import (
    NoOptions,
    PermanentProviderError,
    ProviderUpdate,
    RetryableProviderError,
)
from app.providers.klangio import empty_transcript
from app.providers.klangio_grace import FirstSeen
from app.providers.klangio_options import KlangioOptions
from tests.providers.klangio_support import KEY, Handler, Vendor, created, payload, submit_request


@pytest.mark.parametrize("word", ["IN_QUEUE", "IN_PROGRESS"])
async def test_fetch_while_working(word: str) -> None:
    vendor = Vendor({"/job/J1/status": httpx.Response(200, json={"status": word})})
    update = await vendor.provider().fetch("J1", KlangioOptions(outputs=["midi"]))
    assert update == ProviderUpdate(status="processing", provider_job_id="J1", provider_status=word)
    assert vendor.requests[0].headers["kl-api-key"] == KEY
    assert vendor.paths == ["/job/J1/status"]


async def test_fetch_unknown_word_keeps_processing_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vendor = Vendor({"/job/J1/status": httpx.Response(200, json={"status": "THINKING"})})
    with caplog.at_level(logging.WARNING, logger="app.providers.klangio"):
        update = await vendor.provider().fetch("J1", KlangioOptions(outputs=["midi"]))
    assert (update.status, update.provider_status) == ("processing", "THINKING")
    assert "THINKING" in caplog.text


def completed(**files: Handler | httpx.Response) -> Vendor:
    routes: dict[str, Handler | httpx.Response] = {
        "/job/J1/status": httpx.Response(200, json=payload("status_completed.json"))
    }
    routes.update({f"/job/J1/{path}": answer for path, answer in files.items()})
    return Vendor(routes)


async def test_fetch_completed_downloads_the_outputs_asked_for() -> None:
    vendor = completed(
        midi=httpx.Response(200, content=b"MThd-midi"),
        xml=httpx.Response(200, content=b"<score-partwise/>"),
        pdf=httpx.Response(200, content=b"%PDF-score"),
        gp5=httpx.Response(200, content=b"GP5"),
    )
    update = await vendor.provider().fetch("J1", KlangioOptions(outputs=["mxml", "midi"]))

    assert (update.status, update.provider_status) == ("completed", "COMPLETED")
    assert update.provider_job_id == "J1"
    assert update.result is not None
    got = [(a.name, a.content_type, a.data) for a in update.result.artifacts]
    assert got == [
        ("mxml", "application/vnd.recordare.musicxml+xml", b"<score-partwise/>"),
        ("midi", "audio/midi", b"MThd-midi"),
    ]
    assert update.result.transcript == empty_transcript()
    assert update.result.raw == {
        "status": {"status": "COMPLETED"},
        "outputs": {"mxml": "xml", "midi": "midi"},
        "missing_outputs": [],
    }
    # Only what was asked for (pdf and gp5 are there but cost nothing to leave).
    assert vendor.paths == ["/job/J1/status", "/job/J1/xml", "/job/J1/midi"]
    assert all(r.headers["kl-api-key"] == KEY for r in vendor.requests)


@pytest.mark.parametrize(
    ("files", "path", "tried"),
    [
        ({"midi_quant": httpx.Response(200, content=b"Q")}, "midi_quant", ["midi_quant"]),
        ({"midi_unq": httpx.Response(200, content=b"Q")}, "midi_unq", ["midi_quant", "midi_unq"]),
        (
            {
                # A FastAPI route whose format enum lacks the variant answers 422.
                "midi_quant": httpx.Response(422, json={"detail": [{"msg": "bad format"}]}),
                "midi_unq": httpx.Response(200, content=b"Q"),
            },
            "midi_unq",
            ["midi_quant", "midi_unq"],
        ),
    ],
    ids=["midi_quant", "midi_unq-after-404", "midi_unq-after-422"],
)
async def test_quantized_midi_comes_from_either_documented_path(
    files: dict[str, httpx.Response], path: str, tried: list[str]
) -> None:
    vendor = completed(**files)
    update = await vendor.provider().fetch("J1", KlangioOptions(outputs=["midi_quant"]))
    assert update.result is not None
    assert [(a.name, a.data) for a in update.result.artifacts] == [("midi_quant", b"Q")]
    assert update.result.raw["outputs"] == {"midi_quant": path}
    assert vendor.paths == ["/job/J1/status"] + [f"/job/J1/{p}" for p in tried]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_output_klangio_did_not_make_is_waited_for_then_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vendor = completed(midi=httpx.Response(200, content=b"MThd"))
    clock = Clock()
    adapter = vendor.provider(clock=clock)  # the default grace and interval
    options = KlangioOptions(outputs=["midi", "gp5"])

    # COMPLETED without gp5: not done yet, looked at again in 10 s.
    assert await adapter.fetch("J1", options) == ProviderUpdate(
        status="processing", provider_job_id="J1", provider_status="COMPLETED", poll_after=10.0
    )
    clock.now += 55.0
    waiting = await adapter.fetch("J1", options)
    assert (waiting.status, waiting.result, waiting.poll_after) == ("processing", None, 5.0)

    clock.now += 5.0  # a minute after the first look: done without it
    with caplog.at_level(logging.WARNING, logger="app.providers.klangio"):
        update = await adapter.fetch("J1", options)
    assert (update.status, update.provider_status) == ("completed", "COMPLETED")
    assert update.result is not None
    assert [a.name for a in update.result.artifacts] == ["midi"]
    assert update.result.raw["missing_outputs"] == ["gp5"]
    assert "has no gp5 after 60 s" in caplog.text
    # Fetched again (its result was not stored, say): done at once, no second grace.
    again = await adapter.fetch("J1", options)
    assert again.status == "completed" and again.result == update.result
    assert vendor.paths == ["/job/J1/status", "/job/J1/midi", "/job/J1/gp5"] * 4


async def test_an_output_made_during_the_grace_is_included() -> None:
    gp5: list[httpx.Response] = [httpx.Response(404, json={"detail": "Not Found"})] * 2
    gp5.append(httpx.Response(200, content=b"GP5"))
    vendor = completed(midi=httpx.Response(200, content=b"MThd"), gp5=lambda _: gp5.pop(0))
    clock = Clock()
    adapter = vendor.provider(clock=clock, grace_seconds=30.0, poll_seconds=4.0)
    options = KlangioOptions(outputs=["midi", "gp5"])

    for _ in range(2):
        waiting = await adapter.fetch("J1", options)
        assert (waiting.status, waiting.poll_after) == ("processing", 4.0)
        clock.now += 4.0
    update = await adapter.fetch("J1", options)

    assert update.status == "completed" and update.result is not None
    assert [(a.name, a.data) for a in update.result.artifacts] == [
        ("midi", b"MThd"),
        ("gp5", b"GP5"),
    ]
    assert update.result.raw["missing_outputs"] == []


async def test_each_job_has_its_own_grace() -> None:
    routes: dict[str, Handler | httpx.Response] = {}
    for job in ("J1", "J2"):
        routes[f"/job/{job}/status"] = httpx.Response(200, json={"status": "COMPLETED"})
        routes[f"/job/{job}/midi"] = httpx.Response(200, content=b"MThd")
    clock = Clock()
    adapter = Vendor(routes).provider(clock=clock, grace_seconds=30.0)
    options = KlangioOptions(outputs=["midi", "pdf"])

    assert (await adapter.fetch("J1", options)).status == "processing"
    clock.now += 20.0
    assert (await adapter.fetch("J2", options)).status == "processing"
    clock.now += 10.0
    assert (await adapter.fetch("J1", options)).status == "completed"
    later = await adapter.fetch("J2", options)  # 10 s into its own grace
    assert (later.status, later.poll_after) == ("processing", 10.0)


async def test_no_file_at_all_is_waited_for_then_fails_the_job() -> None:
    # The documents' own create answer has gen_gp5 false for a request of gp5.
    vendor = completed()  # every result path is a 404
    clock = Clock()
    adapter = vendor.provider(clock=clock, grace_seconds=30.0, poll_seconds=4.0)
    options = KlangioOptions(outputs=["gp5", "pdf"])

    # COMPLETED with none of the files: processing, no vendor fault to retry.
    assert await adapter.fetch("J1", options) == ProviderUpdate(
        status="processing", provider_job_id="J1", provider_status="COMPLETED", poll_after=4.0
    )
    clock.now += 28.0
    waiting = await adapter.fetch("J1", options)
    assert (waiting.status, waiting.result, waiting.poll_after) == ("processing", None, 2.0)

    clock.now += 2.0  # the grace is over, still nothing: the job fails for good
    with pytest.raises(PermanentProviderError) as err:
        await adapter.fetch("J1", options)
    assert (err.value.code, err.value.retryable) == ("provider_failed", False)
    assert "made none of the outputs asked for (gp5, pdf)" in err.value.message
    assert "ask for other outputs" in err.value.message
    assert err.value.provider_detail == {"status": "COMPLETED"}
    assert vendor.paths == ["/job/J1/status", "/job/J1/gp5", "/job/J1/pdf"] * 3

    # Forgotten then: a later fetch of the job starts a grace of its own.
    again = await adapter.fetch("J1", options)
    assert (again.status, again.poll_after) == ("processing", 4.0)


async def test_a_file_made_during_the_grace_of_none_completes_the_job() -> None:
    midi: list[httpx.Response] = [httpx.Response(404), httpx.Response(200, content=b"")]
    midi.append(httpx.Response(200, content=b"MThd"))
    vendor = completed(midi=lambda _: midi.pop(0))
    clock = Clock()
    adapter = vendor.provider(clock=clock, grace_seconds=30.0, poll_seconds=4.0)
    options = KlangioOptions(outputs=["midi"])

    for _ in range(2):  # a 404, then an empty file: neither is there yet
        waiting = await adapter.fetch("J1", options)
        assert (waiting.status, waiting.result, waiting.poll_after) == ("processing", None, 4.0)
        clock.now += 4.0
    update = await adapter.fetch("J1", options)

    assert update.status == "completed" and update.result is not None
    assert [(a.name, a.data) for a in update.result.artifacts] == [("midi", b"MThd")]
    assert update.result.raw["missing_outputs"] == []


async def test_a_file_gone_after_the_grace_fails_the_job() -> None:
    files = [httpx.Response(200, content=b"MThd"), httpx.Response(404)]
    vendor = completed(midi=lambda _: files.pop(0))
    clock = Clock()
    adapter = vendor.provider(clock=clock, grace_seconds=30.0)
    options = KlangioOptions(outputs=["midi", "pdf"])
    assert (await adapter.fetch("J1", options)).status == "processing"
    clock.now += 31.0
    with pytest.raises(
        PermanentProviderError, match=r"none of the outputs asked for \(midi, pdf\)"
    ):
        await adapter.fetch("J1", options)


def test_the_first_seen_memory_is_bounded() -> None:
    clock = Clock()
    seen = FirstSeen(limit=2, clock=clock)
    assert seen.waited("a") == 0.0
    clock.now += 1.0
    assert (seen.waited("b"), seen.waited("a")) == (0.0, 1.0)
    seen.waited("c")  # a third: the oldest ("a") goes
    assert len(seen) == 2
    clock.now += 1.0
    assert (seen.waited("a"), seen.waited("c")) == (0.0, 1.0)  # "a" starts again
    seen.forget("c")
    seen.forget("c")  # forgetting twice is fine
    assert len(seen) == 1


async def test_the_job_id_is_klangios_and_fetch_downloads_the_options_outputs(
    tmp_path: Path,
) -> None:
    job = "/job/SOME_JOB_ID"
    routes: dict[str, Handler | httpx.Response] = {
        "/transcription": created(),
        f"{job}/status": httpx.Response(200, json=payload("status_completed.json")),
    }
    for path in ("midi", "midi_quant", "xml", "pdf", "gp5"):  # every file is there
        routes[f"{job}/{path}"] = httpx.Response(200, content=path.encode())
    vendor = Vendor(routes)
    adapter = vendor.provider()
    options = KlangioOptions(outputs=["gp5", "midi_quant"])

    submitted = await adapter.submit(submit_request(tmp_path, options=options))
    assert submitted.provider_job_id == "SOME_JOB_ID"  # Klangio's, nothing of ours appended
    update = await adapter.fetch(submitted.provider_job_id, options)

    assert update.provider_job_id == "SOME_JOB_ID" and update.result is not None
    assert [(a.name, a.data) for a in update.result.artifacts] == [
        ("gp5", b"gp5"),
        ("midi_quant", b"midi_quant"),
    ]
    # Only the outputs the options ask for are downloaded.
    assert vendor.paths == ["/transcription", f"{job}/status", f"{job}/gp5", f"{job}/midi_quant"]


async def test_other_options_than_klangios_fetch_the_default_outputs() -> None:
    vendor = completed(
        midi=httpx.Response(200, content=b"MThd"),
        xml=httpx.Response(200, content=b"<score/>"),
        pdf=httpx.Response(200, content=b"%PDF"),
    )
    update = await vendor.provider().fetch("J1", NoOptions())
    assert update.result is not None
    assert [a.name for a in update.result.artifacts] == ["midi", "mxml"]
    assert vendor.paths[1:] == ["/job/J1/midi", "/job/J1/xml"]


async def test_completed_with_no_file_at_all_is_processing_not_a_retry() -> None:
    vendor = completed()
    update = await vendor.provider().fetch("J1", KlangioOptions(outputs=["midi", "pdf"]))
    assert update == ProviderUpdate(
        status="processing", provider_job_id="J1", provider_status="COMPLETED", poll_after=10.0
    )
    assert vendor.paths == ["/job/J1/status", "/job/J1/midi", "/job/J1/pdf"]


async def test_an_empty_file_is_not_there_yet() -> None:
    vendor = completed(midi=httpx.Response(200, content=b""))
    clock = Clock()
    adapter = vendor.provider(clock=clock, grace_seconds=30.0)
    waiting = await adapter.fetch("J1", KlangioOptions(outputs=["midi"]))
    assert (waiting.status, waiting.result, waiting.poll_after) == ("processing", None, 10.0)
    clock.now += 30.0  # still empty after the grace: not made
    with pytest.raises(PermanentProviderError, match=r"none of the outputs asked for \(midi\)"):
        await adapter.fetch("J1", KlangioOptions(outputs=["midi"]))
    # Beside a file that is there, it is waited for as a missing one is.
    vendor = completed(
        midi=httpx.Response(200, content=b""), pdf=httpx.Response(200, content=b"%PDF")
    )
    update = await vendor.provider().fetch("J1", KlangioOptions(outputs=["midi", "pdf"]))
    assert update.status == "processing" and update.result is None
    assert update.poll_after is not None and update.poll_after > 0


async def test_a_result_refused_for_auth_is_not_skipped() -> None:
    vendor = completed(xml=httpx.Response(401, json={"detail": "Invalid API key"}))
    with pytest.raises(PermanentProviderError) as err:
        await vendor.provider().fetch("J1", KlangioOptions(outputs=["mxml"]))
    assert err.value.code == "provider_auth"
    assert err.value.message == "klangio result xml refused: HTTP 401: Invalid API key"


async def test_a_result_503_is_retryable() -> None:
    vendor = completed(xml=httpx.Response(503, headers={"Retry-After": "3"}))
    with pytest.raises(RetryableProviderError) as err:
        await vendor.provider().fetch("J1", KlangioOptions(outputs=["mxml"]))
    assert err.value.retry_after == 3.0


@pytest.mark.parametrize(
    ("body", "code", "message", "retryable"),
    [
        ({"status": "FAILED"}, "provider_failed", "klangio reported the job FAILED", False),
        (
            {"status": "FAILED", "error": "Audio could not be decoded"},
            "provider_failed",
            "klangio reported the job FAILED: Audio could not be decoded",
            False,
        ),
        ({"status": "CANCELLED"}, "provider_canceled", "klangio reported the job CANCELLED", False),
        ({"status": "TIMED_OUT"}, "provider_timeout", "klangio reported the job TIMED_OUT", True),
    ],
)
async def test_fetch_failed(body: dict[str, Any], code: str, message: str, retryable: bool) -> None:
    vendor = Vendor({"/job/J1/status": httpx.Response(200, json=body)})
    update = await vendor.provider().fetch("J1", KlangioOptions(outputs=["midi"]))
    assert (update.status, update.provider_status) == ("failed", body["status"])
    assert update.error is not None and update.result is None
    assert (update.error.code, update.error.message) == (code, message)
    assert update.error.retryable is retryable
    assert update.error.provider_detail == body
    assert vendor.paths == ["/job/J1/status"]  # no result is fetched for a failed job


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(500, text="oops"), RetryableProviderError),
        (httpx.Response(429, headers={"Retry-After": "2"}), RetryableProviderError),
        (httpx.Response(200, text="{not json"), RetryableProviderError),
        (httpx.Response(200, json={"state": "COMPLETED"}), RetryableProviderError),
        (httpx.Response(200, json={"status": None}), RetryableProviderError),
        (httpx.Response(404, json={"detail": "Job not found"}), PermanentProviderError),
    ],
    ids=["500", "429", "malformed", "no-status", "null-status", "404"],
)
async def test_fetch_errors(answer: httpx.Response, error: type[Exception]) -> None:
    vendor = Vendor({"/job/J1/status": answer})
    with pytest.raises(error) as err:
        await vendor.provider().fetch("J1", KlangioOptions(outputs=["midi"]))
    if answer.status_code == 429:
        assert err.value.retry_after == 2.0  # type: ignore[attr-defined]
    if answer.status_code == 404:
        assert err.value.code == "provider_not_found"  # type: ignore[attr-defined]


async def test_job_ids_cannot_leave_the_job_path() -> None:
    vendor = Vendor({})
    with pytest.raises(PermanentProviderError):
        await vendor.provider().fetch("../transcription", KlangioOptions(outputs=["midi"]))
    assert vendor.requests[0].url.raw_path == b"/job/..%2Ftranscription/status"


async def test_cancel_makes_no_call() -> None:
    vendor = Vendor({})
    await vendor.provider().cancel("J1")
    assert vendor.requests == []
