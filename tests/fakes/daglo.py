"""A fake Daglo (apis.daglo.ai) following vendor-docs/daglo.txt and NOTES.md §2.

    POST /stt/v1/async/transcripts        multipart `file` (+ sttConfig, nlpConfig,
                                          callback, custom as JSON-text fields), or JSON
                                          {"audio": {"source": {"url": …}}, …}
                                          -> {rid, fileName, custom}
    GET  /stt/v1/async/transcripts/{rid}  {rid, status, progress, sttResults?, message?, custom}
                                          204 when transcribed with an empty result

Every call needs ``Authorization: Bearer <token>``; errors are ``{"error": "…"}``.
A job runs on the fake's clock: it walks through ``steps`` (``step_seconds``
each), POSTing ``{"status", "progress"}`` to ``callback.url`` at each step, then
takes its ``outcome`` and POSTs the documented final body
(``{"status": "transcribed", "sttResults": [...]}``). A source URL is fetched
like Daglo does; one that cannot be read ends in ``input_error``. An upload whose
file name lacks one of the documented extensions is a 400, "Invalid format".

Operations for faults and records: "submit", "status".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.vendor import FakeVendor

LANGUAGES = {
    "ko-KR", "en-US", "mixed", "ja-JP", "cmn-Hans-CN", "de-DE", "fr-FR", "es-ES", "it-IT",
    "nl-NL", "sv-SE", "hi-IN", "ru-RU", "vi-VN", "th-TH", "id-ID", "fa-IR", "cs-CZ",
}  # fmt: skip
# daglo.txt, "Support file formats": audio, then video.
EXTENSIONS = {
    "3gp", "3gpp", "ac3", "aac", "aiff", "amr", "au", "flac", "m4a", "mp3", "mxf", "opus",
    "ra", "wav", "weba",
    "asx", "avi", "ogm", "ogv", "m4v", "mov", "mp4", "mpeg", "mpg", "wmv",
}  # fmt: skip
STT_KEYS = {"model", "language", "keywordBoost", "multiChannel", "speakerDiarization"}
NLP_KEYS = {"keywordExtraction", "sentimentAnalysis"}
OBJECT_FIELDS = {"sttConfig", "nlpConfig", "callback", "custom"}
PROCESSING = ["ai_requested", "uploaded", "file_processing", "transcribing", "post_processing"]
MESSAGES = {
    "file_error": "There is an error in the file. Please check the file and request it again.",
    "transcript_error": "An error occurred while transcribing. Please wait a moment and "
    "request again.",
    "input_error": "Could not read the input.",
}
# Where a failing job stops: the first step it never reaches.
STOPS_BEFORE = {
    "input_error": "uploaded",
    "file_error": "transcribing",
    "transcript_error": "post_processing",
}

# The words of the guide's example (word, start, end, segmentId), in seconds.
SCRIPT = [
    ("안녕하세요. ", 0.06, 0.86, "1"),
    ("액션 ", 0.82, 1.419999999, "2"),
    ("파워입니다. ", 1.379999999, 2.02, "2"),
    ("음성 ", 1.99, 2.509999999, "3"),
    ("인식의 ", 2.47, 2.83, "3"),
    ("선두주자 ", 2.79, 4.15, "3"),
    ("액션 ", 4.11, 4.669999999, "3"),
    ("파워의 ", 4.629999999, 4.95, "3"),
    ("기술을 ", 4.95, 5.879999999, "3"),
    ("만나보세요. ", 5.839999999, 6.479999999, "3"),
]


def duration(t: float) -> dict[str, Any]:
    """Seconds as Daglo writes them: int64 seconds as a string, and nanos."""
    whole = int(t)
    return {"seconds": str(whole), "nanos": round((t - whole) * 1e9)}


@dataclass
class FakeJob:
    rid: str
    file_name: str
    config: dict[str, Any]
    source_url: str | None = None
    audio: bytes = b""
    status: str = "ai_requested"
    progress: int = 0
    message: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


class FakeDaglo(FakeVendor):
    def __init__(self, api_key: str = "test-daglo-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.jobs: dict[str, FakeJob] = {}
        self.steps = list(PROCESSING)
        self.step_seconds = 0.05
        # "transcribed" | "empty" (GET answers 204) | "empty_at_once" (the POST answers
        # 204, as documented: "transcription is complete, but the result is empty") |
        # "file_error" | "transcript_error" | "input_error": how the next jobs end.
        self.outcome = "transcribed"
        self.max_file_bytes = 2 * 1024**3  # Daglo's documented limit
        self.times: list[tuple[str, float]] = []  # (operation, time.monotonic())
        self._running: set[asyncio.Task[None]] = set()

    def routes(self) -> list[Route]:
        return [
            Route("/stt/v1/async/transcripts", self.create, methods=["POST"]),
            Route("/stt/v1/async/transcripts/{rid}", self.status, methods=["GET"]),
        ]

    async def _begin(self, operation: str, request: Request) -> Response | None:
        await self.record(operation, request)
        self.times.append((operation, time.monotonic()))
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Unauthorized.")
        return self.fault(operation)

    # -- POST ---------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        if (answer := await self._begin("submit", request)) is not None:
            return answer
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            return await self._create_from_upload(request)
        if content_type.startswith("application/json"):
            return await self._create_from_url(request)
        return _error(415, "Unsupported Media Type.")

    async def _create_from_upload(self, request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _error(400, "Invalid format: file is required.")
        name = upload.filename or ""
        if "." not in name or name.rsplit(".", 1)[1].lower() not in EXTENSIONS:
            return _error(400, f"Invalid format: {name!r} is not a supported file format.")
        await upload.seek(0)
        audio = await upload.read()
        if len(audio) > self.max_file_bytes:
            return _error(413, "Request too large.")
        config: dict[str, Any] = {}
        for name, value in form.multi_items():
            if name == "file":
                continue
            if name not in OBJECT_FIELDS or not isinstance(value, str):
                return _error(400, f"Invalid format: unknown field {name}.")
            try:
                config[name] = json.loads(value)
            except json.JSONDecodeError:
                return _error(400, f"Invalid format: {name} is not JSON.")
        return self._accept(config, upload.filename or "audio", audio=audio)

    async def _create_from_url(self, request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "Invalid format: the body is not JSON.")
        url = (((body or {}).get("audio") or {}).get("source") or {}).get("url")
        if not isinstance(url, str) or not url:
            return _error(400, "Invalid format: audio.source.url is required.")
        config = {k: v for k, v in body.items() if k != "audio"}
        unknown = set(config) - OBJECT_FIELDS
        if unknown:
            return _error(400, f"Invalid format: unknown field {sorted(unknown)[0]}.")
        return self._accept(config, url.rsplit("/", 1)[-1].split("?")[0], source_url=url)

    def _accept(
        self,
        config: dict[str, Any],
        file_name: str,
        audio: bytes = b"",
        source_url: str | None = None,
    ) -> Response:
        if (problem := _config_problem(config)) is not None:
            return _error(400, f"Invalid format: {problem}")
        if self.outcome == "empty_at_once":
            return Response(status_code=204)
        job = FakeJob(uuid.uuid4().hex, file_name, config, source_url=source_url, audio=audio)
        self.jobs[job.rid] = job
        task = asyncio.get_running_loop().create_task(self._run(job, self.outcome))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return JSONResponse({"rid": job.rid, "fileName": file_name, "custom": config.get("custom")})

    # -- the job's life -------------------------------------------------------------

    async def _run(self, job: FakeJob, outcome: str) -> None:
        callback = (job.config.get("callback") or {}).get("url")
        if job.source_url is not None:
            job.audio = await _download(job.source_url)
            if not job.audio:
                outcome = "input_error"
        elif not job.audio:
            outcome = "file_error"
        for index, word in enumerate(self.steps):
            if word == STOPS_BEFORE.get(outcome):
                break
            await asyncio.sleep(self.step_seconds)
            job.status, job.progress = word, 100 * index // len(self.steps)
            await self._notify(callback, {"status": word, "progress": job.progress})
        await asyncio.sleep(self.step_seconds)
        job.progress = 100
        if outcome in MESSAGES:
            job.status, job.message = outcome, MESSAGES[outcome]
            await self._notify(callback, {"status": outcome, "message": job.message})
            return
        job.results = [] if outcome == "empty" else _results(job.config)
        job.status = "transcribed"
        await self._notify(callback, {"status": "transcribed", "sttResults": job.results})

    async def _notify(self, url: str | None, payload: dict[str, Any]) -> None:
        # A gateway already stopped is not an error here: Daglo documents no retries.
        with contextlib.suppress(httpx.HTTPError):
            await self.call_back(url or "", payload)

    # -- GET --------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        if (answer := await self._begin("status", request)) is not None:
            return answer
        job = self.jobs.get(request.path_params["rid"])
        if job is None:
            return _error(404, "Not Found.")
        if job.status == "transcribed" and not job.results:
            return Response(status_code=204)
        body: dict[str, Any] = {"rid": job.rid, "status": job.status, "progress": job.progress}
        if job.status == "transcribed":
            body["sttResults"] = job.results
        if job.message is not None:
            body["message"] = job.message
        if "custom" in job.config:
            body["custom"] = job.config["custom"]
        return JSONResponse(body)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _config_problem(config: dict[str, Any]) -> str | None:
    for name in OBJECT_FIELDS & set(config):
        if not isinstance(config[name], dict):
            return f"{name} is not an object."
    stt, nlp = config.get("sttConfig", {}), config.get("nlpConfig", {})
    if set(stt) - STT_KEYS or set(nlp) - NLP_KEYS:
        return "unknown sttConfig or nlpConfig field."
    if "language" in stt and stt["language"] not in LANGUAGES:
        return f"sttConfig.language {stt['language']!r} is not supported."
    channels = stt.get("multiChannel", {}).get("channelCount", 1)
    if channels not in (1, 2):
        return "multiChannel.channelCount must be 1 or 2."
    callback = config.get("callback")
    if callback is not None and not str(callback.get("url", "")).startswith("http"):
        return "callback.url must be an http(s) URL."
    return None


async def _download(url: str) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return b""
    return response.content if response.is_success else b""


def _results(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The example's words: one entry, or one per channel (the words split between
    them); speakers "1" and "2" with diarization; keywords when asked for."""
    stt, nlp = config.get("sttConfig", {}), config.get("nlpConfig", {})
    channels = stt.get("multiChannel", {}).get("channelCount", 1)
    diarize = stt.get("speakerDiarization", {}).get("enable", False)
    boosted = stt.get("keywordBoost", {})
    keywords = boosted.get("keywords", []) if boosted.get("enable") else []
    extraction = nlp.get("keywordExtraction", {})
    half = len(SCRIPT) // 2
    parts = [SCRIPT] if channels == 1 else [SCRIPT[:half], SCRIPT[half:]]
    results = []
    for part in parts:
        words = []
        for position, (text, start, end, segment) in enumerate(SCRIPT):
            if (text, start, end, segment) not in part:
                continue
            word: dict[str, Any] = {
                "word": text,
                "startTime": duration(start),
                "endTime": duration(end),
                "segmentId": segment,
            }
            if diarize:
                word["speaker"] = "1" if position < half else "2"
            if keywords:
                word["hasKeyword"] = any(k in text for k in keywords)
            words.append(word)
        entry: dict[str, Any] = {
            "transcript": "".join(w["word"] for w in words),
            "words": words,
            "keywords": ["액션 파워", "음성 인식"][: extraction.get("maxCount", 2)]
            if extraction.get("enable")
            else None,
        }
        results.append(entry)
    return results
