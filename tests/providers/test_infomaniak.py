"""The Infomaniak options and submit, with httpx.MockTransport as the vendor; and its wiring."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, cast

import httpx
import pydantic
import pytest

from app.config import Settings
from app.providers.base import PermanentProviderError, RetryableProviderError, SubmitRequest
from app.providers.infomaniak import (
    LANGUAGES,
    MAX_UPLOAD_BYTES,
    InfomaniakOptions,
    build,
    form_fields,
)
from tests.providers import infomaniak_support
from tests.providers.helpers import submit_request_for
from tests.providers.infomaniak_support import (
    BASE,
    BATCH,
    TOKEN,
    Make,
    assert_no_secret,
    payload,
    routes,
)

vendor = infomaniak_support.vendor  # the shared fixture, under the name the tests ask for

SPEECH = Path(__file__).parents[1] / "data" / "hello-16k-mono.wav"


def submit_request(
    path: Path | None = SPEECH,
    options: InfomaniakOptions | None = None,
    language: str | None = None,
    filename: str | None = "speech.wav",
) -> SubmitRequest:
    return submit_request_for(
        path, filename=filename, language=language, options=options or InfomaniakOptions()
    )


def multipart(request: httpx.Request) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The form fields (repeats kept) and the file part of a multipart request."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + request.content)
    fields: list[tuple[str, str]] = []
    file: dict[str, Any] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        data = cast(bytes, part.get_payload(decode=True))
        if part.get_filename():
            file = {"name": name, "filename": part.get_filename(), "data": data}
            file["content_type"] = part.get_content_type()
        else:
            fields.append((name, data.decode()))
    return fields, file


# --- options -----------------------------------------------------------------------


def test_options_refuse_unknown_keys_and_bad_values() -> None:
    for bad in (
        {"temperature": 0.2},
        {"file": "x"},
        {"model": "whisper-1"},
        {"chunk_length": 31},
        {"response_format": "csv"},
        {"timestamp_granularities": ["char"]},
        {"max_line_width": 0},
    ):
        with pytest.raises(pydantic.ValidationError):
            InfomaniakOptions.model_validate(bad)
    schema = InfomaniakOptions.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "language" not in schema["properties"] and "file" not in schema["properties"]


def test_form_fields_spell_what_the_vendor_documents() -> None:
    options = InfomaniakOptions(
        model="whisperV2",
        timestamp_granularities=["word", "segment"],
        chunk_length=10,
        highlight_words=True,
        no_speech_threshold=0.6,
        prompt="Infomaniak, kDrive",
    )
    assert form_fields(options, "fr-CH") == {
        "model": "whisperV2",
        "response_format": "verbose_json",
        "timestamp_granularities[]": ["word", "segment"],
        "prompt": "Infomaniak, kDrive",
        "chunk_length": "10",
        "no_speech_threshold": "0.6",
        "highlight_words": "true",
        "language": "fr",
    }
    assert form_fields(InfomaniakOptions(), None) == {
        "model": "whisper",
        "response_format": "verbose_json",
    }


# --- submit ----------------------------------------------------------------------


async def test_submit_posts_multipart_with_the_bearer_token(vendor: Make) -> None:
    provider, sent = vendor(
        routes(
            {
                "/1/ai/24250/openai/audio/transcriptions": httpx.Response(
                    200, json={"batch_id": BATCH}
                )
            }
        )
    )
    options = InfomaniakOptions(timestamp_granularities=["segment", "word"], prompt="hello")
    update = await provider.submit(submit_request(options=options, language="en-US"))
    assert (update.status, update.provider_job_id) == ("processing", BATCH)
    (request,) = sent
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/1/ai/24250/openai/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    fields, file = multipart(request)
    assert ("language", "en") in fields and ("model", "whisper") in fields
    assert ("response_format", "verbose_json") in fields and ("prompt", "hello") in fields
    assert [v for k, v in fields if k == "timestamp_granularities[]"] == ["segment", "word"]
    assert file["name"] == "file" and file["filename"] == "speech.wav"
    assert file["content_type"] == "audio/wav"
    assert file["data"] == SPEECH.read_bytes()


async def test_submit_names_the_file_by_its_format_when_the_name_does_not(vendor: Make) -> None:
    provider, sent = vendor(lambda _: httpx.Response(200, json=payload("create_envelope.json")))
    update = await provider.submit(submit_request(filename=None))
    assert update.provider_job_id == BATCH  # the {"result", "data"} envelope
    assert multipart(sent[0])[1]["filename"] == "audio.wav"
    await provider.submit(submit_request(filename="C:\\rec\\take.bin"))
    assert multipart(sent[1])[1]["filename"] == "audio.wav"


async def test_an_upload_over_50_mb_is_refused_before_calling(vendor: Make, tmp_path: Path) -> None:
    provider, sent = vendor(lambda _: httpx.Response(200, json={"batch_id": BATCH}))
    big = tmp_path / "big.wav"
    with big.open("wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)  # sparse: no 50 MB written
    with pytest.raises(PermanentProviderError) as caught:
        await provider.submit(submit_request(path=big))
    assert caught.value.code == "input_too_large"
    assert sent == []


ENVELOPE = payload("error_envelope.json")


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, ENVELOPE, "invalid_request"),
        (401, {"result": "error", "error": {"code": "not_authorized"}}, "provider_auth"),
        (413, {"result": "error", "error": {"code": "file_too_large"}}, "input_too_large"),
        (415, "bad type", "unsupported_media"),
        (422, ENVELOPE, "invalid_request"),
    ],
)
async def test_refusals_are_permanent_with_the_vendors_body(
    vendor: Make, status: int, body: Any, code: str
) -> None:
    answer = (
        httpx.Response(status, json=body)
        if isinstance(body, dict)
        else httpx.Response(status, text=body)
    )
    provider, _ = vendor(lambda _: answer)
    with pytest.raises(PermanentProviderError) as caught:
        await provider.submit(submit_request())
    assert caught.value.code == code
    assert caught.value.provider_detail == {"status_code": status, "body": body}
    assert_no_secret(caught.value)


async def test_an_error_envelope_on_a_2xx_is_a_refusal(vendor: Make) -> None:
    provider, _ = vendor(lambda _: httpx.Response(200, json=ENVELOPE))
    with pytest.raises(PermanentProviderError) as caught:
        await provider.submit(submit_request())
    assert caught.value.code == "provider_rejected"
    assert "validation_failed" in caught.value.message
    assert caught.value.provider_detail == ENVELOPE


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="oops"),
        httpx.Response(503, json={"result": "error"}),
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json={"result": "success"}),  # no batch id
    ],
)
async def test_vendor_trouble_at_submit_is_retryable(vendor: Make, answer: httpx.Response) -> None:
    provider, _ = vendor(lambda _: answer)
    with pytest.raises(RetryableProviderError) as caught:
        await provider.submit(submit_request())
    assert_no_secret(caught.value)


async def test_429_carries_retry_after(vendor: Make) -> None:
    provider, _ = vendor(lambda _: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(RetryableProviderError) as caught:
        await provider.fetch(BATCH, InfomaniakOptions())
    assert caught.value.retry_after == 7.0


async def test_timeouts_are_retryable(vendor: Make) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    provider, _ = vendor(slow)
    with pytest.raises(RetryableProviderError):
        await provider.fetch(BATCH, InfomaniakOptions())


# --- the rest --------------------------------------------------------------------


async def test_cancel_calls_nothing(vendor: Make) -> None:
    provider, sent = vendor(lambda _: httpx.Response(500))
    await provider.cancel(BATCH)
    assert sent == []


async def test_build_from_settings() -> None:
    settings = Settings(
        _env_file=None,
        infomaniak_api_key=TOKEN,
        infomaniak_product_id="24250",
        infomaniak_base_url="http://127.0.0.1:1/",
    )
    async with httpx.AsyncClient() as http:
        provider = build(settings, http)
        assert TOKEN not in repr(provider)
        assert provider.needs_local_audio is True
        assert provider.capabilities.languages == (*LANGUAGES, "jv", "nb", "iw")
        assert set(provider.capabilities.formats) == {"mp3", "mp4", "wav", "flac", "ogg"}
        assert not provider.capabilities.cancel and not provider.capabilities.callbacks
        with pytest.raises(ValueError, match="INFOMANIAK_PRODUCT_ID"):
            build(settings.model_copy(update={"infomaniak_product_id": None}), http)
