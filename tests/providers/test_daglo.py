"""The Daglo adapter over HTTP, with httpx.MockTransport as the vendor: requests and errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.providers import registry
from app.providers.base import PermanentProviderError, RetryableProviderError
from app.providers.daglo import DagloProvider, build
from app.providers.daglo_options import DagloOptions
from tests.providers.daglo_support import BASE, KEY, RID, answer, payload, provider, submit_request


def no_secret(error: Exception) -> None:
    assert KEY not in str(error)
    assert KEY not in repr(getattr(error, "provider_detail", None))


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
