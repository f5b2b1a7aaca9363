"""What the Klangio adapter tests share: the files of payloads/klangio/ (where each
comes from: its README.md) and a vendor on httpx.MockTransport that routes by path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.providers.base import SubmitRequest
from app.providers.klangio import KlangioProvider
from app.providers.klangio_options import KlangioOptions
from tests.providers.helpers import recorded, stored_upload, submit_request_for

BASE = "https://api.klang.io"
KEY = "kl-secret-key-123"


def payload(name: str) -> Any:
    return recorded("klangio", name)


Handler = Callable[[httpx.Request], httpx.Response]


class Vendor:
    """Routes by path; remembers every request."""

    def __init__(self, routes: dict[str, Handler | httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get(request.url.path)
        if answer is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        return answer(request) if callable(answer) else answer

    def provider(self, key: str = KEY, **settings: Any) -> KlangioProvider:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return KlangioProvider(http, key, BASE, **settings)

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def submit_request(folder: Path, **changes: Any) -> SubmitRequest:
    path = stored_upload(folder, "riff.wav", b"RIFF....WAVEfmt fake audio")
    values: dict[str, Any] = {
        "job_id": "job-1",
        "options": KlangioOptions(outputs=["midi", "pdf", "gp5"], title="Awesome recording"),
        "callback_url": "http://gw.example/callbacks/klangio/job-1?expires=9&sig=abc",
    }
    return submit_request_for(path, **(values | changes))


def created(name: str = "create_transcription.json") -> httpx.Response:
    return httpx.Response(200, json=payload(name))
