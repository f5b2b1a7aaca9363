"""The Klangio submit against httpx.MockTransport: the request that goes out, how refusals map."""

from __future__ import annotations

import json
import logging
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.providers.base import PermanentProviderError, ProviderUpdate, RetryableProviderError
from tests.providers.klangio_support import KEY, Vendor, created, payload, submit_request


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
