"""The Klangio adapter on its own: pure converters on the documents' payloads, and
the adapter against httpx.MockTransport for what goes out and how errors map.

Where each file in payloads/klangio/ comes from: payloads/klangio/README.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from app.config import Settings
from app.providers.base import (
    NoOptions,
    PermanentProviderError,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.klangio import (
    STATUS_MAP,
    KlangioProvider,
    announced_outputs,
    build,
    build_result,
    check_language,
    detail_text,
    empty_transcript,
    failure,
    redact,
    upload_name_and_type,
)
from app.providers.klangio_grace import FirstSeen
from app.providers.klangio_options import (
    OUTPUTS,
    KlangioOptions,
    transcription_form,
    transcription_params,
)
from tests.providers.helpers import PAYLOADS, recorded, stored_upload, submit_request_for

BASE = "https://api.klang.io"
KEY = "kl-secret-key-123"


def payload(name: str) -> Any:
    return recorded("klangio", name)


# --- pure functions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "ours"),
    [
        ("IN_QUEUE", "processing"),
        ("IN_PROGRESS", "processing"),
        ("COMPLETED", "completed"),
        ("FAILED", "failed"),
        ("CANCELLED", "failed"),
        ("TIMED_OUT", "failed"),
    ],
)
def test_every_status_word_maps(word: str, ours: str) -> None:
    assert STATUS_MAP.get(word) == ours


def test_the_status_payloads_use_known_words() -> None:
    for path in (PAYLOADS / "klangio").glob("status_*.json"):
        assert json.loads(path.read_text())["status"] in STATUS_MAP, path.name


def test_options_defaults_and_refusals() -> None:
    options = KlangioOptions()
    assert (options.model, options.outputs, options.title, options.composer) == (
        "universal",
        ["midi", "mxml"],
        None,
        None,
    )
    refused: list[dict[str, Any]] = [
        {"modle": "guitar"},  # unknown key
        {"model": "kazoo"},  # not in the enum
        {"outputs": ["json"]},  # named by one third-party client only
        {"outputs": ["xml"]},  # the path, not the output's name
        {"outputs": []},
        {"title": ""},
    ]
    for bad in refused:
        with pytest.raises(pydantic.ValidationError):
            KlangioOptions.model_validate(bad)
    assert KlangioOptions(outputs=["pdf", "midi", "pdf"]).outputs == ["pdf", "midi"]
    assert KlangioOptions(model="piano_arrangement").model == "piano_arrangement"


def test_options_schema_lists_the_enums() -> None:
    schema = KlangioOptions.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]["outputs"]["items"]["enum"]) == set(OUTPUTS)
    assert {"universal", "guitar", "piano", "drums"} <= set(schema["properties"]["model"]["enum"])
    assert all(field.get("description") for field in schema["properties"].values())


def test_request_fields_follow_the_documents() -> None:
    options = KlangioOptions(model="guitar", title="Awesome recording", composer="John Doe")
    assert transcription_params(options, "https://gw/cb?expires=1&sig=x") == {
        "model": "guitar",
        "title": "Awesome recording",
        "composer": "John Doe",
        "webhook_url": "https://gw/cb?expires=1&sig=x",
    }
    assert transcription_params(KlangioOptions(), None) == {"model": "universal"}
    assert transcription_form(KlangioOptions(outputs=["midi", "pdf", "gp5"])) == {
        "outputs": ["midi", "pdf", "gp5"]
    }


def test_a_downloaded_source_gets_a_name_and_type(tmp_path: Path) -> None:
    downloaded = submit_request(tmp_path, filename=None, content_type=None, audio_format="mp3")
    assert upload_name_and_type(downloaded) == ("job-1.mp3", "audio/mpeg")
    assert upload_name_and_type(submit_request(tmp_path)) == ("riff.wav", "audio/wav")


def test_language_is_refused() -> None:
    check_language(None)
    with pytest.raises(PermanentProviderError) as err:
        check_language("en")
    assert err.value.code == "unsupported_language"


@pytest.mark.parametrize(
    ("name", "announced"),
    [
        ("create_transcription.json", {"midi", "gp5", "pdf"}),
        ("create_transcription_getting_started.json", {"mxml", "midi"}),
        ("create_no_flags_constructed.json", None),
    ],
)
def test_gen_flags_of_both_create_shapes(name: str, announced: set[str] | None) -> None:
    assert announced_outputs(payload(name)) == announced


def test_old_flag_name_announces_quantized_midi() -> None:
    assert announced_outputs({"gen_midi": False, "gen_midi_unq": True}) == {"midi_quant"}


def test_the_transcript_is_empty_not_invented() -> None:
    assert empty_transcript().model_dump() == {
        "text": "",
        "language": None,
        "duration": None,
        "provider": "klangio",
        "segments": [],
    }


def test_result_keeps_the_files_and_the_raw_payload() -> None:
    result = build_result(
        payload("status_completed.json"),
        {"midi_quant": ("midi_unq", b"MThd-q"), "mxml": ("xml", b"<score/>")},
        ["gp5"],
    )
    assert [(a.name, a.content_type, a.data) for a in result.artifacts] == [
        ("midi_quant", "audio/midi", b"MThd-q"),
        ("mxml", "application/vnd.recordare.musicxml+xml", b"<score/>"),
    ]
    assert result.raw == {
        "status": {"status": "COMPLETED"},
        "outputs": {"midi_quant": "midi_unq", "mxml": "xml"},
        "missing_outputs": ["gp5"],
    }
    assert result.transcript == empty_transcript()


def test_failure_keeps_the_vendor_reason_and_body() -> None:
    plain = failure("FAILED", payload("status_failed.json"))
    assert (plain.code, plain.message) == ("provider_failed", "klangio reported the job FAILED")
    assert plain.provider_detail == {"status": "FAILED"} and not plain.retryable
    detailed = failure("FAILED", payload("status_failed_third_party.json"))
    assert detailed.message == "klangio reported the job FAILED: Audio could not be decoded"
    timed_out = failure("TIMED_OUT", payload("status_timed_out_third_party.json"))
    assert timed_out.code == "provider_timeout" and timed_out.retryable
    assert timed_out.message.endswith(": Processing took too long")
    assert failure("CANCELLED", {"status": "CANCELLED"}).code == "provider_canceled"


def test_fastapi_details_read_as_text() -> None:
    assert detail_text(payload("error_401_third_party.json")) == "Invalid API key"
    assert detail_text(payload("error_422_third_party.json")) == "query.model: field required"
    assert detail_text({"message": "other shape"}) is None
    assert detail_text("plain text") is None


def test_redact_reaches_nested_strings() -> None:
    echoed = {"detail": [{"loc": ["header", "kl-api-key"], "input": KEY, "n": 1}], "k": [KEY]}
    assert KEY not in json.dumps(redact(echoed, KEY))
    assert redact(echoed, KEY)["detail"][0]["n"] == 1


def test_build_takes_its_settings() -> None:
    values: dict[str, Any] = {
        "_env_file": None,
        "klangio_api_key": KEY,
        "klangio_base_url": "http://127.0.0.1:9/",
    }
    settings = Settings(**values)
    provider = build(settings, httpx.AsyncClient())
    assert isinstance(provider, KlangioProvider)
    assert provider.capabilities.languages == ()
    assert provider.capabilities.callbacks and not provider.capabilities.cancel
    assert provider.needs_local_audio
    assert "wav" in provider.capabilities.formats and "mp3" in provider.capabilities.formats


# --- the adapter against MockTransport ------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


class Vendor:
    """Routes by path; remembers every request."""

    def __init__(self, routes: dict[str, Handler | httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get(request.url.path)
        if answer is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        return answer(request) if callable(answer) else answer

    def provider(self, key: str = KEY, **settings: Any) -> KlangioProvider:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return KlangioProvider(http, key, BASE, **settings)

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def multipart(request: httpx.Request) -> list[tuple[str, str | None, bytes]]:
    """(name, filename, content) of each part."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message: Any = BytesParser(policy=policy.default).parsebytes(head + request.content)
    return [
        (
            str(part.get_param("name", header="content-disposition")),
            part.get_filename(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    ]


def submit_request(folder: Path, **changes: Any) -> SubmitRequest:
    path = stored_upload(folder, "riff.wav", b"RIFF....WAVEfmt fake audio")
    values: dict[str, Any] = {
        "job_id": "job-1",
        "options": KlangioOptions(outputs=["midi", "pdf", "gp5"], title="Awesome recording"),
        "callback_url": "http://gw.example/callbacks/klangio/job-1?expires=9&sig=abc",
    }
    return submit_request_for(path, **(values | changes))


def created(name: str = "create_transcription.json") -> httpx.Response:
    return httpx.Response(200, json=payload(name))


async def test_submit_sends_the_documented_request(tmp_path: Path) -> None:
    vendor = Vendor({"/transcription": created()})
    update = await vendor.provider().submit(submit_request(tmp_path))

    assert update == ProviderUpdate(status="processing", provider_job_id="SOME_JOB_ID")
    (sent,) = vendor.requests
    assert sent.method == "POST" and sent.url.path == "/transcription"
    assert sent.headers["kl-api-key"] == KEY
    assert dict(sent.url.params) == {
        "model": "universal",
        "title": "Awesome recording",
        "webhook_url": "http://gw.example/callbacks/klangio/job-1?expires=9&sig=abc",
    }
    parts = multipart(sent)
    assert [(n, f, v) for n, f, v in parts if n == "outputs"] == [
        ("outputs", None, b"midi"),
        ("outputs", None, b"pdf"),
        ("outputs", None, b"gp5"),
    ]
    assert ("file", "riff.wav", b"RIFF....WAVEfmt fake audio") in parts
    assert 'filename="riff.wav"\r\nContent-Type: audio/wav' in sent.content.decode(errors="replace")


async def test_submit_warns_of_outputs_klangio_does_not_announce(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The older page's example answers gen_gp5 false to a request for gp5.
    vendor = Vendor({"/transcription": created("create_transcription_getting_started.json")})
    with caplog.at_level(logging.WARNING, logger="app.providers.klangio"):
        update = await vendor.provider().submit(submit_request(tmp_path))
    assert "announces no gp5" in caplog.text
    assert update.provider_job_id == "SOME_JOB_ID"  # Klangio's own id, the job goes on


async def test_submit_without_callback_sends_no_webhook(tmp_path: Path) -> None:
    vendor = Vendor({"/transcription": created("create_no_flags_constructed.json")})
    await vendor.provider().submit(submit_request(tmp_path, callback_url=None))
    assert "webhook_url" not in vendor.requests[0].url.params


async def test_submit_refuses_a_language_before_any_call(tmp_path: Path) -> None:
    vendor = Vendor({})
    with pytest.raises(PermanentProviderError) as err:
        await vendor.provider().submit(submit_request(tmp_path, language="en-US"))
    assert err.value.code == "unsupported_language"
    assert vendor.requests == []


@pytest.mark.parametrize(
    ("status", "body", "code", "said"),
    [
        (400, {"detail": "Bad request"}, "invalid_request", "Bad request"),
        (401, payload("error_401_third_party.json"), "provider_auth", "Invalid API key"),
        (413, {"detail": "File too large"}, "input_too_large", "File too large"),
        (415, {"detail": "Unsupported file type"}, "unsupported_media", "Unsupported file"),
        (422, payload("error_422_third_party.json"), "invalid_request", "query.model: field"),
    ],
)
async def test_submit_refusals_fail_the_job_with_the_vendor_detail(
    tmp_path: Path, status: int, body: dict[str, Any], code: str, said: str
) -> None:
    vendor = Vendor({"/transcription": httpx.Response(status, json=body)})
    with pytest.raises(PermanentProviderError) as err:
        await vendor.provider().submit(submit_request(tmp_path))
    assert err.value.code == code and not err.value.retryable
    assert err.value.provider_detail == {"status_code": status, "body": body}
    assert err.value.message.startswith(f"klangio submit refused: HTTP {status}: {said}")


async def test_a_key_echoed_by_klangio_is_not_kept(tmp_path: Path) -> None:
    echo = {"detail": [{"loc": ["header", "kl-api-key"], "msg": f"bad key {KEY}", "input": KEY}]}
    for status in (422, 500):
        vendor = Vendor({"/transcription": httpx.Response(status, json=echo)})
        with pytest.raises((PermanentProviderError, RetryableProviderError)) as err:
            await vendor.provider().submit(submit_request(tmp_path))
        assert KEY not in err.value.message and KEY not in str(err.value)
        assert KEY not in json.dumps(err.value.provider_detail)
        assert "[redacted]" in err.value.message


async def test_submit_500_and_429_are_retryable(tmp_path: Path) -> None:
    vendor = Vendor({"/transcription": httpx.Response(500, text="boom")})
    with pytest.raises(RetryableProviderError) as err:
        await vendor.provider().submit(submit_request(tmp_path))
    assert err.value.retry_after is None
    assert err.value.provider_detail == {"status_code": 500, "body": "boom"}

    vendor = Vendor(
        {
            "/transcription": httpx.Response(
                429, headers={"Retry-After": "7"}, json={"detail": "Too Many Requests"}
            )
        }
    )
    with pytest.raises(RetryableProviderError) as err:
        await vendor.provider().submit(submit_request(tmp_path))
    assert err.value.retry_after == 7.0
    assert err.value.message == "klangio submit: HTTP 429: Too Many Requests"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json=["SOME_JOB_ID"]),
        httpx.Response(200, json={"creation_date": "2023-01-01"}),
        httpx.Response(200, json={"job_id": 17}),
    ],
    ids=["not-json", "not-object", "no-job-id", "job-id-not-a-string"],
)
async def test_submit_malformed_answers_are_retryable(
    tmp_path: Path, answer: httpx.Response
) -> None:
    vendor = Vendor({"/transcription": answer})
    with pytest.raises(RetryableProviderError):
        await vendor.provider().submit(submit_request(tmp_path))


