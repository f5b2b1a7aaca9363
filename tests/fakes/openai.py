"""A fake OpenAI-compatible transcription upstream, per the public API reference.

    POST /v1/audio/transcriptions   multipart: file, model, language, prompt,
                                    response_format, temperature, timestamp_granularities[]

Every call needs ``Authorization: Bearer <key>``; errors come in OpenAI's
envelope ``{"error": {"message", "type", "param", "code"}}``. The answer
follows ``response_format``: ``json`` is ``{"text"}``, ``verbose_json`` adds
language (a name, "english"), duration and segments, and words when
``timestamp_granularities[]`` asks for them (segments only when it does not
name them either way, as OpenAI does). Like the real API, the gpt-4o models
take ``json`` only, and the file type is told by the file name's extension.

``text_only = True`` makes it a server that answers ``{"text"}`` whatever is
asked (gpt-4o-style upstreams, some self-hosted servers).

Operation for faults and records: "transcribe".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.vendor import FakeVendor

API_KEY = "sk-test-openai-key"
EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
JSON_ONLY_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe")
MODELS = ("whisper-1", *JSON_ONLY_MODELS)

# What the fake "hears": two segments of words, as (start, end, text).
SEGMENTS: list[tuple[float, float, str, list[tuple[float, float, str]]]] = [
    (0.0, 1.2, " Hello world.", [(0.12, 0.5, "Hello"), (0.56, 1.02, "world")]),
    (
        1.5,
        2.64,
        " This is a test.",
        [(1.5, 1.72, "This"), (1.72, 1.86, "is"), (1.86, 1.98, "a"), (2.02, 2.6, "test")],
    ),
]
DURATION = 2.9
TEXT = "Hello world. This is a test."


@dataclass
class Received:
    """One transcription request as the fake saw it (every field, repeats kept)."""

    at: float
    authorization: str | None
    fields: list[tuple[str, str]] = field(default_factory=list)
    filename: str | None = None
    content_type: str | None = None
    audio: bytes = b""

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        return found[-1] if found else None


def error(
    status: int, message: str, type_: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def invalid(message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return error(400, message, "invalid_request_error", param, code)


class FakeOpenAI(FakeVendor):
    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.text_only = False  # answer {"text"} whatever response_format asks for
        self.received: list[Received] = []
        self.request_id = 0

    def routes(self) -> list[Route]:
        return [Route("/v1/audio/transcriptions", self.transcribe, methods=["POST"])]

    async def transcribe(self, request: Request) -> Response:
        await self.record("transcribe", request)
        received = Received(at=time.monotonic(), authorization=request.headers.get("authorization"))
        self.received.append(received)
        if fault := self.fault("transcribe"):
            return fault
        if received.authorization != f"Bearer {self.api_key}":
            return error(
                401,
                "Incorrect API key provided: sk-****. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                code="invalid_api_key",
            )
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return invalid("Could not parse multipart form")
        form = await request.form()  # parsed once by record(); starlette keeps it
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                await value.seek(0)
                received.filename, received.content_type = value.filename, value.content_type
                received.audio = await value.read()
            else:
                received.fields.append((key, value))
        return self._answer(received)

    def _answer(self, got: Received) -> Response:
        if got.filename is None:
            return invalid("you must provide a 'file' field", param="file")
        model = got.value("model")
        if not model:
            return invalid("you must provide a model parameter", param="model")
        if model not in MODELS:
            return invalid(f"Invalid model {model}.", param="model", code="model_not_found")
        extension = got.filename.rsplit(".", 1)[-1].lower() if "." in got.filename else ""
        if extension not in EXTENSIONS:
            return invalid(f"Invalid file format. Supported formats: {list(EXTENSIONS)}")
        if not got.audio:
            return invalid("Audio file might be corrupted or unsupported", "file", "invalid_value")
        response_format = got.value("response_format") or "json"
        if response_format not in RESPONSE_FORMATS:
            return invalid(
                f"'{response_format}' is not one of {list(RESPONSE_FORMATS)}",
                param="response_format",
            )
        if model in JSON_ONLY_MODELS and response_format != "json":
            return invalid(
                f"response_format '{response_format}' is not compatible with model '{model}'. "
                "Use 'json' instead.",
                param="response_format",
                code="unsupported_value",
            )
        granularities = got.values("timestamp_granularities[]")
        if granularities and response_format != "verbose_json":
            return invalid(
                "timestamp_granularities requires response_format=verbose_json",
                param="timestamp_granularities",
            )
        if any(g not in ("word", "segment") for g in granularities):
            return invalid("Invalid timestamp granularity", param="timestamp_granularities")
        temperature = got.value("temperature")
        if temperature is not None and not 0 <= float(temperature) <= 1:
            return invalid("temperature must be between 0 and 1", param="temperature")

        self.request_id += 1
        headers = {"x-request-id": f"req_fake{self.request_id:04d}"}
        if self.text_only or response_format == "json":
            return JSONResponse({"text": TEXT}, headers=headers)
        if response_format == "text":
            return PlainTextResponse(TEXT + "\n", headers=headers)
        if response_format in ("srt", "vtt"):
            return PlainTextResponse(_subtitles(response_format), headers=headers)
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": "english",
            "duration": DURATION,
            "text": TEXT,
        }
        if "word" in granularities:
            body["words"] = [
                {"word": word, "start": start, "end": end}
                for *_, words in SEGMENTS
                for start, end, word in words
            ]
        if "segment" in granularities or not granularities:
            body["segments"] = [
                {
                    "id": i,
                    "seek": 0,
                    "start": start,
                    "end": end,
                    "text": text,
                    "tokens": [50364 + i],
                    "temperature": float(temperature or 0),
                    "avg_logprob": -0.25,
                    "compression_ratio": 1.1,
                    "no_speech_prob": 0.01,
                }
                for i, (start, end, text, _) in enumerate(SEGMENTS)
            ]
        body["usage"] = {"type": "duration", "seconds": round(DURATION + 0.5)}
        return JSONResponse(body, headers=headers)


def _subtitles(kind: str) -> str:
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        sep = "," if kind == "srt" else "."
        return f"{ms // 3600000:02}:{ms // 60000 % 60:02}:{ms // 1000 % 60:02}{sep}{ms % 1000:03}"

    cues = [
        f"{stamp(start)} --> {stamp(end)}\n{text.strip()}\n" for start, end, text, _ in SEGMENTS
    ]
    if kind == "srt":
        return "\n".join(f"{i}\n{cue}" for i, cue in enumerate(cues, 1))
    return "WEBVTT\n\n" + "\n".join(cues)


# OpenAI's answer to an audio file it cannot read, as its API reference shows it.
REFUSED_FILE = {
    "error": {
        "message": "Audio file might be corrupted or unsupported",
        "type": "invalid_request_error",
        "param": "file",
        "code": "invalid_value",
    }
}
