"""An OpenAI-compatible upstream that misbehaves on demand, for the `openai` provider.

``mode`` says how it answers every call: ``ok`` (a transcript at once), ``slow``
(the transcript after ``delay`` s), ``hang`` (never), ``status`` (``status`` with
``headers``: 500/502/503/429 …), ``malformed`` (a 200 that is not JSON),
``shape`` (a 200 JSON object of an unexpected shape). It counts calls and the
most calls it had in flight at once.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.vendor import FakeVendor

API_KEY = "sk-bad-upstream"
TEXT = "hello from upstream"


class BadUpstream(FakeVendor):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.delay = 0.5
        self.status = 503
        self.headers: dict[str, str] = {}
        self.call_times: list[float] = []
        self.bodies: list[bytes] = []  # each call's whole multipart body
        self.in_flight = 0
        self.max_in_flight = 0
        self.released = False  # set by release(): hanging calls answer at last

    def routes(self) -> list[Route]:
        return [Route("/v1/audio/transcriptions", self.transcribe, methods=["POST"])]

    async def transcribe(self, request: Request) -> Response:
        self.bodies.append(await request.body())
        self.call_times.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer()
        finally:
            self.in_flight -= 1

    async def _answer(self) -> Response:
        if self.mode == "hang":
            while not self.released:
                await asyncio.sleep(0.05)
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "status":
            body = {"error": {"message": "upstream trouble", "type": "server_error"}}
            return JSONResponse(body, status_code=self.status, headers=self.headers)
        if self.mode == "malformed":
            return Response(b"<html>gateway timeout</html>", media_type="application/json")
        if self.mode == "shape":
            return JSONResponse({"unexpected": ["shape"]})
        return JSONResponse({"text": TEXT})

    def release(self) -> None:
        """End the hang (at a test's end, so the gateway need not wait out its calls)."""
        self.mode, self.released = "ok", True

    def stop(self) -> None:
        self.release()
        super().stop()

    @property
    def calls_made(self) -> int:
        return len(self.call_times)
