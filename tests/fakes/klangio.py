"""A fake Klangio (api.klang.io) following vendor-docs/klangio.txt and NOTES.md §1.

    POST /transcription?model=…&title=…&composer=…&webhook_url=…  multipart: file, outputs
    GET  /job/{id}/status      {"status": "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED" | "FAILED"}
    GET  /job/{id}/{path}      midi, xml, pdf, gp5, and quantized MIDI at ``quant_path``

Every call needs the header ``kl-api-key`` (401 otherwise); errors are FastAPI-style
``{"detail": …}`` (what third-party clients parse: Klangio documents no error
shape). A job walks through ``steps``, one status word per status GET; the GET
that shows the last step finishes it, and Klangio's webhook is POSTed a moment
later (its body is undocumented: here the job id and the final word). Only the
outputs asked for are made; ``late_outputs`` holds some back after COMPLETED
(Klangio documents nothing of the kind, and nothing against it).

Operations for faults and records: "submit", "status", "result".
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.vendor import FakeVendor, Recorded

# The model enum as third-party clients copy it from Klangio's OpenAPI.
MODELS = (
    "piano",
    "guitar",
    "bass",
    "vocal",
    "universal",
    "lead",
    "detect",
    "drums",
    "multi",
    "wind",
    "string",
    "piano_arrangement",
)
# Output value -> the file made for it.
FILES: dict[str, bytes] = {
    "midi": b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff/\x00",
    "midi_quant": b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff/\x00",
    "mxml": b'<?xml version="1.0"?><score-partwise version="4.0"></score-partwise>',
    "pdf": b"%PDF-1.4\n%fake score\n%%EOF\n",
    "gp5": b"\x18FICHIER GUITAR PRO v5.00",
}
# Output value -> the result path it is served at (midi_quant: see ``quant_path``).
PATHS = {"midi": "midi", "mxml": "xml", "pdf": "pdf", "gp5": "gp5"}
# Output value -> the create answer's flag announcing it (the newer documents).
FLAGS = {
    "mxml": "gen_xml",
    "midi": "gen_midi",
    "midi_quant": "gen_midi_quant",
    "gp5": "gen_gp5",
    "pdf": "gen_pdf",
}


@dataclass
class FakeJob:
    id: str
    model: str
    outputs: list[str]
    webhook_url: str | None
    failed_body: dict[str, Any] | None  # None: the job completes
    audio: bytes = b""
    filename: str | None = None
    content_type: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    polls: int = 0
    finished: bool = False
    completed_looks: int = 0  # status GETs that have shown COMPLETED


class FakeKlangio(FakeVendor):
    def __init__(self, api_key: str = "test-klangio-key-0123") -> None:
        super().__init__()
        self.api_key = api_key
        self.jobs: dict[str, FakeJob] = {}
        self.steps = ["IN_QUEUE", "IN_PROGRESS"]  # what successive status GETs show
        # The two documents disagree on the path of quantized MIDI; the other one is a 404.
        self.quant_path = "midi_quant"
        self.failed_body: dict[str, Any] | None = None  # set: new jobs end with this status
        self.callback_delay = 0.25  # after the status GET that finished the job
        # Output value -> the COMPLETED status GET from which its file is there (1: the
        # first, as for any other output); None: never (a 404 for good).
        self.late_outputs: dict[str, int | None] = {}
        self.stamps: list[tuple[Recorded, float]] = []  # each request, time.monotonic()

    # -- for tests --------------------------------------------------------------

    def reject_input(self, detail: Any, status: int = 422) -> None:
        """The next create call refuses the input, FastAPI-style."""
        self.fail("submit", status, body={"detail": detail})

    def fail_jobs(self, word: str = "FAILED", error: str | None = None) -> None:
        """New jobs end with ``word`` (FAILED, or the third-party CANCELLED/TIMED_OUT)."""
        self.failed_body = {"status": word} | ({"error": error} if error else {})

    def stamped(self, operation: str) -> list[tuple[Recorded, float]]:
        return [(r, t) for r, t in self.stamps if r.operation == operation]

    def status_times(self) -> list[float]:
        return [t for _, t in self.stamped("status")]

    # -- the vendor ---------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/transcription", self.create, methods=["POST"]),
            Route("/job/{job_id}/status", self.status, methods=["GET"]),
            Route("/job/{job_id}/{path}", self.result, methods=["GET"]),
        ]

    async def _begin(self, operation: str, request: Request) -> Response | None:
        self.stamps.append((await self.record(operation, request), time.monotonic()))
        if request.headers.get("kl-api-key") != self.api_key:
            return JSONResponse({"detail": "Invalid API key"}, status_code=401)
        return self.fault(operation)

    async def create(self, request: Request) -> Response:
        if (answer := await self._begin("submit", request)) is not None:
            return answer
        form = await request.form()  # parsed once by record(); this is the cached form
        problems = []
        model = request.query_params.get("model")
        if not model:
            problems.append(_error(["query", "model"], "Field required", "missing"))
        elif model not in MODELS:
            problems.append(_error(["query", "model"], "Input should be a model", "enum"))
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            problems.append(_error(["body", "file"], "Field required", "missing"))
        # The newer page sends outputs as form fields, the older one as multipart parts.
        outputs: list[str] = []
        for value in form.getlist("outputs"):
            if isinstance(value, UploadFile):
                await value.seek(0)
                outputs.append((await value.read()).decode())
            else:
                outputs.append(value)
        if not outputs:
            problems.append(_error(["body", "outputs"], "Field required", "missing"))
        for value in outputs:
            if value not in FILES:
                problems.append(_error(["body", "outputs"], "Input should be an output", "enum"))
        if problems or not isinstance(upload, UploadFile) or not model:
            return JSONResponse({"detail": problems}, status_code=422)
        await upload.seek(0)
        job = FakeJob(
            id=uuid.uuid4().hex,
            model=model,
            outputs=outputs,
            webhook_url=request.query_params.get("webhook_url"),
            failed_body=self.failed_body,
            audio=await upload.read(),
            filename=upload.filename,
            content_type=upload.content_type,
            params=dict(request.query_params),
        )
        self.jobs[job.id] = job
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "job_id": job.id,
                "creation_date": "2023-01-01",
                "deletion_date": "2023-02-01",
                **{flag: name in outputs for name, flag in FLAGS.items()},
                "status_endpoint_url": f"{base}/job/{job.id}/status",
            }
        )

    async def status(self, request: Request) -> Response:
        if (answer := await self._begin("status", request)) is not None:
            return answer
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"detail": "Job not found"}, status_code=404)
        if job.polls < len(self.steps):
            word = self.steps[job.polls]
            job.polls += 1
            if job.polls == len(self.steps):
                self._finish(job)
            return JSONResponse({"status": word})
        if not job.finished:  # no steps at all: done on the first look
            self._finish(job)
        if job.failed_body is not None:
            return JSONResponse(job.failed_body)
        job.completed_looks += 1
        return JSONResponse({"status": "COMPLETED"})

    def _finish(self, job: FakeJob) -> None:
        """The job is done: the next status GET shows it, and the webhook is sent."""
        job.finished = True
        if job.webhook_url:
            word = (job.failed_body or {"status": "COMPLETED"})["status"]
            payload = {"job_id": job.id, "status": word}
            self.call_back_later(job.webhook_url, payload, delay=self.callback_delay)

    async def result(self, request: Request) -> Response:
        if (answer := await self._begin("result", request)) is not None:
            return answer
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"detail": "Job not found"}, status_code=404)
        path = request.path_params["path"]
        paths = PATHS | {"midi_quant": self.quant_path}
        if job.finished and job.failed_body is None:
            for name in job.outputs:
                since = self.late_outputs.get(name, 1)
                if paths[name] == path and since is not None and job.completed_looks >= since:
                    return Response(FILES[name], media_type="application/octet-stream")
        return JSONResponse({"detail": "Not Found"}, status_code=404)


def _error(loc: list[str], msg: str, kind: str) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg, "input": None}
