"""The openai adapter on recorded payloads, with httpx.MockTransport as the upstream."""

from __future__ import annotations

from collections.abc import Callable
from email.parser import BytesParser
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from pydantic import SecretStr

from app.config import Settings
from app.providers.base import (
    AudioFormat,
    PermanentProviderError,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.openai import (
    OpenAIOptions,
    OpenAIProvider,
    build,
    request_language,
    upload_content_type,
    upload_name,
)
from app.providers.openai_transcript import assign_words, build_transcript
from app.providers.whisper_languages import language_code
from app.transcripts import Segment, Word
from tests.providers.helpers import recorded, stored_upload, submit_request_for

BASE = "https://upstream.test/v1"
URL = f"{BASE}/audio/transcriptions"
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt fake audio bytes"


def payload(name: str) -> Any:
    return recorded("openai", name)


# --- converters --------------------------------------------------------------


def test_verbose_json_with_words_and_segments() -> None:
    t = build_transcript(payload("verbose_json_words_segments.json"))
    assert t.provider == "openai"
    assert t.language == "en"
    assert t.duration == 8.47
    assert t.text.startswith("The beach was a popular spot")
    assert [(s.start, s.end) for s in t.segments] == [(0.0, 3.32), (3.32, 8.47)]
    # Whisper's segment text starts with a space; ours does not.
    assert t.segments[0].text == "The beach was a popular spot on a hot summer day."
    first, second = ([w.text for w in s.words] for s in t.segments)
    # "day" ends after its segment does (3.36 > 3.32) but belongs to it.
    assert " ".join(first) == "The beach was a popular spot on a hot summer day"
    assert second[0] == "People" and second[-1] == "volleyball" and len(second) == 12
    assert t.segments[0].words[1] == Word(start=0.24, end=0.62, text="beach", confidence=None)
    # Decoder scores are not a confidence, and there is no speaker or channel.
    assert all(s.speaker is None and s.channel is None for s in t.segments)
    assert all(w.confidence is None for s in t.segments for w in s.words)


def test_segments_without_words_groq() -> None:
    t = build_transcript(payload("verbose_json_segments_groq.json"))
    assert t.language == "en"  # Groq capitalises the name
    assert t.text == "Guten Morgen is German for good morning. Bonjour is French."
    assert [(s.start, s.end, s.text) for s in t.segments] == [
        (0.0, 2.76, "Guten Morgen is German for good morning."),
        (2.76, 4.66, "Bonjour is French."),
    ]
    assert all(s.words == [] for s in t.segments)


def test_text_only_body_invents_nothing() -> None:
    t = build_transcript(payload("json_text_only.json"))
    assert t.text == "The beach was a popular spot on a hot summer day."
    assert t.segments == []
    assert t.language is None and t.duration is None


def test_words_without_segments_make_one_segment_with_their_own_times() -> None:
    body = {
        "text": "Hi there",
        "language": "english",
        "duration": "1.5",  # some servers send numbers as strings
        "words": [
            {"word": "Hi", "start": 0.1, "end": 0.4},
            {"word": "there", "start": 0.5, "end": 0.9},
        ],
    }
    t = build_transcript(body)
    assert t.duration == 1.5
    [segment] = t.segments
    assert (segment.start, segment.end, segment.text) == (0.1, 0.9, "Hi there")
    assert [w.text for w in segment.words] == ["Hi", "there"]


def test_missing_times_stay_none() -> None:
    t = build_transcript({"text": "x", "segments": [{"text": " x", "start": None, "end": "?"}]})
    assert [(s.start, s.end, s.text) for s in t.segments] == [(None, None, "x")]


def test_empty_answer_for_silence() -> None:
    t = build_transcript({"text": "", "language": "english", "duration": 1.0, "segments": []})
    assert t.text == "" and t.segments == [] and t.duration == 1.0


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("english", "en"),
        ("English", "en"),
        ("chinese", "zh"),
        ("korean", "ko"),
        ("german", "de"),
        ("haitian creole", "ht"),
        ("castilian", "es"),
        ("cantonese", "yue"),
        ("javanese", "jv"),
        ("en", "en"),  # servers that answer with a code
        ("pt-BR", "pt"),
        ("klingon", None),
        ("", None),
        (None, None),
        (7, None),
    ],
)
def test_language_names_become_codes(given: Any, code: str | None) -> None:
    assert language_code(given) == code


