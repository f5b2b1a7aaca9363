"""The Daglo adapter on recorded payloads, with httpx.MockTransport as the vendor."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from pydantic import SecretStr

from app.config import Settings
from app.providers import registry
from app.providers.base import (
    PermanentProviderError,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.daglo import (
    STATUSES,
    DagloProvider,
    build,
    build_transcript,
    request_fields,
    seconds,
    update_from_status,
)
from app.providers.daglo_options import LANGUAGES, DagloOptions, daglo_language, resolve_language
from tests.providers.helpers import recorded, stored_upload, submit_request_for

KEY = "daglo-secret-token"
BASE = "https://daglo.test"
RID = "12345678-abcd-efgh-1234-abcdefghijkl"


def payload(name: str) -> Any:
    return recorded("daglo", name)


def submit_request(
    tmp_path: Path | None = None, *, options: dict[str, Any] | None = None, **fields: Any
) -> SubmitRequest:
    """An upload written in ``tmp_path`` (no audio without it), with Daglo's ``options``."""
    audio = stored_upload(tmp_path, "hello.wav", b"RIFF....WAVEfmt fake audio")
    return submit_request_for(audio, options=DagloOptions.model_validate(options or {}), **fields)


def options_of(request: SubmitRequest) -> DagloOptions:
    assert isinstance(request.options, DagloOptions)
    return request.options


Handler = Callable[[httpx.Request], httpx.Response]


def provider(handler: Handler) -> DagloProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return DagloProvider(SecretStr(KEY), BASE + "/", http)


def answer(status: int, body: Any = None, **headers: str) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(body, (dict, list)):
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(status, content=body or b"", headers=headers)

    return handle


def no_secret(error: Exception) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(getattr(error, "provider_detail", None))


# --- converters on recorded payloads --------------------------------------------------


def test_the_documented_example_becomes_words_in_seconds_grouped_by_segment_id() -> None:
    body = payload("status_transcribed.json")
    update = update_from_status(RID, body)
    assert update.status == "completed" and update.provider_status == "transcribed"
    assert update.result is not None and update.result.raw == body
    transcript = update.result.transcript
    assert (
        transcript.text
        == "안녕하세요. 액션 파워입니다. 음성 인식의 선두주자 액션 파워의 기술을 만나보세요."
    )
    assert transcript.provider == "daglo"
    # Daglo gives no duration, detected language, confidence, speaker or channel.
    assert transcript.duration is None and transcript.language is None
    assert [s.text for s in transcript.segments] == [
        "안녕하세요.",
        "액션 파워입니다.",
        "음성 인식의 선두주자 액션 파워의 기술을 만나보세요.",
    ]
    first, second, _ = transcript.segments
    assert (first.start, first.end) == (0.06, 0.86)
    assert [(w.text, w.start, w.end) for w in second.words] == [
        ("액션", 0.82, 1.42),
        ("파워입니다.", 1.38, 2.02),
    ]
    words = [w for s in transcript.segments for w in s.words]
    assert len(words) == 10 and words[-1].end == 6.48
    assert all(w.confidence is None for w in words)
    assert all(s.speaker is None and s.channel is None for s in transcript.segments)


def test_speakers_split_segments_and_a_left_out_seconds_is_zero() -> None:
    update = update_from_status("r", payload("status_diarized.json"))
    assert update.result is not None
    transcript = update.result.transcript
    assert [(s.speaker, s.text, s.start, s.end) for s in transcript.segments] == [
        ("1", "여보세요.", 0.3, 1.1),
        ("2", "네 안녕하세요.", 1.5, 2.6),
    ]
    # The language we asked for, echoed back in `custom`: not a detection, not a guess.
    assert transcript.language == "ko-KR"


def test_multichannel_entries_are_channels_when_we_asked_for_them() -> None:
    body = payload("status_multichannel.json")
    transcript = build_transcript(body)
    assert [(s.channel, s.text) for s in transcript.segments] == [(0, "hello there"), (1, "hi")]
    assert transcript.text == "hello there\nhi"
    # Without our echoed channel count, an entry is not known to be a channel.
    body.pop("custom")
    assert {s.channel for s in build_transcript(body).segments} == {None}


