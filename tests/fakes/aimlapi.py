"""A fake AIML API following vendor-docs/aimlapi.txt and NOTES.md §3.

    POST /v1/stt/create           JSON {model, url, …} or multipart: audio (OpenAI models: file),
                                  model, … -> {"generation_id"[, "status": "queued"]}
    GET  /v1/stt/{generation_id}  {"status", "result" | "output", "error"}

Every call needs ``Authorization: Bearer <key>``; errors carry the documented
body ``{message, path, requestId, statusCode, timestamp}``. A create request
without a model, with an unknown model, with both or neither of url and audio,
or with the file in the wrong part is refused with 400 "Body validation error!".

The documents disagree on the status answer, so the fake speaks whichever
variant a test picks: ``vocabulary`` "spec" (queued/generating/completed/error,
universal-stt-fetch.json) or "readme" (waiting/active/completed, aimlapi.txt),
the payload under ``payload_key`` "result" (every example) or "output" (the
spec), and ``shape``, one of the recorded payloads in
tests/providers/payloads/aimlapi/. A job shows ``steps`` in-progress answers,
one per status GET, then its result (or, with ``fail_jobs``, its error).
There is no webhook: the vendor documents none.

Operations for faults and records: "submit", "status".
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.vendor import FakeVendor

PAYLOADS = Path(__file__).parents[1] / "providers" / "payloads" / "aimlapi"

# shape -> the recorded status answer whose payload completed jobs return
SHAPES = {
    "deepgram": "status_completed_deepgram_nova3",  # channels as an array (the examples)
    "deepgram-object": "status_completed_deepgram_spec",  # channels as one object (the spec)
    "deepgram-multichannel": "status_completed_deepgram_multichannel",
    "assemblyai": "status_completed_assemblyai_slam1",
    "assemblyai-utterances": "status_completed_assemblyai_utterances",
    "openai": "status_completed_openai_gpt4o",
}
VOCABULARIES = {
    "spec": {"steps": ("queued", "generating"), "completed": "completed", "failed": "error"},
    # The README names no failure word; the queue its words come from says "failed".
    "readme": {"steps": ("waiting", "active"), "completed": "completed", "failed": "failed"},
}
MODELS = {
    "nova-3",
    "nova-3-general",
    "nova-3-medical",
    "nova-2-general",
    "slam-1",
    "aai/slam-1",
    "aai/universal",
    "whisper-large",
    "openai/gpt-4o-transcribe",
    "openai/gpt-4o-mini-transcribe",
    "microsoft/mai-transcribe-1.5",
    *(
        f"#g1_nova-2-{kind}"
        for kind in [
            "automotive",
            "conversationalai",
            "drivethru",
            "finance",
            "general",
            "medical",
            "meeting",
            "phonecall",
            "video",
            "voicemail",
        ]
    ),
    *(f"{p}whisper-{size}" for p in ("", "#g1_") for size in ("base", "medium", "small", "tiny")),
    "#g1_whisper-large",
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def payload_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The payload of a recorded status answer, wherever it sits."""
    payload = answer.get("result") or answer.get("output")
    assert isinstance(payload, dict)
    return payload


def error_body(status: int, message: str, path: str) -> dict[str, Any]:
    return {
        "message": message,
        "path": path,
        "requestId": str(uuid.uuid4()),
        "statusCode": status,
        "timestamp": "2025-03-11T07:13:27.813Z",
    }


@dataclass
class FakeJob:
    id: str
    model: str
    fields: dict[str, Any]  # everything but the audio (multipart: lists for repeated parts)
    url: str | None = None
    audio: bytes | None = None
    audio_part: str | None = None
    polls: int = 0
    fail: dict[str, Any] | None = None
    shape: str = "deepgram"


@dataclass
class Answer:
    """How status answers look; chosen per test."""

    vocabulary: str = "spec"
    payload_key: str = "result"
    steps: int = 1  # in-progress answers before the result


