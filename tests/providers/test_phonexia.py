"""The Phonexia adapter over HTTP, with httpx.MockTransport as the vendor; and its wiring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from app.config import Settings
from app.providers.base import (
    NoOptions,
    PermanentProviderError,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.phonexia import PhonexiaOptions, PhonexiaProvider, build
from tests.providers.helpers import submit_request_for
from tests.providers.phonexia_support import TASK, load

DATA = Path(__file__).parents[1] / "data"
BASE = "http://phonexia.test:8000"
SECRET = "proxy-secret-123"


def request(
    language: str | None = "en-US", options: PhonexiaOptions | None = None
) -> SubmitRequest:
    return submit_request_for(
        DATA / "hello-16k-mono.wav",
        filename="hello.wav",
        language=language,
        options=options or PhonexiaOptions(),
    )


Handler = Callable[[httpx.Request], httpx.Response]


def provider(handler: Handler, api_key: str | None = None) -> PhonexiaProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return PhonexiaProvider(BASE + "/", http, api_key=api_key)


def accepted(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        202,
        json=load("submit_accepted.json"),
        headers={"X-Location": f"/api/technology/speech-to-text/{TASK}"},
    )


# --- HTTP, through MockTransport ----------------------------------------------------


async def test_submit_sends_file_language_and_config_without_auth_by_default() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return accepted(req)

    options = PhonexiaOptions.model_validate(
        {"channels": [0], "additional_words": [{"spelling": "frumious"}]}
    )
    update = await provider(handler).submit(request("en-US", options))
    assert (update.status, update.provider_job_id, update.provider_status) == (
        "processing",
        TASK,
        "pending",
    )
    [sent] = seen
    assert sent.method == "POST"
    assert sent.url.path == "/api/technology/speech-to-text"
    assert dict(sent.url.params) == {"language": "en-US", "channels": "0"}
    assert "authorization" not in sent.headers
    assert sent.headers["x-correlation-id"] == "job_1"
    body = sent.read()
    assert b'name="file"; filename="hello.wav"' in body
    assert (DATA / "hello-16k-mono.wav").read_bytes() in body
    assert b'{"additional_words": [{"spelling": "frumious"}]}' in body


async def test_a_key_is_sent_as_a_bearer_token_on_every_call() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return (
            accepted(req) if req.method == "POST" else httpx.Response(200, json=load("done.json"))
        )

    adapter = provider(handler, api_key=SECRET)
    submitted = await adapter.submit(request())
    assert submitted.provider_job_id is not None
    fetched = await adapter.fetch(submitted.provider_job_id, PhonexiaOptions())
    assert fetched.status == "completed"
    assert [r.headers["authorization"] for r in seen] == [f"Bearer {SECRET}"] * 2
    assert seen[1].url.path == f"/api/technology/speech-to-text/{TASK}"


async def test_the_task_is_found_from_the_location_header_alone() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(202, headers={"Location": f"/api/technology/speech-to-text/{TASK}"})

    update = await provider(handler).submit(request())
    assert (update.provider_job_id, update.provider_status) == (TASK, None)


async def test_an_acceptance_that_names_no_task_is_retried() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(202, json={"task": {}})

    with pytest.raises(RetryableProviderError):
        await provider(handler).submit(request())


async def test_a_task_rejected_at_once_fails_the_submit() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(202, json=load("rejected.json"))

    update = await provider(handler).submit(request())
    assert update.status == "failed" and update.error is not None
    assert update.error.code == "provider_rejected"


async def test_the_default_engine_needs_a_language_before_any_call() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise AssertionError("no call expected")

    with pytest.raises(PermanentProviderError) as caught:
        await provider(handler).submit(request(language=None))
    assert caught.value.code == "language_required"


async def test_the_whisper_engine_has_its_own_path_and_needs_no_language() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.method == "POST":
            return httpx.Response(202, json=load("submit_accepted.json"))
        return httpx.Response(200, json=load("whisper_done.json"))

    adapter = provider(handler)
    options = PhonexiaOptions(engine="whisper-enhanced")
    submitted = await adapter.submit(request(language=None, options=options))
    assert submitted.provider_job_id == TASK  # the bare task id, as for the default engine
    fetched = await adapter.fetch(submitted.provider_job_id, options)
    assert fetched.result is not None and fetched.result.transcript.language == "en"
    assert [r.url.path for r in seen] == [
        "/api/technology/speech-to-text-whisper-enhanced",
        f"/api/technology/speech-to-text-whisper-enhanced/{TASK}",
    ]
    assert "language" not in seen[0].url.params
    assert b'name="config"' not in seen[0].read()


@pytest.mark.parametrize(
    ("options", "path"),
    [
        (
            PhonexiaOptions(engine="whisper-enhanced"),
            "/api/technology/speech-to-text-whisper-enhanced",
        ),
        (PhonexiaOptions(), "/api/technology/speech-to-text"),
        (NoOptions(), "/api/technology/speech-to-text"),  # not Phonexia's: the default engine
    ],
    ids=["whisper-enhanced", "default", "other-options"],
)
async def test_fetch_polls_the_engine_the_options_name(options: BaseModel, path: str) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"task": {"task_id": TASK, "state": "running"}})

    update = await provider(handler).fetch(TASK, options)
    assert [r.url.path for r in seen] == [f"{path}/{TASK}"]
    assert (update.status, update.provider_job_id, update.provider_status) == (
        "processing",
        TASK,
        "running",
    )


async def test_a_task_id_cannot_leave_its_path() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=load("done.json"))

    await provider(handler).fetch("../../admin?x=1", PhonexiaOptions())
    assert seen[0].url.raw_path == b"/api/technology/speech-to-text/..%2F..%2Fadmin%3Fx%3D1"


def error(status: int, name: str | None = None, **headers: str) -> Handler:
    def handler(req: httpx.Request) -> httpx.Response:
        if name is None:
            return httpx.Response(status, text="<html>bad gateway</html>", headers=headers)
        return httpx.Response(status, json=load(name), headers=headers)

    return handler


@pytest.mark.parametrize("operation", ["submit", "status"])
@pytest.mark.parametrize(
    ("handler", "retry_after"),
    [
        (error(500), None),
        (error(502, None), None),
        (error(429, "error_429_rate_limit.json", **{"retry-after": "5"}), 5.0),
        (error(507, "error_507_storage.json"), None),
        (error(403, "error_403_capacity.json"), None),
    ],
    ids=["500", "502", "429", "507", "403-capacity"],
)
async def test_transient_answers_are_retryable(
    operation: str, handler: Handler, retry_after: float | None
) -> None:
    adapter = provider(handler, api_key=SECRET)
    with pytest.raises(RetryableProviderError) as caught:
        if operation == "submit":
            await adapter.submit(request())
        else:
            await adapter.fetch(TASK, PhonexiaOptions())
    assert caught.value.retry_after == retry_after
    assert SECRET not in caught.value.message + repr(caught.value.provider_detail)


async def test_the_rate_limit_envelope_is_kept() -> None:
    handler = error(429, "error_429_rate_limit.json", **{"retry-after": "5"})
    with pytest.raises(RetryableProviderError) as caught:
        await provider(handler).submit(request())
    assert caught.value.provider_detail["body"]["message"] == "Rate limit exceeded: 1 per 5 second."


@pytest.mark.parametrize(
    ("handler", "code"),
    [
        (error(400, "error_400_invalid.json"), "invalid_request"),
        (error(413, "error_413_too_large.json"), "input_too_large"),
        (error(422, "error_422_validation.json"), "invalid_request"),
        (error(403, "error_400_invalid.json"), "provider_auth"),  # a 403 that is not capacity
        (error(404, "error_400_invalid.json"), "provider_not_found"),
    ],
    ids=["400", "413", "422", "403", "404"],
)
async def test_refusals_are_permanent_with_the_vendor_envelope(handler: Handler, code: str) -> None:
    adapter = provider(handler, api_key=SECRET)
    for call in (adapter.submit(request()), adapter.fetch(TASK, PhonexiaOptions())):
        with pytest.raises(PermanentProviderError) as caught:
            await call
        assert caught.value.code == code
        assert caught.value.retryable is False
        assert caught.value.provider_detail["body"]["type"].startswith("request.")
        assert SECRET not in caught.value.message + repr(caught.value.provider_detail)


async def test_the_413_keeps_the_documented_size_limit() -> None:
    with pytest.raises(PermanentProviderError) as caught:
        await provider(error(413, "error_413_too_large.json")).submit(request())
    detail = caught.value.provider_detail["body"]["detail"][0]
    assert detail["context"]["max_file_size"] == 524288000


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
async def test_a_status_that_is_not_a_json_object_is_retried(text: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=text)

    with pytest.raises(RetryableProviderError):
        await provider(handler).fetch(TASK, PhonexiaOptions())


async def test_transport_errors_are_retryable() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    with pytest.raises(RetryableProviderError):
        await provider(handler).fetch(TASK, PhonexiaOptions())


async def test_cancel_is_a_no_op() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise AssertionError("no call expected")

    await provider(handler).cancel(TASK)


# --- wiring -------------------------------------------------------------------------


async def test_build_from_settings() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=load("done.json"))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    with_key = Settings(_env_file=None, phonexia_base_url=BASE, phonexia_api_key=SECRET)
    await build(with_key, http).fetch(TASK, PhonexiaOptions())
    without_key = Settings(_env_file=None, phonexia_base_url=BASE + "/")
    await build(without_key, http).fetch(TASK, PhonexiaOptions())
    assert [str(r.url) for r in seen] == [f"{BASE}/api/technology/speech-to-text/{TASK}"] * 2
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"
    assert "authorization" not in seen[1].headers
    with pytest.raises(ValueError, match="PHONEXIA_BASE_URL"):
        build(Settings(_env_file=None), http)


def test_capabilities() -> None:
    caps = PhonexiaProvider.capabilities
    assert PhonexiaProvider.needs_local_audio is True
    assert caps.languages is None
    assert (caps.callbacks, caps.cancel, caps.synchronous) == (False, False, False)
    assert caps.word_timestamps is True