def test_custom_echoed_as_json_text_is_read_as_the_object() -> None:
    # An upload sends `custom` as a form field of JSON text (the multipart encoding
    # of nested fields is not documented): Daglo may echo it back as that text.
    body = payload("status_multichannel.json")
    body["custom"] = json.dumps(body["custom"])
    transcript = build_transcript(body)
    assert [s.channel for s in transcript.segments] == [0, 1]
    assert transcript.language == "en-US" and transcript.text == "hello there\nhi"
    body["custom"] = "not json"
    assert build_transcript(body).language is None


def test_the_channels_asked_in_the_options_need_no_echo() -> None:
    body = payload("status_multichannel.json")
    body.pop("custom")
    update = update_from_status("r", body, channels=2)
    assert update.result is not None
    assert [s.channel for s in update.result.transcript.segments] == [0, 1]
    assert update.result.transcript.text == "hello there\nhi"


async def test_fetch_reads_the_channel_count_from_the_jobs_options() -> None:
    body = payload("status_multichannel.json")
    body.pop("custom")
    options = DagloOptions.model_validate({"sttConfig": {"multiChannel": {"channelCount": 2}}})
    update = await provider(answer(200, body)).fetch(RID, options)
    assert update.result is not None
    assert [s.channel for s in update.result.transcript.segments] == [0, 1]
    plain = await provider(answer(200, body)).fetch(RID, DagloOptions())
    assert plain.result is not None
    assert {s.channel for s in plain.result.transcript.segments} == {None}


def test_nlp_results_are_kept_in_the_raw_payload() -> None:
    body = payload("status_nlp.json")
    update = update_from_status("r", body)
    assert update.result is not None
    assert update.result.raw["sttResults"][0]["sentiment"] == "Negative"
    assert update.result.transcript.text == "서비스가 너무 느려요."


def test_the_callback_example_has_text_but_no_times() -> None:
    transcript = build_transcript(payload("callback_transcribed.json"))
    [segment] = transcript.segments
    assert segment.text == transcript.text and transcript.text.startswith("안녕하세요.")
    assert segment.start is None and segment.end is None and segment.words == []


def test_transcribed_without_results_is_an_empty_transcript() -> None:
    update = update_from_status("r", {"rid": "r", "status": "transcribed"})
    assert update.result is not None
    assert update.result.transcript.text == "" and update.result.transcript.segments == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"seconds": "0", "nanos": 60000000}, 0.06),
        ({"seconds": "1", "nanos": 419999999}, 1.42),
        ({"seconds": 4, "nanos": 0}, 4.0),
        ({"nanos": 500000000}, 0.5),
        ({"seconds": "12"}, 12.0),
        (None, None),
    ],
)
def test_seconds_from_a_protobuf_duration(value: Any, expected: float | None) -> None:
    assert seconds(value) == expected


@pytest.mark.parametrize("value", ["1.5s", {"seconds": "one"}, {"seconds": True}, 3])
def test_seconds_refuses_other_shapes(value: Any) -> None:
    with pytest.raises(ValueError):
        seconds(value)


# --- status words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "ours"),
    [
        ("ai_requested", "processing"),
        ("uploaded", "processing"),
        ("file_processing", "processing"),
        ("transcribing", "processing"),
        ("post_processing", "processing"),
        ("transcribed", "completed"),
        ("input_error", "failed"),
        ("transcript_error", "failed"),
        ("file_error", "failed"),
    ],
)
def test_every_documented_status_word_maps(word: str, ours: str) -> None:
    assert STATUSES[word] == ours
    update = update_from_status(RID, {"rid": RID, "status": word})
    assert update.status == ours and update.provider_status == word
    assert update.provider_job_id == RID


def test_an_unknown_status_keeps_processing_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="app.providers.daglo"):
        update = update_from_status(RID, {"status": "queued_for_gpu"})
    assert update.status == "processing" and update.provider_status == "queued_for_gpu"
    assert "queued_for_gpu" in caplog.text


@pytest.mark.parametrize(
    ("name", "code", "retryable"),
    [
        ("status_file_error.json", "invalid_audio", False),
        ("status_input_error.json", "invalid_request", False),
        ("status_transcript_error.json", "provider_failed", True),
    ],
)
def test_vendor_side_failures_have_clear_codes(name: str, code: str, retryable: bool) -> None:
    body = payload(name)
    update = update_from_status(RID, body)
    assert update.status == "failed" and update.error is not None
    assert (update.error.code, update.error.retryable) == (code, retryable)
    assert body["message"] in update.error.message
    assert update.error.provider_detail == {"status": body["status"], "message": body["message"]}