@pytest.mark.parametrize(
    ("tag", "sent"), [("en-US", "en"), ("pt_BR", "pt"), ("DE", "de"), ("ko", "ko"), (None, None)]
)
def test_job_language_is_sent_as_iso_639_1(tag: str | None, sent: str | None) -> None:
    assert request_language(tag) == sent


def test_words_go_to_the_segment_holding_their_middle_or_the_nearest() -> None:
    segments = [
        Segment(start=5.0, end=8.0, text="second"),
        Segment(start=0.0, end=4.0, text="first"),  # out of order on purpose
    ]
    words = [
        Word(start=0.5, end=1.0, text="in-first"),
        Word(start=3.8, end=4.4, text="crosses-edge"),  # middle 4.1: nearer the first
        Word(start=4.6, end=4.9, text="in-gap"),  # middle 4.75: nearer the second
        Word(text="untimed"),  # follows the word before it
        Word(start=8.5, end=9.0, text="after-end"),
    ]
    assign_words(segments, words)
    by_text = {s.text: [w.text for w in s.words] for s in segments}
    assert by_text == {
        "first": ["in-first", "crosses-edge"],
        "second": ["in-gap", "untimed", "after-end"],
    }


# --- options -----------------------------------------------------------------


def test_options_defaults_and_limits() -> None:
    assert OpenAIOptions().model == "whisper-1"
    assert OpenAIOptions(prompt="Acme, GPU", temperature=0).temperature == 0
    with pytest.raises(pydantic.ValidationError, match="extra"):
        OpenAIOptions.model_validate({"model": "whisper-1", "response_format": "srt"})
    with pytest.raises(pydantic.ValidationError):
        OpenAIOptions.model_validate({"temperature": 1.5})
    with pytest.raises(pydantic.ValidationError):
        OpenAIOptions.model_validate({"model": ""})
    schema = OpenAIOptions.model_json_schema()
    assert set(schema["properties"]) == {"model", "prompt", "temperature"}
    assert schema["additionalProperties"] is False


# --- the file part -----------------------------------------------------------


def _request(tmp_path: Path, **fields: Any) -> SubmitRequest:
    """job_123: a WAV upload named speech.wav, in en-US, with the default options;
    ``fields`` change any of it."""
    path = stored_upload(tmp_path, "audio", AUDIO)
    values: dict[str, Any] = {
        "job_id": "job_123",
        "filename": "speech.wav",
        "language": "en-US",
        "options": OpenAIOptions(),
    }
    return submit_request_for(path, **(values | fields))


@pytest.mark.parametrize(
    ("filename", "source_url", "fmt", "name"),
    [
        ("speech.wav", None, "wav", "speech.wav"),
        ("Recording.M4A", None, "mp4", "Recording.M4A"),
        ("voice memo", None, "mp3", "voice memo.mp3"),  # the upstream goes by the extension
        ("clip.aac", None, "mp4", "clip.aac.m4a"),
        (None, "https://cdn.test/a/b/talk%201.flac?sig=x", "flac", "talk 1.flac"),
        (None, "https://cdn.test/download", "ogg", "download.ogg"),
        (None, None, "webm", "audio.webm"),
        ("../../etc/passwd", None, "wav", "passwd.wav"),
    ],
)
def test_upload_name_has_an_extension_the_upstream_knows(
    tmp_path: Path, filename: str | None, source_url: str | None, fmt: AudioFormat, name: str
) -> None:
    request = _request(tmp_path, filename=filename, source_url=source_url, audio_format=fmt)
    assert upload_name(request) == name


