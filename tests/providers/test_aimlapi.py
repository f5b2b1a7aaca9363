"""The AIML API adapter with httpx.MockTransport as the vendor: requests, answers, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.providers.aimlapi import AimlApiProvider, build
from app.providers.aimlapi_options import AimlApiOptions
from app.providers.base import PermanentProviderError, RetryableProviderError, SubmitRequest
from app.providers.registry import ProviderRegistry
from tests.providers.aimlapi_support import load
from tests.providers.helpers import stored_upload, submit_request_for

KEY = "sk-aiml-secret-4711"

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