# --- languages and options --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "daglo"),
    [
        ("ko", "ko-KR"),
        ("en", "en-US"),
        ("ja", "ja-JP"),
        ("zh", "cmn-Hans-CN"),
        ("cmn", "cmn-Hans-CN"),
        ("de", "de-DE"),
        ("fr", "fr-FR"),
        ("es", "es-ES"),
        ("it", "it-IT"),
        ("nl", "nl-NL"),
        ("sv", "sv-SE"),
        ("hi", "hi-IN"),
        ("ru", "ru-RU"),
        ("vi", "vi-VN"),
        ("th", "th-TH"),
        ("id", "id-ID"),
        ("fa", "fa-IR"),
        ("cs", "cs-CZ"),
        ("ko-KR", "ko-KR"),
        ("cmn-Hans-CN", "cmn-Hans-CN"),
        ("cmn-hans-cn", "cmn-Hans-CN"),  # BCP-47 is case-insensitive; Daglo is not
        ("EN-us", "en-US"),
        ("en-GB", "en-US"),  # Daglo has one English
        ("zh-Hans", "cmn-Hans-CN"),
        ("es_ES", "es-ES"),
    ],
)
def test_language_tags_map_to_daglos_enum(tag: str, daglo: str) -> None:
    assert daglo_language(tag) == daglo


def test_capabilities_list_the_mapped_primary_subtags() -> None:
    assert set(DagloProvider.capabilities.languages or ()) == set(LANGUAGES)
    assert "mixed" not in (DagloProvider.capabilities.languages or ())


def test_an_unmapped_language_is_refused() -> None:
    with pytest.raises(PermanentProviderError) as caught:
        daglo_language("pt-BR")
    assert caught.value.code == "unsupported_language"


@pytest.mark.parametrize(
    ("job", "option", "sent"),
    [
        (None, None, None),
        ("ko", None, "ko-KR"),
        (None, "mixed", "mixed"),
        ("ko", "mixed", "mixed"),
        ("en", "mixed", "mixed"),
        ("ja", "ja-JP", "ja-JP"),
    ],
)
def test_the_language_sent(job: str | None, option: str | None, sent: str | None) -> None:
    assert resolve_language(job, option) == sent


@pytest.mark.parametrize(("job", "option"), [("ja", "mixed"), ("en", "ko-KR")])
def test_a_language_option_that_contradicts_the_job_is_refused(job: str, option: str) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        resolve_language(job, option)
    assert caught.value.code == "invalid_options"


