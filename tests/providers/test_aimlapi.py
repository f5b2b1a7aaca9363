"""The AIML API adapter on recorded payloads, with httpx.MockTransport as the vendor."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from app.config import Settings
from app.providers.aimlapi import STATUS_MAP, AimlApiProvider, build, interpret
from app.providers.aimlapi_options import (
    DEFAULT_MODEL,
    AimlApiOptions,
    create_fields,
    model_family,
    vendor_language,
)
from app.providers.aimlapi_transcripts import (
    assemblyai_transcript,
    deepgram_transcript,
    openai_transcript,
    to_transcript,
)
from app.providers.base import (
    PermanentProviderError,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.registry import ProviderRegistry
from app.transcripts import Segment, Word
from tests.providers.helpers import recorded, stored_upload, submit_request_for

KEY = "sk-aiml-secret-4711"
SAMPLE = (
    "He doesn't belong to you, and I don't see how you have anything to do with what is be "
    "his power, if he possess only that from this stage to you."
)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = recorded("aimlapi", f"{name}.json")
    return data


def payload(name: str) -> dict[str, Any]:
    answer = load(name)
    inner: dict[str, Any] = answer.get("result") or answer["output"]
    return inner


# --- converters on the recorded payloads ------------------------------------------------


def test_deepgram_with_channels_as_an_array_the_docs_example():
    t = deepgram_transcript(payload("status_completed_deepgram_nova3"))
    assert t.text == SAMPLE
    assert t.duration == 11.4
    assert t.language is None  # the payload names none: nothing is guessed
    assert t.provider == "aimlapi"
    assert t.segments == [
        Segment(
            start=0.32,
            end=0.4,
            text=SAMPLE,  # one speaker on one channel: the vendor's own text
            channel=0,
            speaker="0",
            words=[Word(start=0.32, end=0.4, text="He", confidence=0.9941406)],
        )
    ]


def test_deepgram_with_channels_as_one_object_and_paragraphs_the_spec():
    t = deepgram_transcript(payload("status_completed_deepgram_spec"))
    assert t.text == "He doesn't belong to you, and I don't see."
    assert t.duration == 2.9
    assert [(s.start, s.end, s.text, s.channel, s.speaker) for s in t.segments] == [
        (0.32, 1.68, "He doesn't belong to you,", 0, None),
        (1.92, 2.64, "and I don't see.", 0, None),
    ]
    assert [w.text for w in t.segments[0].words] == ["He", "doesn't", "belong", "to", "you,"]
    assert [w.text for w in t.segments[1].words] == ["and", "I", "don't", "see."]
    assert all(w.confidence == 0.9 for s in t.segments for w in s.words)


def test_deepgram_paragraphs_in_deepgrams_own_form():
    raw = {
        "metadata": {"duration": 3.0},
        "results": {
            "channels": [
                {
                    "alternatives": [
                        {
                            "transcript": "Hi. Bye.",
                            "words": [
                                {"word": "hi", "start": 0.1, "end": 0.4, "punctuated_word": "Hi."},
                                {"word": "bye", "start": 2.0, "end": 2.3},
                            ],
                            "paragraphs": {
                                "transcript": "\nHi.\n\nBye.",
                                "paragraphs": [
                                    {"sentences": [{"text": "Hi."}], "start": 0.1, "end": 0.4},
                                    {"sentences": [], "start": 2.0, "end": 2.3, "speaker": 1},
                                ],
                            },
                        }
                    ]
                }
            ]
        },
    }
    t = deepgram_transcript(raw)
    assert [(s.text, s.speaker, [w.text for w in s.words]) for s in t.segments] == [
        ("Hi.", None, ["Hi."]),
        ("bye", "1", ["bye"]),  # no sentences given: the words' text
    ]


def test_deepgram_multichannel_diarized_gives_each_channel_its_turns():
    t = deepgram_transcript(payload("status_completed_deepgram_multichannel"))
    assert t.text == "Hello there. How are you?\nFine thanks."
    assert t.language == "en"  # detected_language of the channel
    assert t.duration == 4.2
    assert [(s.channel, s.speaker, s.start, s.end, s.text) for s in t.segments] == [
        (0, "0", 0.1, 0.9, "Hello there."),
        (0, "1", 2.0, 2.7, "How are you?"),
        (1, "0", 1.0, 1.8, "Fine thanks."),
    ]


def test_deepgram_utterances_are_the_segments_when_given():
    t = deepgram_transcript(payload("status_completed_deepgram_utterances"))
    assert [(s.start, s.end, s.text, s.channel, s.speaker) for s in t.segments] == [
        (0.1, 0.9, "Hello there.", 0, "0"),
        (2.0, 2.7, "How are you?", 0, "1"),
    ]
    assert [w.text for w in t.segments[1].words] == ["How", "are", "you?"]


def test_deepgram_without_results_is_an_empty_transcript():
    t = deepgram_transcript({"metadata": {"duration": 1.5}, "results": None})
    assert (t.text, t.segments, t.duration) == ("", [], 1.5)


def test_assemblyai_the_docs_example_in_milliseconds():
    t = assemblyai_transcript(payload("status_completed_assemblyai_slam1"))
    assert t.text == SAMPLE
    assert t.language == "en-US"  # AssemblyAI's en_us
    assert t.duration == 11.0  # audio_duration is in seconds
    (segment,) = t.segments
    assert (segment.start, segment.end, segment.text, segment.speaker) == (0.32, 8.16, SAMPLE, None)
    assert len(segment.words) == 31
    assert segment.words[0] == Word(start=0.32, end=0.4, text="He", confidence=0.8894227)
    assert segment.words[-1] == Word(start=8.08, end=8.16, text="you.", confidence=0.7715247)


def test_assemblyai_utterances_carry_the_speakers():
    t = assemblyai_transcript(payload("status_completed_assemblyai_utterances"))
    assert t.text == "Guten Tag. Hallo."
    assert t.language == "de"
    assert [(s.start, s.end, s.text, s.speaker, s.channel) for s in t.segments] == [
        (0.1, 0.9, "Guten Tag.", "A", None),
        (1.5, 2.0, "Hallo.", "B", None),
    ]
    assert t.segments[0].words[1] == Word(start=0.4, end=0.9, text="Tag.", confidence=0.9)


def test_assemblyai_multichannel_words_count_channels_from_zero():
    raw = {
        "text": "a b",
        "words": [
            {"text": "a", "start": 0, "end": 100, "confidence": 1, "channel": "1"},
            {"text": "b", "start": 50, "end": 200, "confidence": 1, "channel": "2"},
        ],
        "audio_duration": 1,
    }
    t = assemblyai_transcript(raw)
    assert [(s.channel, s.text) for s in t.segments] == [(0, "a"), (1, "b")]


def test_openai_text_only_gets_no_invented_times():
    t = openai_transcript(payload("status_completed_openai_gpt4o"))
    assert t.text.startswith("He doesn't belong to you")
    assert (t.segments, t.duration, t.language) == ([], None, None)


@pytest.mark.parametrize(
    ("name", "converter"),
    [
        ("status_completed_deepgram_nova3", deepgram_transcript),
        ("status_completed_deepgram_spec", deepgram_transcript),
        ("status_completed_deepgram_multichannel", deepgram_transcript),
        ("status_completed_assemblyai_slam1", assemblyai_transcript),
        ("status_completed_assemblyai_utterances", assemblyai_transcript),
        ("status_completed_openai_gpt4o", openai_transcript),
    ],
)
def test_the_shape_is_recognised(name: str, converter: Callable[..., Any]):
    assert to_transcript(payload(name)) == converter(payload(name))


def test_an_unknown_shape_is_retryable():
    with pytest.raises(RetryableProviderError, match="shape"):
        to_transcript({"transcription": "hi"})


# --- status answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "ours"),
    [
        ("waiting", "processing"),  # aimlapi.txt
        ("active", "processing"),
        ("queued", "processing"),  # universal-stt-fetch.json
        ("generating", "processing"),
        ("completed", "completed"),
        ("error", "failed"),
        ("failed", "failed"),
    ],
)
def test_every_documented_status_word_maps(word: str, ours: str):
    assert STATUS_MAP[word] == ours
    body: dict[str, Any] = {"status": word, "error": {"name": "E", "message": "m"}}
    if ours == "completed":
        body["result"] = {"text": "hi"}
    update = interpret(body)
    assert update.status == ours
    assert update.provider_status == word


@pytest.mark.parametrize("word", ["paused", "COMPLETED-ISH", None, 7])
def test_an_unknown_status_keeps_processing_and_warns(word: Any, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="app.providers.aimlapi"):
        update = interpret({"status": word, "result": {"text": "hi"}})
    assert update.status == "processing"
    assert update.provider_status == (word if isinstance(word, str) else None)
    assert "unknown status" in caplog.text


@pytest.mark.parametrize(
    "name",
    [
        "status_completed_deepgram_nova3",
        "status_completed_deepgram_spec",
        "status_completed_assemblyai_slam1",
        "status_completed_assemblyai_utterances",
        "status_completed_openai_gpt4o",
    ],
)
@pytest.mark.parametrize("key", ["result", "output"])
def test_the_payload_is_read_from_result_or_output(name: str, key: str):
    body: dict[str, Any] = {"status": "completed", key: payload(name)}
    if key == "output":
        body["result"] = None  # a spec-style answer may name both, one null
    update = interpret(body)
    assert update.status == "completed"
    assert update.result is not None
    assert update.result.transcript == to_transcript(payload(name))
    assert update.result.raw == body  # the vendor's answer is kept as it came


def test_completed_without_a_payload_is_retryable():
    with pytest.raises(RetryableProviderError, match="without a result"):
        interpret({"status": "completed", "output": None, "error": None})


def test_a_vendor_side_error_fails_with_its_name_and_message():
    update = interpret(load("status_error"))
    assert update.status == "failed"
    assert update.provider_status == "error"
    assert update.error is not None
    assert update.error.code == "provider_failed"
    assert update.error.message == (
        "aimlapi could not transcribe the audio: "
        "TranscriptionError: File does not appear to contain audio."
    )
    assert update.error.provider_detail == {
        "status": "error",
        "error": {
            "name": "TranscriptionError",
            "message": "File does not appear to contain audio.",
        },
    }


def test_a_failure_without_a_reason_still_says_what_happened():
    update = interpret({"status": "failed"})
    assert update.error is not None
    assert "status 'failed'" in update.error.message


def test_an_assemblyai_transcript_that_failed_inside_fails_the_job():
    update = interpret(
        {"status": "completed", "result": {"id": "x", "status": "error", "error": "Bad audio"}}
    )
    assert update.status == "failed"
    assert update.error is not None and "Bad audio" in update.error.message


# --- options and language -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("#g1_nova-2-general", "deepgram"),
        ("nova-3", "deepgram"),
        ("#g1_whisper-large", "deepgram"),
        ("whisper-large", "deepgram"),
        ("aai/slam-1", "assemblyai"),
        ("slam-1", "assemblyai"),
        ("aai/universal", "assemblyai"),
        ("openai/gpt-4o-transcribe", "openai"),
        ("openai/gpt-4o-mini-transcribe", "openai"),
        ("microsoft/mai-transcribe-1.5", "mai"),
    ],
)
def test_model_families(model: str, family: str):
    assert model_family(model) == family


@pytest.mark.parametrize(
    ("model", "language", "expected"),
    [
        ("#g1_nova-2-general", "en-US", ("language", "en-US")),  # BCP-47 as it is
        ("nova-3", "pt-BR", ("language", "pt-BR")),
        ("#g1_whisper-large", "ko", ("language", "ko")),
        ("aai/slam-1", "en-US", ("language_code", "en_us")),
        ("aai/universal", "en-GB", ("language_code", "en_uk")),
        ("aai/universal", "en-AU", ("language_code", "en_au")),
        ("aai/universal", "en-IN", ("language_code", "en")),
        ("aai/universal", "de-DE", ("language_code", "de")),
        ("aai/universal", "fr", ("language_code", "fr")),
        ("openai/gpt-4o-transcribe", "en-US", ("language", "en")),  # ISO 639-1
        ("openai/gpt-4o-mini-transcribe", "zh-Hans-CN", ("language", "zh")),
    ],
)
def test_language_is_mapped_by_model_family(model: str, language: str, expected: tuple[str, str]):
    assert vendor_language(model_family(model), language) == expected
    fields = create_fields(AimlApiOptions(model=model), language)
    assert fields[expected[0]] == expected[1]


def test_options_default_to_a_documented_model_and_send_only_what_was_given():
    options = AimlApiOptions()
    assert options.model == DEFAULT_MODEL == "#g1_nova-2-general"
    assert create_fields(options, None) == {"model": "#g1_nova-2-general"}
    schema = AimlApiOptions.model_json_schema()
    assert schema["properties"]["model"]["default"] == "#g1_nova-2-general"
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("model", "given", "sent"),
    [
        ("#g1_nova-2-general", {"multichannel": True}, {"multi_channel": True}),
        ("#g1_nova-2-general", {"multi_channel": True}, {"multi_channel": True}),
        ("nova-3", {"multi_channel": True}, {"multichannel": True}),
        ("aai/universal", {"multichannel": False}, {"multichannel": False}),
    ],
)
def test_multichannel_is_spelled_as_the_model_wants(
    model: str, given: dict[str, bool], sent: dict[str, bool]
):
    assert create_fields(AimlApiOptions(model=model, **given), None) == {"model": model, **sent}


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"speaker_count": 2}, "speaker_count"),  # not an option at all
        ({"model": "#g1_nova-2-general", "prompt": "hi"}, "prompt"),
        ({"model": "openai/gpt-4o-transcribe", "diarize": True}, "diarize"),
        ({"model": "aai/slam-1", "smart_format": True}, "smart_format"),
        ({"model": "nova-3", "speaker_labels": True}, "speaker_labels"),
        ({"model": "#g1_nova-2-general", "keyterm": ["AIML"]}, "keyterm"),
        ({"model": "nova-3", "keywords": "AIML:2"}, "keywords"),
        ({"multichannel": True, "multi_channel": False}, "disagree"),
        ({"model": "openai/gpt-4o-transcribe", "temperature": 1.5}, "temperature"),
        ({"model": "microsoft/mai-transcribe-1.5", "diarize": True}, "diarize"),
        ({"model": "microsoft/mai-transcribe-1.5", "prompt": "hi"}, "prompt"),
        ({"model": "openai/gpt-4o-transcribe", "top_p": 0.5}, "top_p"),
        ({"model": "microsoft/mai-transcribe-1.5", "max_tokens": 0}, "max_tokens"),
        ({"model": "nova 3"}, "model"),
        ({"model": ""}, "model"),
    ],
)
def test_options_refuse_unknown_keys_and_other_families_options(
    options: dict[str, Any], words: str
):
    with pytest.raises(pydantic.ValidationError) as refused:
        AimlApiOptions.model_validate(options)
    assert words in str(refused.value)


def test_each_family_takes_its_own_options():
    AimlApiOptions(model="nova-3", keyterm=["AIML"], diarize=True, smart_format=True)
    AimlApiOptions(keywords=["AIML:2"], paragraphs=True, utterances=True, punctuate=True)
    AimlApiOptions(model="aai/universal", speaker_labels=True, punctuate=True, word_boost=["x"])
    AimlApiOptions(model="openai/gpt-4o-transcribe", prompt="Names: Ada.", temperature=0.2)
    # mai-transcribe's own spec: temperature, top_p, max_tokens, max_completion_tokens.
    AimlApiOptions(
        model="microsoft/mai-transcribe-1.5",
        temperature=0.2,
        top_p=0.9,
        max_tokens=500,
        max_completion_tokens=500,
    )


# --- the adapter against httpx.MockTransport ----------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def adapter(handler: Handler, base_url: str = "https://api.aimlapi.test") -> AimlApiProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AimlApiProvider(http, KEY, base_url)


def request(
    tmp_path: Path | None = None,
    *,
    source_url: str | None = None,
    language: str | None = None,
    **options: Any,
) -> SubmitRequest:
    audio = stored_upload(tmp_path, "speech.wav", b"RIFF fake wav bytes")
    return submit_request_for(
        audio, source_url=source_url, language=language, options=AimlApiOptions(**options)
    )


def answer(status: int, body: Any = None, **headers: str) -> Handler:
    def handle(_: httpx.Request) -> httpx.Response:
        if isinstance(body, (bytes, str)):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handle


async def test_a_source_url_is_sent_as_json_with_the_options_and_language():
    seen: list[httpx.Request] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(201, json=load("create_response_queued"))

    provider = adapter(handle)
    update = await provider.submit(
        request(source_url="https://example.test/a.mp3", language="en-US", punctuate=True)
    )
    assert update.status == "processing"
    assert update.provider_job_id == "RlLz0hRdAs9voL5Qi1Pzr"
    assert update.provider_status == "queued"
    (sent,) = seen
    assert (sent.method, str(sent.url)) == ("POST", "https://api.aimlapi.test/v1/stt/create")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.content) == {
        "model": "#g1_nova-2-general",
        "url": "https://example.test/a.mp3",
        "language": "en-US",
        "punctuate": True,
    }


async def test_mai_transcribe_gets_its_own_options_and_no_language_field():
    seen: list[httpx.Request] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(201, json=load("create_response_queued"))

    options = {"model": "microsoft/mai-transcribe-1.5", "temperature": 0.2, "top_p": 0.9}
    await adapter(handle).submit(
        request(source_url="https://example.test/a.mp3", language="en-US", **options)
    )
    (sent,) = seen
    # Its spec documents no language field: none is invented for it.
    assert json.loads(sent.content) == {"url": "https://example.test/a.mp3", **options}


async def test_the_older_create_answer_without_status_is_accepted():
    provider = adapter(answer(200, load("create_response")))
    update = await provider.submit(request(source_url="https://example.test/a.mp3"))
    assert update.provider_job_id == "e3d46bba-7562-44a9-b440-504d940342a3"
    assert update.provider_status is None


@pytest.mark.parametrize(
    ("model", "part"),
    [
        ("#g1_nova-2-general", "audio"),
        ("aai/slam-1", "audio"),
        ("openai/gpt-4o-transcribe", "file"),
        ("microsoft/mai-transcribe-1.5", "audio"),
    ],
)
async def test_an_upload_is_multipart_with_the_file_in_the_documented_part(
    tmp_path: Path, model: str, part: str
):
    seen: list[httpx.Request] = []

    def handle(req: httpx.Request) -> httpx.Response:
        req.read()
        seen.append(req)
        return httpx.Response(201, json={"generation_id": "g1"})

    provider = adapter(handle)
    await provider.submit(request(tmp_path, language="en-US", model=model))
    (sent,) = seen
    assert sent.headers["content-type"].startswith("multipart/form-data")
    body = sent.content
    assert f'name="{part}"; filename="speech.wav"'.encode() in body
    assert b"RIFF fake wav bytes" in body
    assert f'name="model"\r\n\r\n{model}'.encode() in body
    assert b'name="url"' not in body


async def test_form_fields_send_booleans_as_true_false_and_lists_as_repeated_parts(
    tmp_path: Path,
):
    seen: list[bytes] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req.read())
        return httpx.Response(201, json={"generation_id": "g1"})

    await adapter(handle).submit(request(tmp_path, diarize=True, keywords=["Ada", "Lovelace"]))
    assert b'name="diarize"\r\n\r\ntrue' in seen[0]
    assert b'name="keywords"\r\n\r\nAda' in seen[0]
    assert b'name="keywords"\r\n\r\nLovelace' in seen[0]


async def test_fetch_reads_the_status_of_the_generation():
    seen: list[httpx.Request] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=load("status_completed_openai_gpt4o"))

    # A base URL given with the docs' "/v1" still reaches the same paths.
    update = await adapter(handle, "https://api.aimlapi.test/v1/").fetch("a/b c", AimlApiOptions())
    assert str(seen[0].url) == "https://api.aimlapi.test/v1/stt/a%2Fb%20c"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert update.status == "completed"
    assert update.provider_job_id == "a/b c"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retryable(status: int):
    body = load("error_504") if status == 504 else {"message": "Internal server error"}
    with pytest.raises(RetryableProviderError) as raised:
        await adapter(answer(status, body)).fetch("g1", AimlApiOptions())
    assert raised.value.provider_detail == {"status_code": status, "body": body}


async def test_429_is_retryable_after_the_vendors_delay():
    with pytest.raises(RetryableProviderError) as raised:
        await adapter(answer(429, load("error_429"), **{"Retry-After": "7"})).submit(
            request(source_url="https://example.test/a.mp3")
        )
    assert raised.value.retry_after == 7.0


async def test_a_transport_error_is_retryable():
    def handle(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    with pytest.raises(RetryableProviderError, match="ConnectError"):
        await adapter(handle).fetch("g1", AimlApiOptions())


@pytest.mark.parametrize(
    ("status", "name", "code"),
    [
        (400, "error_400_body_validation", "invalid_request"),
        (413, None, "input_too_large"),
        (415, None, "unsupported_media"),
        (422, None, "invalid_request"),
        (401, "error_401", "provider_auth"),
        (403, "error_403_credits", "provider_quota"),
    ],
)
async def test_refusals_are_permanent_with_the_vendors_detail(
    tmp_path: Path, status: int, name: str | None, code: str
):
    body = load(name) if name else {"message": "Payload Too Large", "statusCode": status}
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(answer(status, body)).submit(request(tmp_path))
    assert raised.value.code == code
    assert raised.value.provider_detail == {"status_code": status, "body": body}
    assert KEY not in raised.value.message
    assert KEY not in json.dumps(raised.value.provider_detail)


async def test_a_403_that_is_not_about_credits_stays_an_auth_error():
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(answer(403, {"message": "Forbidden"})).fetch("g1", AimlApiOptions())
    assert raised.value.code == "provider_auth"


async def test_a_deleted_generation_is_not_found():
    gone = answer(404, {"message": "Not Found", "statusCode": 404})
    with pytest.raises(PermanentProviderError) as raised:
        await adapter(gone).fetch("g1", AimlApiOptions())
    assert raised.value.code == "provider_not_found"


@pytest.mark.parametrize("body", [b"<html>502</html>", b"[1, 2]", b'{"status": "completed"'])
async def test_malformed_json_is_retryable(body: bytes):
    with pytest.raises(RetryableProviderError, match="not a JSON object"):
        await adapter(answer(200, body)).fetch("g1", AimlApiOptions())


async def test_a_create_answer_without_generation_id_is_retryable():
    with pytest.raises(RetryableProviderError, match="generation_id"):
        await adapter(answer(201, {"status": "queued"})).submit(
            request(source_url="https://example.test/a.mp3")
        )


async def test_cancel_is_a_no_op_the_vendor_has_none():
    def handle(req: httpx.Request) -> httpx.Response:
        raise AssertionError("no vendor call expected")

    await adapter(handle).cancel("g1")  # the handler would fail the test if called


async def test_the_registry_builds_it_from_the_settings():
    settings = Settings(_env_file=None, aimlapi_api_key=KEY, local_provider=False)
    async with httpx.AsyncClient() as http:
        provider = ProviderRegistry.from_settings(settings, http).get("aimlapi")
        assert isinstance(provider, AimlApiProvider)
        assert isinstance(build(settings, http), AimlApiProvider)
    caps = AimlApiProvider.capabilities
    assert (caps.callbacks, caps.cancel, caps.source_url, caps.upload) == (False, False, True, True)
    assert AimlApiProvider.needs_local_audio is False
    assert AimlApiProvider.options_model is AimlApiOptions