async def test_submit_timeout_is_retryable(tmp_path: Path) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(RetryableProviderError, match="timed out"):
        await Vendor({"/transcription": slow}).provider().submit(submit_request(tmp_path))


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


def completed(**files: httpx.Response) -> Vendor:
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


async def test_no_file_at_all_is_still_a_retry_after_the_grace() -> None:
    files = [httpx.Response(200, content=b"MThd"), httpx.Response(404)]
    vendor = completed(midi=lambda _: files.pop(0))
    clock = Clock()
    adapter = vendor.provider(clock=clock, grace_seconds=30.0)
    options = KlangioOptions(outputs=["midi", "pdf"])
    assert (await adapter.fetch("J1", options)).status == "processing"
    clock.now += 31.0
    with pytest.raises(RetryableProviderError, match="none of its files"):
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


async def test_completed_with_no_file_at_all_is_retryable() -> None:
    with pytest.raises(RetryableProviderError, match="none of its files"):
        await completed().provider().fetch("J1", KlangioOptions(outputs=["midi", "pdf"]))


async def test_an_empty_file_is_not_there_yet() -> None:
    vendor = completed(midi=httpx.Response(200, content=b""))
    with pytest.raises(RetryableProviderError, match="none of its files"):
        await vendor.provider().fetch("J1", KlangioOptions(outputs=["midi"]))
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
