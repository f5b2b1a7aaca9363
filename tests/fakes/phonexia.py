"""A fake Phonexia Speech Platform 4 following vendor-docs/phonexia.txt and NOTES.md §5.

    POST /api/technology/speech-to-text[-whisper-enhanced]?language=…&channel_mode=…&channels=…
         multipart: file, config (a JSON string)
         -> 202 {"task": {"task_id", "state": "pending"}} with X-Location (or Location)
    GET  /api/technology/speech-to-text[-whisper-enhanced]/{task_id}
         -> {"task": {...}} plus "result" once done, or "error" once rejected or failed

Errors use the documented ``{type, message, detail[]}`` envelope (413 over
``max_file_size``, 422 without a language on the default engine, 400 for a
config that is not a JSON object, 404 for an unknown task). The appliance
documents no auth; given ``api_key`` the fake stands for an authenticating
proxy in front of it and wants ``Authorization: Bearer <key>``.

A task shows ``progression`` (one state per status GET), then its outcome: the
next word queued in ``outcomes`` at submit time ("done" when none), so a test
can make a task end "rejected" or "failed". The results and task errors are the
recorded payloads in tests/providers/payloads/phonexia/.

Operations for faults and records: "submit", "status".
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.vendor import FakeVendor, Recorded

PAYLOADS = Path(__file__).parents[1] / "providers" / "payloads" / "phonexia"
TECHNOLOGIES = {
    "speech-to-text": "done.json",
    "speech-to-text-whisper-enhanced": "whisper_done.json",
}
DEFAULT_MAX_FILE_SIZE = 524288000  # the documents' example


@cache
def _load(name: str) -> str:
    return (PAYLOADS / name).read_text()


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of a recorded payload."""
    loaded: dict[str, Any] = json.loads(_load(name))
    return loaded


def envelope(type_: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_, "message": message, "detail": list(details)}


@dataclass
class FakeTask:
    task_id: str
    technology: str
    outcome: str
    states: deque[str]
    audio: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    config: Any = None


class FakePhonexia(FakeVendor):
    def __init__(self, api_key: str | None = None, location_header: str = "X-Location") -> None:
        super().__init__()
        self.api_key = api_key
        self.location_header = location_header  # newer versions say Location
        self.progression = ["pending", "running"]  # what successive status GETs show first
        self.outcomes: deque[str] = deque()  # the end state of the next tasks; "done" if empty
        self.max_file_size = DEFAULT_MAX_FILE_SIZE
        self.tasks: dict[str, FakeTask] = {}
        self.times: list[tuple[str, float]] = []  # (operation, time.monotonic())

    def routes(self) -> list[Route]:
        return [
            Route("/api/technology/{technology}", self.start_task, methods=["POST"]),
            Route("/api/technology/{technology}/{task_id}", self.get_task, methods=["GET"]),
        ]

    # -- documented faults, for tests ----------------------------------------------

    def rate_limit(self, operation: str, retry_after: int = 5, times: int = 1) -> None:
        """The documented 429, with retry-after and the x-ratelimit-* headers."""
        headers = {
            "retry-after": str(retry_after),
            "x-ratelimit-limit": "1",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(time.time()) + retry_after),
        }
        self.fail(operation, 429, times, headers=headers, body=payload("error_429_rate_limit.json"))

    def capacity_exceeded(self, operation: str = "submit", times: int = 1) -> None:
        self.fail(operation, 403, times, body=payload("error_403_capacity.json"))

    def storage_full(self, operation: str = "submit", times: int = 1) -> None:
        self.fail(operation, 507, times, body=payload("error_507_storage.json"))

    # -- the vendor --------------------------------------------------------------

    async def _record(self, operation: str, request: Request) -> Recorded:
        rec = await self.record(operation, request)
        self.times.append((operation, time.monotonic()))
        return rec

    def _denied(self, rec: Recorded) -> Response | None:
        if self.api_key is None or rec.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return JSONResponse({"detail": "Not authenticated"}, status_code=401)

    async def start_task(self, request: Request) -> Response:
        rec = await self._record("submit", request)
        if fault := self.fault("submit"):
            return fault
        if denied := self._denied(rec):
            return denied
        technology = request.path_params["technology"]
        if technology not in TECHNOLOGIES:
            return JSONResponse(envelope("resource.not-found", "Not found."), status_code=404)
        audio = rec.form.get("file")
        if not isinstance(audio, bytes) or not audio:
            return _invalid(["body", "file"], "Field required.", "missing")
        if len(audio) > self.max_file_size:
            body = payload("error_413_too_large.json")
            body["detail"][0]["context"].update(
                file_size=len(audio), max_file_size=self.max_file_size
            )
            return JSONResponse(body, status_code=413)
        if technology == "speech-to-text" and not rec.query.get("language"):
            return _invalid(["query", "language"], "Field required.", "missing")
        if rec.query.get("channel_mode", "split") not in ("split", "mix"):
            return _invalid(["query", "channel_mode"], "Input should be 'split' or 'mix'.", "enum")
        config: Any = None
        if "config" in rec.form:
            try:
                config = json.loads(rec.form["config"])
            except (TypeError, ValueError):
                config = None
            if not isinstance(config, dict):
                return JSONResponse(
                    envelope("request.invalid", "Invalid request."), status_code=400
                )
        task_id = str(uuid.uuid4())
        self.tasks[task_id] = FakeTask(
            task_id=task_id,
            technology=technology,
            outcome=self.outcomes.popleft() if self.outcomes else "done",
            states=deque(self.progression),
            audio=audio,
            params=dict(rec.query),
            config=config,  # unknown keys are silently ignored, as documented
        )
        return JSONResponse(
            {"task": {"task_id": task_id, "state": "pending"}},
            status_code=202,
            headers={self.location_header: f"/api/technology/{technology}/{task_id}"},
        )

    async def get_task(self, request: Request) -> Response:
        rec = await self._record("status", request)
        if fault := self.fault("status"):
            return fault
        if denied := self._denied(rec):
            return denied
        task = self.tasks.get(request.path_params["task_id"])
        if task is None or task.technology != request.path_params["technology"]:
            return JSONResponse(envelope("resource.not-found", "Task not found."), status_code=404)
        state = task.states.popleft() if task.states else task.outcome
        body: dict[str, Any] = {"task": {"task_id": task.task_id, "state": state}}
        if state == "done":
            body["result"] = payload(TECHNOLOGIES[task.technology])["result"]
        elif state in ("rejected", "failed"):
            body["error"] = payload(f"{state}.json")["error"]
        return JSONResponse(body)


def _invalid(location: list[str], message: str, type_: str) -> Response:
    detail = {"location": location, "message": message, "type": type_, "context": {}}
    return JSONResponse(
        envelope("request.validation-error", "Request validation error.", detail), status_code=422
    )
