"""A client's webhook endpoint on 127.0.0.1 that checks signatures with the official
``standardwebhooks`` library and answers what the test tells it to."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.postgres import free_port

HANG = -1  # an answer that never comes (the gateway's timeout must end the attempt)


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes
    verified_with: list[int]  # indexes of the secrets whose signature matched
    answered: int = 0  # the status the receiver answered (0 while it hangs)


class WebhookReceiver:
    def __init__(self, *secrets: str) -> None:
        self.secrets = list(secrets)
        self.answers: deque[int | tuple[int, dict[str, str]]] = deque()
        self.default_answer = 200  # when ``answers`` is empty
        self.received: list[Received] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        verified = []
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(index)
            except WebhookVerificationError:
                pass
        received = Received(time.monotonic(), headers, body, verified)
        self.received.append(received)
        answer = self.answers.popleft() if self.answers else self.default_answer
        status, extra = answer if isinstance(answer, tuple) else (answer, {})
        if status == HANG:
            await asyncio.sleep(30)
            status = 200
        received.answered = status
        return Response(f"answer {status}", status_code=status, headers=extra)

    def start(self) -> WebhookReceiver:
        port = free_port()
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    def stop(self) -> None:
        if self._server and self._thread:
            self._server.should_exit = True
            self._server.force_exit = True  # a hanging answer must not hold the test
            self._thread.join(timeout=10)

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} deliveries came"
            time.sleep(0.05)
        return self.received


class Receivers:
    """The webhook receivers one test starts, all stopped at its end."""

    def __init__(self) -> None:
        self._started: list[WebhookReceiver] = []

    def start(self, *secrets: str) -> WebhookReceiver:
        self._started.append(WebhookReceiver(*secrets).start())
        return self._started[-1]

    def stop_all(self) -> None:
        for receiver in self._started:
            receiver.stop()
