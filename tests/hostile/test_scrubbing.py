"""The pure pieces behind the hostile-input tests: the truncated-WAV check, and the
scrubbing of credentials from vendor bodies and log lines."""

from __future__ import annotations

import httpx
import pytest

from app.audio.truncation import wav_truncation
from app.ids import new_api_key, new_webhook_secret
from app.logs import Redactor
from app.providers.http import vendor_detail
from tests.hostile.helpers import wav, wav_header

WHOLE = wav(0.1)
ODD = wav_header(3, riff_size=36 + 3 + 1) + b"\x01\x02\x03"  # odd-sized data, no pad byte


@pytest.mark.parametrize(
    ("audio", "size", "words"),
    [
        (WHOLE, len(WHOLE), None),
        (WHOLE, len(WHOLE) + 10, None),  # trailing bytes: longer is not truncated
        (ODD, len(ODD), None),  # without the pad byte its RIFF size counts
        (WHOLE, len(WHOLE) - 2, "announces 3244 bytes"),
        (wav_header(1000, riff_size=0xFFFFFFFF), 44 + 999, "1000 bytes of samples"),
        (wav_header(0xFFFFFFFF, riff_size=0xFFFFFFFF), 50, None),  # streamed: sizes unknown
        (wav_header(0, riff_size=0), 50, None),
        (b"RF64" + WHOLE[4:], 50, None),  # RF64 keeps its sizes in ds64
        (b"ID3" + WHOLE[3:], 50, None),  # not a WAV at all
    ],
)
def test_wav_truncation(audio: bytes, size: int, words: str | None) -> None:
    problem = wav_truncation(audio[:512], size)
    assert (problem is None) if words is None else (words in (problem or ""))


def test_the_data_chunk_is_found_after_other_chunks() -> None:
    listing = b"LIST" + (6).to_bytes(4, "little") + b"INFOab"
    header = wav_header(100, riff_size=0xFFFFFFFF)
    audio = header[:36] + listing + header[36:] + b"\x00" * 50
    assert "100 bytes of samples, but only 50" in (wav_truncation(audio, len(audio)) or "")


def _refusal(body: bytes, **headers: str) -> httpx.Response:
    request = httpx.Request("POST", "https://vendor.example/v1/jobs", headers=headers)
    return httpx.Response(401, content=body, request=request)


def test_a_vendor_echo_of_the_credentials_is_cut_out() -> None:
    key = "vendor-key-0123456789"
    body = (
        b'{"error": "no", "seen": {"authorization": "Bearer vendor-key-0123456789", '
        b'"x-api-key": "vendor-key-0123456789", "note": "key vendor-key-0123456789 at 12:00"}, '
        b'"callback": "https://gw.example/callbacks/daglo/job_1?expires=1&sig=AbC-_9", '
        b'"encoded": "https%3A%2F%2Fgw%2Fcb%3Fexpires%3D1%26sig%3DAbC-_9"}'
    )
    detail = vendor_detail(_refusal(body, Authorization=f"Bearer {key}", X_Api_Key=key))
    assert key not in str(detail) and "AbC-_9" not in str(detail)
    assert detail["seen"]["note"] == "key [redacted] at 12:00"
    assert detail["callback"].endswith("sig=[redacted]")
    # Plain text bodies too; and a short header value is left alone (it would mangle words).
    text = vendor_detail(
        _refusal(b"denied for Bearer " + key.encode(), Authorization=f"Bearer {key}")
    )
    assert text == "denied for [redacted]"
    assert vendor_detail(_refusal(b"a yes b", X_Token="yes")) == "a yes b"
    # A key sent in the query string, as some vendors take it.
    request = httpx.Request("GET", "https://vendor.example/x", params={"api_key": key})
    echoed = httpx.Response(403, json={"url": str(request.url)}, request=request)
    assert vendor_detail(echoed) == {"url": "https://vendor.example/x?api_key=[redacted]"}


def test_log_lines_lose_their_credentials() -> None:
    redact = Redactor(["vendor-key-0123456789", "short"])
    api_key, webhook_secret = new_api_key(), new_webhook_secret()
    line = redact(
        f'"POST /callbacks/daglo/job_1?expires=1&sig=AbC-_9 HTTP/1.1" 204; '
        f"POST https://v/x?webhook_url=https%3A%2F%2Fg%2Fcb%3Fexpires%3D1%26sig%3DAbC-_9 ; "
        f"Authorization: Bearer tok-123; vendor-key-0123456789; {api_key}; {webhook_secret}; "
        f"GET /jobs?wait=30&format=srt short"
    )
    for secret in ("AbC-_9", "tok-123", "vendor-key-0123456789", api_key, webhook_secret):
        assert secret not in line
    assert "GET /jobs?wait=30&format=srt short" in line  # the rest is kept as it was