class FakeAimlApi(FakeVendor):
    def __init__(self, api_key: str = "test-aimlapi-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.jobs: dict[str, FakeJob] = {}
        self.answer = Answer()
        self.shape = "deepgram"
        self.create_status = True  # newer create answers add "status": "queued"
        self.fail_jobs: dict[str, Any] | None = None  # {name, message}: jobs end in error
        self.times: list[tuple[str, float]] = []  # (operation, time.monotonic())
        self.callbacks_enabled = False  # nothing to call: AIML API has no webhooks

    def routes(self) -> list[Route]:
        return [
            Route("/v1/stt/create", self.create, methods=["POST"]),
            Route("/v1/stt/{generation_id}", self.status, methods=["GET"]),
        ]

    async def _begin(self, operation: str, request: Request) -> Response | None:
        await self.record(operation, request)
        self.times.append((operation, time.monotonic()))
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(
                401,
                "This request requires a valid API key. You can create a new API key on "
                "the Billing page: https://aimlapi.com/app/keys",
                request,
            )
        return self.fault(operation)

    @staticmethod
    def _error(status: int, message: str, request: Request) -> JSONResponse:
        return JSONResponse(error_body(status, message, request.url.path), status_code=status)

    def _invalid(self, request: Request, hint: str) -> JSONResponse:
        return self._error(400, f"Body validation error!\n{hint}", request)

    async def create(self, request: Request) -> Response:
        if (answer := await self._begin("submit", request)) is not None:
            return answer
        content_type = request.headers.get("content-type", "")
        job = FakeJob(id=uuid.uuid4().hex, model="", fields={}, fail=self.fail_jobs)
        if content_type.startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                return self._invalid(request, "Expected a JSON object")
            if not isinstance(body, dict):
                return self._invalid(request, "Expected object, received " + type(body).__name__)
            job.fields = {k: v for k, v in body.items() if k not in ("url", "audio")}
            job.url = body.get("url") if isinstance(body.get("url"), str) else None
            if "audio" in body:
                return self._invalid(request, "audio must be a file")
        elif content_type.startswith("multipart/form-data"):
            form = await request.form()
            for key in form:
                if key in ("audio", "file"):
                    continue
                values = [str(v) for v in form.getlist(key)]
                job.fields[key] = values if len(values) > 1 else values[0]
            job.url = str(form["url"]) if "url" in form else None
            job.fields.pop("url", None)
            for part in ("audio", "file"):
                upload = form.get(part)
                if isinstance(upload, UploadFile):
                    await upload.seek(0)
                    job.audio, job.audio_part = await upload.read(), part
        else:
            return self._invalid(request, "Expected application/json or multipart/form-data")

        model = job.fields.get("model")
        if not isinstance(model, str) or not model:
            return self._invalid(request, "Required at 'model'")
        if model not in MODELS:
            return self._invalid(
                request,
                f"Invalid enum value. Expected 'nova-3' | '#g1_nova-2-general' | …, "
                f"received '{model}'",
            )
        if (job.url is None) == (job.audio is None):
            return self._invalid(request, "Provide either url or audio - exactly one is required")
        wanted = "file" if model.startswith("openai/") else "audio"
        if job.audio is not None and job.audio_part != wanted:
            return self._invalid(request, f"Required at '{wanted}'")
        job.model, job.shape = model, self.shape
        self.jobs[job.id] = job
        created: dict[str, Any] = {"generation_id": job.id}
        if self.create_status:
            created["status"] = "queued"
        return JSONResponse(created, status_code=201)

    async def status(self, request: Request) -> Response:
        if (answer := await self._begin("status", request)) is not None:
            return answer
        job = self.jobs.get(request.path_params["generation_id"])
        if job is None:
            return self._error(404, "Generation not found", request)
        words = VOCABULARIES[self.answer.vocabulary]
        steps = words["steps"]
        job.polls += 1
        body: dict[str, Any] = {}
        if self.answer.vocabulary == "spec":
            body = {"id": job.id, self.answer.payload_key: None, "error": None}
        if job.polls <= self.answer.steps:
            body["status"] = steps[min(job.polls - 1, len(steps) - 1)]
        elif job.fail is not None:
            body.update(status=words["failed"], error=job.fail)
        else:
            body["status"] = words["completed"]
            body[self.answer.payload_key] = payload_of(load(SHAPES[job.shape]))
        return JSONResponse(body)
