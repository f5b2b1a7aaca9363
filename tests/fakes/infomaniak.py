"""A fake Infomaniak AI, per vendor-docs/infomaniak.txt and NOTES.md (section 4).

    POST /1/ai/{product_id}/openai/audio/transcriptions   multipart: file, model, language
         (optional, one of LANGUAGES), response_format, timestamp_granularities[], ...
         -> {"batch_id": "..."}
    GET  /1/ai/{product_id}/results/{batch_id}   -> {status, url, file_name, file_size, data}
    GET  /1/ai/results/{batch_id}/download                the official example's `url`
    GET  /1/ai/{product_id}/results/{batch_id}/download   the path third-party clients use

Every call needs ``Authorization: Bearer <token>``; errors come in Infomaniak's
generic envelope ``{"result": "error", "error": {"code", "description"}}``.
Each batch walks ``progression`` one step per results GET (pending ->
processing -> success by default; end it with "failed" or "cancelled" for a
vendor-side failure). ``delivery`` says where the finished transcript is:

    "inline"         in ``data`` (a JSON object, or the text for text/srt/vtt)
    "inline-string"  in ``data``, JSON-encoded as a string
    "url"            behind ``url`` (the official download path)
    "product"        ``url`` answers 404; only the product-scoped path has it

``url`` names ``link_base``, not this server: the adapter must move it onto its
configured base URL. The default, a closed loopback port, keeps a mistake on
this machine (and fails the test).

Operations for faults and records: "submit", "status", "download", "download_product".
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.vendor import FakeVendor, Recorded

TOKEN = "ik-test-token"
PRODUCT_ID = "24250"
MODELS = ("whisper", "whisperV2")
RESPONSE_FORMATS = ("json", "srt", "text", "verbose_json", "vtt")
EXTENSIONS = ("mp3", "mp4", "aac", "wav", "flac", "ogg", "opus", "wma", "m4a")
LANGUAGE_NAMES = {"en": "english", "fr": "french", "de": "german", "it": "italian"}
# The reference's `language` "Possible values" (its page runs them together).
_LANGUAGE_VALUES = (
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu "
    "ha haw he hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml "
    "mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw "
    "ta te tg th tk tl tr tt uk ur uz vi yi yo yue zh"
)
LANGUAGES = frozenset(_LANGUAGE_VALUES.split())

# What the fake "hears": (start, end, text, words).
SEGMENTS: list[tuple[float, float, str, list[tuple[float, float, str]]]] = [
    (0.0, 1.2, " Hello world.", [(0.12, 0.5, "Hello"), (0.56, 1.02, "world.")]),
    (
        1.5,
        2.64,
        " This is a test.",
        [(1.5, 1.72, "This"), (1.72, 1.86, "is"), (1.86, 1.98, "a"), (2.02, 2.6, "test.")],
    ),
]
DURATION = 2.9
TEXT = "Hello world. This is a test."


def error(status: int, code: str, description: str) -> JSONResponse:
    body = {"result": "error", "error": {"code": code, "description": description}}
    return JSONResponse(body, status_code=status)


@dataclass
class Batch:
    id: str
    audio: bytes
    filename: str | None
    fields: list[tuple[str, str]]
    polls: int = 0

    def value(self, name: str, default: str | None = None) -> str | None:
        found = [v for k, v in self.fields if k == name]
        return found[-1] if found else default

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]


@dataclass
class Seen:
    operation: str
    at: float  # time.monotonic() when the request arrived


class FakeInfomaniak(FakeVendor):
    def __init__(self, token: str = TOKEN, product_id: str = PRODUCT_ID) -> None:
        super().__init__()
        self.token = token
        self.product_id = product_id
        self.progression = ["pending", "processing", "success"]
        self.delivery = "inline"
        self.failure_data = "Unable to decode the audio file"
        self.envelope = False  # answer the create call as {"result": "success", "data": {...}}
        self.max_bytes = 50 * 1024 * 1024
        self.link_base = "http://127.0.0.1:9"
        self.batches: dict[str, Batch] = {}
        self.seen: list[Seen] = []

    def routes(self) -> list[Route]:
        product = "/1/ai/{product_id}"
        return [
            Route(f"{product}/openai/audio/transcriptions", self.submit, methods=["POST"]),
            Route(f"{product}/results/{{batch_id}}", self.status, methods=["GET"]),
            Route("/1/ai/results/{batch_id}/download", self.download, methods=["GET"]),
            Route(
                f"{product}/results/{{batch_id}}/download", self.download_product, methods=["GET"]
            ),
        ]

    async def record(self, operation: str, request: Request) -> Recorded:
        self.seen.append(Seen(operation, time.monotonic()))
        return await super().record(operation, request)

    def times(self, operation: str) -> list[float]:
        return [s.at for s in self.seen if s.operation == operation]

    def _refused(self, request: Request, product_id: str | None) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "not_authorized", "Authorization required")
        if product_id is not None and product_id != self.product_id:
            return error(404, "object_not_found", f"product {product_id} not found")
        return None

    # -- the vendor's endpoints ------------------------------------------------

    async def submit(self, request: Request) -> Response:
        await self.record("submit", request)
        if fault := self.fault("submit"):
            return fault
        if refused := self._refused(request, request.path_params["product_id"]):
            return refused
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(400, "validation_failed", "file is required")
        form = await request.form()  # parsed once by record(); starlette keeps it
        fields: list[tuple[str, str]] = []
        audio, filename = b"", None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                await value.seek(0)
                audio, filename = await value.read(), value.filename
            else:
                fields.append((key, value))
        batch = Batch(uuid.uuid4().hex, audio, filename, fields)
        if filename is None or not audio:
            return error(400, "validation_failed", "The file field is required")
        if len(audio) > self.max_bytes:
            return error(413, "file_too_large", "The file may not be greater than 50 MB")
        if filename.rpartition(".")[2].lower() not in EXTENSIONS:
            return error(400, "validation_failed", "The file must be a file of type: mp3, ...")
        if batch.value("model") not in MODELS:
            return error(400, "validation_failed", "The selected model is invalid")
        if batch.value("response_format", "json") not in RESPONSE_FORMATS:
            return error(400, "validation_failed", "The selected response format is invalid")
        if batch.value("language", "en") not in LANGUAGES:  # optional (not marked required)
            return error(400, "validation_failed", "The selected language is invalid")
        self.batches[batch.id] = batch
        created = {"batch_id": batch.id}
        return JSONResponse({"result": "success", "data": created} if self.envelope else created)

    async def status(self, request: Request) -> Response:
        await self.record("status", request)
        if fault := self.fault("status"):
            return fault
        if refused := self._refused(request, request.path_params["product_id"]):
            return refused
        batch = self.batches.get(request.path_params["batch_id"])
        if batch is None:
            return error(404, "object_not_found", "batch not found")
        batch.polls += 1
        word = self.progression[min(batch.polls, len(self.progression)) - 1]
        data: Any = None
        if word in ("failed", "cancelled"):
            data = self.failure_data if word == "failed" else None
        elif word == "success" and self.delivery.startswith("inline"):
            data = self.output(batch)
            if self.delivery == "inline-string" and isinstance(data, dict):
                data = json.dumps(data)
        return JSONResponse(
            {
                "status": word,
                "url": f"{self.link_base}/1/ai/results/{batch.id}/download",
                "file_name": batch.filename,
                "file_size": len(batch.audio),
                "data": data,
            }
        )

    async def download(self, request: Request) -> Response:
        await self.record("download", request)
        if fault := self.fault("download"):
            return fault
        if refused := self._refused(request, None):
            return refused
        if self.delivery == "product":
            return error(404, "object_not_found", "not found")
        return self._result(request.path_params["batch_id"])

    async def download_product(self, request: Request) -> Response:
        await self.record("download_product", request)
        if fault := self.fault("download_product"):
            return fault
        if refused := self._refused(request, request.path_params["product_id"]):
            return refused
        return self._result(request.path_params["batch_id"])

    def _result(self, batch_id: str) -> Response:
        batch = self.batches.get(batch_id)
        if batch is None or batch.polls < len(self.progression):
            return error(404, "object_not_found", "result not found")
        output = self.output(batch)
        if isinstance(output, dict):
            return JSONResponse(output)
        media = {"srt": "application/x-subrip", "vtt": "text/vtt"}
        return PlainTextResponse(output, media_type=media.get(batch.value("response_format") or ""))

    # -- what Whisper would answer ---------------------------------------------

    def output(self, batch: Batch) -> dict[str, Any] | str:
        fmt = batch.value("response_format", "json")
        if fmt == "json":
            return {"text": TEXT}
        if fmt == "text":
            return TEXT + "\n"
        if fmt in ("srt", "vtt"):
            return _subtitles(fmt)
        language = batch.value("language")
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": LANGUAGE_NAMES.get(language or "en", language),
            "duration": DURATION,
            "text": TEXT,
            "segments": [
                {"id": i, "seek": 0, "start": start, "end": end, "text": text, "tokens": []}
                for i, (start, end, text, _) in enumerate(SEGMENTS)
            ],
        }
        if "word" in batch.values("timestamp_granularities[]"):
            body["words"] = [
                {"word": text, "start": start, "end": end}
                for *_, words in SEGMENTS
                for start, end, text in words
            ]
        return body


def _subtitles(fmt: str) -> str:
    def stamp(seconds: float) -> str:
        millis = round(seconds * 1000)
        hours, rest = divmod(millis, 3_600_000)
        minutes, rest = divmod(rest, 60_000)
        sep = "," if fmt == "srt" else "."
        return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{sep}{rest % 1000:03d}"

    cues = [
        (f"{i}\n" if fmt == "srt" else "") + f"{stamp(start)} --> {stamp(end)}\n{text.strip()}\n"
        for i, (start, end, text, _) in enumerate(SEGMENTS, start=1)
    ]
    return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(cues)