def test_options_take_daglos_documented_fields() -> None:
    options = DagloOptions.model_validate(
        {
            "sttConfig": {
                "model": "general",
                "language": "mixed",
                "keywordBoost": {"enable": True, "keywords": ["Daglo"], "boost": 15},
                "multiChannel": {"channelCount": 2},
                "speakerDiarization": {"enable": True, "speakerCountHint": 3},
            },
            "nlpConfig": {
                "keywordExtraction": {"enable": True, "maxCount": 5},
                "sentimentAnalysis": {"enable": True},
            },
        }
    )
    assert options.sttConfig is not None and options.sttConfig.multiChannel is not None
    assert options.sttConfig.multiChannel.channelCount == 2
    schema = DagloOptions.model_json_schema()
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "options",
    [
        {"diarize": True},
        {"sttConfig": {"punctuate": True}},
        {"sttConfig": {"speakerDiarization": {"enable": True, "maxSpeakers": 2}}},
        {"nlpConfig": {"summary": {"enable": True}}},
        {"sttConfig": {"language": "ko-kr"}},  # Daglo's enum is case-sensitive
        {"sttConfig": {"language": "pt-BR"}},
        {"sttConfig": {"model": "whisper"}},
        {"sttConfig": {"keywordBoost": {"enable": True, "boost": 16}}},
        {"sttConfig": {"multiChannel": {"channelCount": 3}}},
        {"sttConfig": {"speakerDiarization": {"enable": True, "speakerCountHint": 1}}},
        {"nlpConfig": {"keywordExtraction": {"enable": True, "maxCount": 0}}},
        {"callbackUrl": "https://example.com"},
    ],
)
def test_options_refuse_unknown_keys_and_bad_values(options: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        DagloOptions.model_validate(options)


# --- request building -----------------------------------------------------------------


def test_request_fields_carry_config_callback_and_our_custom() -> None:
    request = submit_request(
        language="en",
        options={
            "sttConfig": {
                "multiChannel": {"channelCount": 2},
                "speakerDiarization": {"enable": True},
            },
            "nlpConfig": {"sentimentAnalysis": {"enable": False}},
        },
        callback_url="https://gw.example/callbacks/daglo/job_1?expires=1&sig=x",
    )
    assert request_fields(request, options_of(request)) == {
        "sttConfig": {
            "language": "en-US",
            "multiChannel": {"channelCount": 2},
            "speakerDiarization": {"enable": True},
        },
        "nlpConfig": {"sentimentAnalysis": {"enable": False}},
        "callback": {"url": "https://gw.example/callbacks/daglo/job_1?expires=1&sig=x"},
        "custom": {"gateway_job_id": "job_1", "language": "en-US", "channel_count": 2},
    }


def test_request_fields_without_anything_asked() -> None:
    request = submit_request()
    assert request_fields(request, options_of(request)) == {"custom": {"gateway_job_id": "job_1"}}


# --- the adapter over HTTP --------------------------------------------------------------


async def test_an_upload_is_sent_as_multipart_with_json_text_fields(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=payload("submit_response_openapi.json"))

    request = submit_request(
        tmp_path,
        language="ko",
        options={"sttConfig": {"speakerDiarization": {"enable": True}}},
        callback_url="https://gw.example/cb",
    )
    update = await provider(handle).submit(request)
    assert update.status == "processing" and update.provider_job_id == RID
    [sent] = seen
    assert sent.method == "POST" and str(sent.url) == f"{BASE}/stt/v1/async/transcripts"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"].startswith("multipart/form-data")
    body = sent.read()
    assert b'name="file"; filename="hello.wav"' in body and b"fake audio" in body
    stt_config = json.dumps({"speakerDiarization": {"enable": True}, "language": "ko-KR"})
    assert f'name="sttConfig"\r\n\r\n{stt_config}'.encode() in body
    assert b'name="callback"\r\n\r\n{"url": "https://gw.example/cb"}' in body
    assert b"callbackUrl" not in body


async def test_a_source_url_is_sent_as_json_for_daglo_to_fetch() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=payload("submit_response.json"))

    request = submit_request(source_url="https://media.example/a.wav", language="ja")
    update = await provider(handle).submit(request)
    assert update.provider_job_id == RID
    assert DagloProvider.needs_local_audio is False
    [sent] = seen
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "audio": {"source": {"url": "https://media.example/a.wav"}},
        "sttConfig": {"language": "ja-JP"},
        "custom": {"gateway_job_id": "job_1", "language": "ja-JP"},
    }


async def test_fetch_gets_the_rid_with_the_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=payload("status_transcribing.json"))

    update = await provider(handle).fetch(RID, DagloOptions())
    assert (update.status, update.provider_status) == ("processing", "transcribing")
    assert str(seen[0].url) == f"{BASE}/stt/v1/async/transcripts/{RID}"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"


async def test_204_is_done_with_an_empty_transcript() -> None:
    update = await provider(answer(204)).fetch(RID, DagloOptions())
    assert update.status == "completed" and update.result is not None
    assert update.result.transcript.text == "" and update.result.transcript.segments == []


async def test_a_204_to_the_submit_is_done_with_an_empty_transcript(tmp_path: Path) -> None:
    # Documented for the POST as well: "transcription is complete, but the result is
    # empty". There is no rid to poll, and submitting again would not change that.
    update = await provider(answer(204)).submit(submit_request(tmp_path))
    assert update.status == "completed" and update.result is not None
    assert update.result.transcript.text == "" and update.result.transcript.segments == []
    assert update.provider_job_id is None


@pytest.mark.parametrize("operation", ["submit", "fetch"])
async def test_500_is_retryable(operation: str, tmp_path: Path) -> None:
    daglo = provider(answer(500, {"error": "Internal Server Error."}))
    with pytest.raises(RetryableProviderError) as caught:
        if operation == "submit":
            await daglo.submit(submit_request(tmp_path))
        else:
            await daglo.fetch(RID, DagloOptions())
    no_secret(caught.value)


