"""What the Daglo adapter tests share: recorded payloads, requests, the adapter on MockTransport."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from app.providers.base import SubmitRequest
from app.providers.daglo import DagloProvider
from app.providers.daglo_options import DagloOptions
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