def test_upload_content_type(tmp_path: Path) -> None:
    assert upload_content_type(_request(tmp_path, content_type="audio/x-wav")) == "audio/x-wav"
    assert upload_content_type(_request(tmp_path, content_type=None, audio_format="mp3")) == (
        "audio/mpeg"
    )


# --- the provider over MockTransport -----------------------------------------


def parse_form(request: httpx.Request) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """A multipart body as (fields in order, the file part's name, type and bytes)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=email_policy).parsebytes(head + request.content)
    fields, file = [], {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename() is not None:
            file = {
                "field": name,
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "data": data,
            }
        else:
            assert isinstance(data, bytes)
            fields.append((str(name), data.decode()))
    return fields, file


Handler = Callable[[httpx.Request], httpx.Response]


def provider(handler: Handler, base_url: str = BASE) -> OpenAIProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIProvider(SecretStr("sk-secret"), base_url, http)


def answer(name: str, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=payload(name), headers=headers)


def envelope(message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


async def test_submit_sends_the_documented_request_and_completes(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer("verbose_json_words_segments.json", headers={"x-request-id": "req_abc"})

    options = OpenAIOptions(model="whisper-1", prompt="Beach, volleyball.", temperature=0.2)
    update = await provider(handler, base_url=BASE + "/").submit(
        _request(tmp_path, options=options)
    )

    [request] = seen
    assert request.method == "POST" and str(request.url) == URL  # trailing slash stripped
    assert request.headers["authorization"] == "Bearer sk-secret"
    fields, file = parse_form(request)
    assert fields == [
        ("model", "whisper-1"),
        ("language", "en"),
        ("prompt", "Beach, volleyball."),
        ("temperature", "0.2"),
        ("response_format", "verbose_json"),
        # The array field, named with brackets, once per value.
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
    ]
    assert file == {
        "field": "file",
        "filename": "speech.wav",
        "content_type": "audio/wav",
        "data": AUDIO,
    }

    assert update.status == "completed" and update.provider_status == "completed"
    assert update.provider_job_id == "req_abc"
    assert update.result is not None
    assert update.result.transcript.language == "en"
    assert len(update.result.transcript.segments) == 2
    assert update.result.raw == payload("verbose_json_words_segments.json")


async def test_optional_fields_are_left_out(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer("json_text_only.json")

    update = await provider(handler).submit(_request(tmp_path, language=None))
    names = [name for name, _ in parse_form(seen[0])[0]]
    assert "language" not in names and "prompt" not in names and "temperature" not in names
    assert update.provider_job_id == "job_123"  # no request id: our own
    assert update.result is not None and update.result.transcript.segments == []


async def test_gpt_4o_models_are_asked_for_json_only(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer("json_text_only.json")

    options = OpenAIOptions(model="gpt-4o-transcribe")
    update = await provider(handler).submit(_request(tmp_path, options=options))
    fields = dict(parse_form(seen[0])[0])
    assert fields["response_format"] == "json"
    assert "timestamp_granularities[]" not in fields
    assert update.result is not None
    assert update.result.transcript.text == "The beach was a popular spot on a hot summer day."


async def test_an_upstream_refusing_verbose_json_is_asked_for_json(tmp_path: Path) -> None:
    formats: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        fields = dict(parse_form(request)[0])
        formats.append(fields["response_format"])
        if fields["response_format"] == "verbose_json":
            return answer("error_verbose_json_not_compatible.json", 400)
        return answer("json_text_only.json")

    options = OpenAIOptions(model="my-new-model")
    update = await provider(handler).submit(_request(tmp_path, options=options))
    assert formats == ["verbose_json", "json"]
    assert update.status == "completed"


async def test_server_error_is_retryable(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "The server had an error"}})

    with pytest.raises(RetryableProviderError) as caught:
        await provider(handler).submit(_request(tmp_path))
    assert caught.value.provider_detail["status_code"] == 500
    assert "sk-secret" not in caught.value.message


async def test_rate_limit_is_retryable_after_retry_after(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer("error_rate_limit.json", 429, headers={"retry-after": "7"})

    with pytest.raises(RetryableProviderError) as caught:
        await provider(handler).submit(_request(tmp_path))
    assert caught.value.retry_after == 7
    assert caught.value.provider_detail["body"]["error"]["code"] == "rate_limit_exceeded"


async def test_exhausted_quota_fails_at_once(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer("error_insufficient_quota.json", 429)

    with pytest.raises(PermanentProviderError) as caught:
        await provider(handler).submit(_request(tmp_path))
    assert caught.value.code == "provider_quota"


@pytest.mark.parametrize(
    ("status", "body", "code", "in_message"),
    [
        (400, payload("error_invalid_file_format.json"), "unsupported_media", "Invalid file"),
        (
            400,
            envelope("Audio file might be corrupted or unsupported", "file", "invalid_value"),
            "unsupported_media",
            "corrupted",
        ),
        (
            400,
            envelope("Audio file is too short. Minimum audio length is 0.1 seconds.", "file"),
            "invalid_request",
            "too short",
        ),
        (
            400,
            envelope("Maximum content size limit (26214400) exceeded (26228340 bytes read)"),
            "input_too_large",
            "content size",
        ),
        (400, envelope("Invalid language 'xx'.", "language"), "invalid_request", "language"),
        (
            404,
            envelope("The model `whisper-9` does not exist", "model", "model_not_found"),
            "provider_not_found",
            "whisper-9",
        ),
        (413, envelope("Maximum content size limit exceeded"), "input_too_large", "413"),
        (413, "<html>413 Request Entity Too Large</html>", "input_too_large", "413"),
        (
            401,
            envelope("Incorrect API key provided: sk-****", None, "invalid_api_key"),
            "provider_auth",
            "401",
        ),
    ],
)
async def test_refusals_fail_the_job_with_the_vendors_detail(
    tmp_path: Path, status: int, body: Any, code: str, in_message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with pytest.raises(PermanentProviderError) as caught:
        await provider(handler).submit(_request(tmp_path))
    assert caught.value.code == code
    assert in_message in caught.value.message
    assert caught.value.provider_detail == {"status_code": status, "body": body}
    if code == "provider_auth":  # the upstream's words about keys are not repeated
        assert "sk-" not in caught.value.message


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="{not json"),
        httpx.Response(200, json=["a list"]),
        httpx.Response(200, json={"segments": []}),  # no text at all
    ],
    ids=["malformed", "not-an-object", "no-text"],
)
async def test_unusable_answers_are_retryable(tmp_path: Path, response: httpx.Response) -> None:
    with pytest.raises(RetryableProviderError):
        await provider(lambda request: response).submit(_request(tmp_path))


async def test_transport_errors_are_retryable(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RetryableProviderError, match="ConnectError"):
        await provider(handler).submit(_request(tmp_path))


async def test_fetch_is_not_supported_and_cancel_does_nothing() -> None:
    p = provider(lambda request: httpx.Response(500))
    with pytest.raises(PermanentProviderError) as caught:
        await p.fetch("job_123", OpenAIOptions())
    assert caught.value.code == "not_supported"
    await p.cancel("job_123")  # nothing to stop upstream, and no error


async def test_build_from_settings() -> None:
    settings = Settings(
        _env_file=None, openai_api_key="sk-x", openai_base_url="http://127.0.0.1:9/v1/"
    )
    async with httpx.AsyncClient() as http:
        adapter = build(settings, http)
    assert adapter.name == "openai"
    assert adapter._url == "http://127.0.0.1:9/v1/audio/transcriptions"
    caps = OpenAIProvider.capabilities
    assert caps.synchronous and not caps.cancel and OpenAIProvider.needs_local_audio