@pytest.mark.parametrize("operation", ["submit", "fetch"])
async def test_429_is_retryable_after_retry_after(operation: str, tmp_path: Path) -> None:
    daglo = provider(answer(429, payload("error_429.json"), **{"Retry-After": "2"}))
    with pytest.raises(RetryableProviderError) as caught:
        if operation == "submit":
            await daglo.submit(submit_request(tmp_path))
        else:
            await daglo.fetch(RID, DagloOptions())
    assert caught.value.retry_after == 2.0


@pytest.mark.parametrize(
    ("status", "file", "code"),
    [
        (400, "error_400.json", "invalid_request"),
        (413, "error_413.json", "input_too_large"),
        (415, None, "unsupported_media"),
        (401, None, "provider_auth"),
    ],
)
async def test_refusals_are_permanent_with_the_vendors_detail(
    status: int, file: str | None, code: str, tmp_path: Path
) -> None:
    body = payload(file) if file else {"error": "Unsupported Media Type."}
    with pytest.raises(PermanentProviderError) as caught:
        await provider(answer(status, body)).submit(submit_request(tmp_path))
    assert caught.value.code == code
    assert caught.value.provider_detail == {"status_code": status, "body": body}
    no_secret(caught.value)


async def test_an_unknown_rid_is_permanent() -> None:
    with pytest.raises(PermanentProviderError) as caught:
        await provider(answer(404, {"error": "Not Found."})).fetch(RID, DagloOptions())
    assert caught.value.code == "provider_not_found"


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"rid": ',
        json.dumps([1, 2]).encode(),
        json.dumps({"rid": "r"}).encode(),  # no status
        json.dumps({"status": "transcribed", "sttResults": {"transcript": "x"}}).encode(),
        json.dumps({"status": "transcribed", "sttResults": [{"words": ["x"]}]}).encode(),
        json.dumps(
            {
                "status": "transcribed",
                "sttResults": [{"words": [{"word": "x", "startTime": "0.5s"}]}],
            }
        ).encode(),
    ],
)
async def test_a_malformed_status_answer_is_retryable(body: bytes) -> None:
    with pytest.raises(RetryableProviderError):
        await provider(answer(200, body)).fetch(RID, DagloOptions())


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"rid": ""}', b'{"rid": 7}'])
async def test_a_submit_answer_without_a_rid_is_retryable(body: bytes, tmp_path: Path) -> None:
    with pytest.raises(RetryableProviderError):
        await provider(answer(200, body)).submit(submit_request(tmp_path))


async def test_a_transport_error_is_retryable_and_names_no_secret(tmp_path: Path) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RetryableProviderError) as caught:
        await provider(handle).submit(submit_request(tmp_path))
    no_secret(caught.value)


async def test_cancel_is_a_no_op_as_daglo_has_no_endpoint() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no vendor call expected")

    assert DagloProvider.capabilities.cancel is False
    await provider(handle).cancel(RID)


def test_the_registry_builds_it_from_settings() -> None:
    assert registry.SPECS["daglo"].factory == "app.providers.daglo:build"
    settings = Settings(_env_file=None, daglo_api_key=KEY, daglo_base_url="http://127.0.0.1:9")
    adapter = build(settings, httpx.AsyncClient())
    assert isinstance(adapter, DagloProvider)
    assert KEY not in repr(adapter.__dict__)


async def test_daglo_requests_per_second_paces_the_status_fetches() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"rid": RID, "status": "transcribing"})

    settings = Settings(
        _env_file=None,
        daglo_api_key=KEY,
        daglo_base_url="http://127.0.0.1:7",  # its own endpoint: no other test's pacing
        daglo_requests_per_second=5,
    )
    adapter = build(settings, httpx.AsyncClient(transport=httpx.MockTransport(handle)))
    started = time.monotonic()
    for _ in range(6):
        assert (await adapter.fetch(RID, DagloOptions())).status == "processing"
    # Six requests at 5 a second: the last starts at least five intervals after the first.
    assert time.monotonic() - started >= 5 * 0.2 - 0.01
