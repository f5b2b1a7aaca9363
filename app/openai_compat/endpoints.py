"""``POST /v1/audio/transcriptions``: OpenAI's transcription API in front of every provider.

The official SDKs work unchanged (``base_url=<gateway>/v1``, a client's API key).
The request becomes an ordinary job (same storage, validation and tenancy as
``POST /jobs``); the answer waits until the job is terminal and is rendered
from the normalised transcript, whatever the vendor returned.

``model`` picks the provider: ``local``, or ``openai/whisper-1``, where the part
after the first slash is the provider's own ``model`` option.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from app import limits
from app.context import GatewayContext
from app.deps import Caller, Ctx, CurrentClient
from app.errors import field_errors
from app.ids import new_id
from app.jobs import intake, repository, service
from app.jobs.form import JobFormReader
from app.jobs.held import HeldSubmit
from app.jobs.schemas import JobFields, JobStatus
from app.models import Job
from app.openai_compat.early_start import EarlyStart, Planned, UploadsEarly
from app.openai_compat.errors import (
    NO_RETRY,
    SERVER_ERROR,
    OpenAIError,
    OpenAIErrorBody,
    OpenAIRoute,
)
from app.openai_compat.render import GRANULARITIES, RESPONSE_FORMATS, ResponseFormat, render
from app.providers.base import Provider
from app.queue.repository import ClaimedTask
from app.transcripts import Transcript, TranscriptHasNoTimings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["openai-compatible"], route_class=OpenAIRoute)

# The OpenAI SDK gives up on a request after 600 s by default (and then sends
# it again): answer before that, with the job's id to follow it by.
MAX_WAIT_SECONDS = 570.0
_WAIT_RECHECK_SECONDS = 5.0  # a lost wake-up costs at most this much
MAX_EARLY_UPLOADS = 4  # per provider and process (app.openai_compat.early_start)

_GRANULARITY_FIELDS = frozenset({"timestamp_granularities[]", "timestamp_granularities"})
# OpenAI's own parameters that no normalised transcript serves: taken, as the
# SDKs send them, and not acted on (README, "The OpenAI SDK, unchanged").
_INCLUDE_FIELDS = frozenset({"include[]", "include"})
_IGNORED_FIELDS = frozenset({"chunking_strategy"}) | _INCLUDE_FIELDS
FORM_FIELDS = frozenset(
    {"file", "model", "language", "prompt", "response_format", "temperature", "stream"}
    | _GRANULARITY_FIELDS
    | _IGNORED_FIELDS
)
_REPEATABLE = _GRANULARITY_FIELDS | _INCLUDE_FIELDS
_INCLUDABLE = ("logprobs",)
_MAX_PARTS = len(FORM_FIELDS) + len(GRANULARITIES) + len(_INCLUDABLE)

# Job error codes about the audio the client sent: OpenAI answers those with a 4xx.
_INPUT_ERRORS: dict[str, tuple[int, str]] = {
    "invalid_audio": (400, "file"),
    "unsupported_media": (400, "file"),
    "unsupported_language": (400, "language"),
    "input_too_large": (413, "file"),
}


@dataclass(frozen=True)
class TranscriptionRequest:
    """The form's fields, checked as OpenAI checks them."""

    model: str
    provider: str
    vendor_model: str | None  # after the first slash of ``model``
    language: str | None
    prompt: str | None
    temperature: float | None
    response_format: ResponseFormat
    granularities: tuple[str, ...]


def _bad(message: str, param: str, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def _one_of(
    lists: dict[str, list[str]], names: frozenset[str], allowed: tuple[str, ...], param: str
) -> list[str]:
    """The values of a repeatable field (under any of its ``names``), each one of
    ``allowed`` or OpenAI's 400; in order, each once."""
    values: list[str] = []
    for name in sorted(names):
        for value in lists.get(name, []):
            if value.strip() not in allowed:
                raise _bad(
                    f"{value!r} is not one of {list(allowed)} - {param!r}",
                    param,
                    "unsupported_value",
                )
            if value.strip() not in values:
                values.append(value.strip())
    return values


def parse_form(fields: dict[str, str], lists: dict[str, list[str]]) -> TranscriptionRequest:
    model = fields.get("model", "").strip()
    if not model:
        raise _bad("you must provide a model parameter", "model")
    provider, slash, vendor_model = model.partition("/")
    if slash and not vendor_model.strip():
        raise _bad(f"model {model!r} names no model after the slash", "model")
    response_format = fields.get("response_format", "").strip() or "json"
    if response_format not in RESPONSE_FORMATS:
        raise _bad(
            f"{response_format!r} is not one of {list(RESPONSE_FORMATS)} - 'response_format'",
            "response_format",
            "unsupported_value",
        )
    granularities = _one_of(lists, _GRANULARITY_FIELDS, GRANULARITIES, "timestamp_granularities")
    _one_of(lists, _INCLUDE_FIELDS, _INCLUDABLE, "include")
    if fields.get("stream", "").strip().lower() in ("true", "1"):
        raise _bad("streaming is not supported by this gateway; leave stream unset", "stream")
    temperature = None
    if fields.get("temperature", "").strip():
        try:
            temperature = float(fields["temperature"])
        except ValueError:
            temperature = math.nan
        if not 0 <= temperature <= 1:  # also NaN
            raise _bad("temperature must be a number between 0 and 1", "temperature")
    return TranscriptionRequest(
        model=model,
        provider=provider.strip(),
        vendor_model=vendor_model.strip() if slash else None,
        language=fields.get("language", "").strip() or None,
        prompt=fields.get("prompt") or None,
        temperature=temperature,
        response_format=cast(ResponseFormat, response_format),  # checked above
        granularities=tuple(granularities),
    )


def job_fields(request: TranscriptionRequest, provider: Provider) -> JobFields:
    """The job: the provider's ``model``, ``prompt`` and ``temperature`` where it has them."""
    takes = provider.options_model.model_fields
    options: dict[str, Any] = {}
    if request.vendor_model is not None:
        if "model" not in takes:
            raise _bad(
                f"provider {provider.name!r} has no models to choose from: "
                f"send model={provider.name!r}",
                "model",
            )
        options["model"] = request.vendor_model
    # OpenAI's own optional parameters: ignored where the provider has no such thing.
    if request.prompt is not None and "prompt" in takes:
        options["prompt"] = request.prompt
    if request.temperature is not None and "temperature" in takes:
        options["temperature"] = request.temperature
    try:
        return JobFields(provider=provider.name, language=request.language, options=options)
    except ValidationError as exc:
        errors = field_errors(list(exc.errors()))
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise _bad(detail, errors[0]["field"] if errors else "model") from None


def _provider(ctx: GatewayContext, request: TranscriptionRequest) -> Provider:
    provider = ctx.providers.get(request.provider)
    if provider is None:
        reason = ctx.providers.why_unavailable(request.provider)
        raise OpenAIError(
            404,
            f"The model {request.model!r} does not exist or you do not have access to it "
            f"({reason})",
            param="model",
            code="model_not_found",
        )
    return provider


def _planned(ctx: GatewayContext, reader: JobFormReader) -> Planned | None:
    """The provider, the job's fields and its options, as the form's fields so far
    give them, for a provider that can upload early and whose submit this request
    runs; None if they do not (yet)."""
    if ctx.task_runner is None:
        return None
    try:
        asked = parse_form(reader.fields, reader.lists)
        provider = _provider(ctx, asked)
        fields = job_fields(asked, provider)
        options = provider.options_model.model_validate(fields.options)
    except (OpenAIError, ValidationError):
        return None  # the same error comes again once the whole form is read
    if not (provider.capabilities.synchronous and isinstance(provider, UploadsEarly)):
        return None
    # An early upload is a call to the vendor: within its breaker and in-flight limit.
    # And only a few at once: when the machine is saturated, many uploads that all
    # progress together each finish later (B/A p50 1.11-1.27 at 32 clients x 20 MiB).
    if provider.early_uploads >= MAX_EARLY_UPLOADS or not ctx.guard.has_room(
        provider.name, provider.early_uploads
    ):
        return None
    return Planned(provider, fields.language, options)


async def _create_job(
    request: Request, ctx: GatewayContext, client: Caller, job_id: str, early: EarlyStart
) -> tuple[Job, TranscriptionRequest, ClaimedTask | None]:
    """The stored job; for a provider that answers in one call, also its submit
    task, claimed for this request to run at once (no hand-off to a worker and
    back: the answer is waited for anyway). ``early`` may start the provider's
    upload while the client's arrives."""
    if intake.media_type_of(request) != "multipart/form-data":
        raise _bad("send the request as multipart/form-data with a 'file' part", "file")
    with intake.discard_on_failure(ctx, job_id):
        reader, upload = await intake.read_form(
            request,
            ctx,
            job_id,
            fields=FORM_FIELDS,
            repeatable=_REPEATABLE,
            max_parts=_MAX_PARTS,
            listener=early,
        )
        if upload is None:
            raise _bad("you must provide a 'file' field", "file")
        asked = parse_form(reader.fields, reader.lists)
        provider = _provider(ctx, asked)
        fields = job_fields(asked, provider)
        if provider.capabilities.synchronous and ctx.task_runner is not None:
            job, task = await intake.store_job_to_run_now(
                ctx, client, job_id, fields, upload, provider
            )
            return job, asked, task
        job = await intake.store_job(ctx, client, job_id, fields, upload, None)
    return job, asked, None


async def _load(ctx: GatewayContext, client: Caller, job_id: str) -> Job | None:
    async with ctx.autocommit_sessions() as session:
        return await repository.get_for_client(session, client.id, job_id)


async def wait_until_terminal(
    ctx: GatewayContext, request: Request, client: Caller, job_id: str, max_seconds: float
) -> Job | None:
    """The job once terminal; ``None`` if it is gone, or the client left. As
    ``GET /jobs/{id}?wait=`` does, but the wake-up is listened for before each
    look, so a change between the look and the wait is not missed."""
    deadline = time.monotonic() + max_seconds
    while True:
        remaining = deadline - time.monotonic()
        wake = asyncio.create_task(
            ctx.hub.wait_for_job(job_id, max(0.0, min(remaining, _WAIT_RECHECK_SECONDS)))
        )
        try:
            await asyncio.sleep(0)  # the waiter is registered
            job = await _load(ctx, client, job_id)
            if job is None or service.is_terminal(job.status) or remaining <= 0:
                return job
            if await request.is_disconnected():
                log.info("client left while waiting for %s; the job goes on", job_id)
                return None
            await wake
        finally:
            wake.cancel()


def _failure(job: Job) -> OpenAIError:
    """A failed or canceled job as OpenAI would answer: its code and message, no detail."""
    if job.status == JobStatus.canceled:
        return OpenAIError(
            409, f"the job {job.id} was canceled", code="job_canceled", headers=NO_RETRY
        )
    error = job.error or {}
    code = str(error.get("code") or "job_failed")
    message = f"{error.get('message') or 'the job failed'} (job {job.id})"
    # The SDK sends a request again after a 5xx: only worth it when the job says so.
    headers = {} if error.get("retryable") else NO_RETRY
    if code in _INPUT_ERRORS:
        status, param = _INPUT_ERRORS[code]
        return OpenAIError(status, message, param=param, code=code, headers=headers)
    status = 500 if code == "internal" else 502
    return OpenAIError(status, message, type=SERVER_ERROR, code=code, headers=headers)


async def _transcript(ctx: GatewayContext, job: Job) -> Transcript:
    async with ctx.autocommit_sessions() as session:
        result = await repository.get_result(session, job.id)
    if result is None:  # deleted in the meantime
        raise OpenAIError(404, f"the job {job.id} was deleted", code="job_not_found")
    return Transcript.model_validate(result.transcript)


# --- the OpenAPI description ---


class TranscriptionJson(BaseModel):
    """``response_format=json`` (the default)."""

    text: str


class TranscriptionWordOut(BaseModel):
    word: str
    start: float | None
    end: float | None


class TranscriptionSegmentOut(BaseModel):
    id: int
    seek: int
    start: float | None
    end: float | None
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float | None
    compression_ratio: float | None
    no_speech_prob: float | None


class TranscriptionVerboseJson(BaseModel):
    """``response_format=verbose_json``: ``words`` when asked for, ``segments`` when
    asked for or when no ``timestamp_granularities[]`` is given."""

    task: Literal["transcribe"]
    language: str | None
    duration: float | None
    text: str
    segments: list[TranscriptionSegmentOut] | None = None
    words: list[TranscriptionWordOut] | None = None


TRANSCRIPTION_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file", "model"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "The audio (wav, mp3, flac, ogg, webm, mp4/m4a, aiff, amr)",
        },
        "model": {
            "type": "string",
            "description": "A provider (`local`), or `provider/model`: the part after the first "
            "slash is the provider's `model` option (`openai/whisper-1`)",
            "examples": ["local", "openai/whisper-1", "aimlapi/#g1_nova-2-general"],
        },
        "language": {"type": "string", "description": "ISO-639-1, e.g. `en`"},
        "prompt": {
            "type": "string",
            "description": "Passed as the provider's `prompt` option where it has one",
        },
        "response_format": {
            "type": "string",
            "enum": list(RESPONSE_FORMATS),
            "default": "json",
        },
        "timestamp_granularities[]": {
            "type": "array",
            "items": {"type": "string", "enum": list(GRANULARITIES)},
            "description": "For verbose_json: `word`, `segment` (the default) or both",
        },
        "temperature": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Passed as the provider's `temperature` option where it has one",
        },
        "include[]": {
            "type": "array",
            "items": {"type": "string", "enum": list(_INCLUDABLE)},
            "description": "Taken as OpenAI's SDKs send it; no provider's transcript has logprobs",
        },
        "chunking_strategy": {
            "type": "string",
            "description": "Taken as OpenAI's SDKs send it; the provider chunks as it does",
        },
    },
}


def _error_doc(description: str) -> dict[str, Any]:
    return {"description": description, "model": OpenAIErrorBody}


@router.post(
    "/audio/transcriptions",
    operation_id="create_openai_transcription",
    summary="Transcribe audio, as OpenAI's API does",
    description="Runs a job with the provider `model` names and answers once it is done. "
    'Errors are OpenAI\'s `{"error": {"message", "type", "param", "code"}}`.',
    response_model=TranscriptionJson | TranscriptionVerboseJson,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": TRANSCRIPTION_FORM,
                    "encoding": {"file": {"contentType": "audio/*"}},
                }
            },
        }
    },
    responses={
        200: {
            "description": "The transcript: JSON for json and verbose_json, plain text "
            "for text, srt and vtt",
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "headers": {
                "x-job-id": {
                    "description": "The job that made the transcript (see `GET /jobs/{job_id}`)",
                    "schema": {"type": "string"},
                }
            },
        },
        400: _error_doc("Invalid parameters, or a file that is not audio the provider takes"),
        401: _error_doc("Missing or invalid API key"),
        404: _error_doc("The model names no provider enabled on this gateway"),
        409: _error_doc("The job was canceled while the request waited"),
        413: _error_doc("The file is over the upload limit"),
        429: _error_doc(
            "Over this API key's rate limit (requests per second, or jobs queued or "
            "processing): `Retry-After` says when to try again"
        ),
        500: _error_doc("The job failed inside the gateway"),
        502: _error_doc("The job failed at the provider (the job's error code and message)"),
        503: _error_doc("The database is unavailable"),
        504: _error_doc("The job is still running after the longest wait; follow it at /jobs"),
    },
)
async def create_transcription(request: Request, ctx: Ctx, client: CurrentClient) -> Response:
    await limits.check_jobs_in_flight(ctx, client.id)  # before the upload is read
    job_id = new_id("job")
    early = EarlyStart(job_id, intake.content_length(request), partial(_planned, ctx))
    try:
        job, asked, task = await _create_job(request, ctx, client, job_id, early)
        if task is not None and ctx.task_runner is not None:
            await ctx.task_runner.execute(task)
            held = task.held
            if isinstance(held, HeldSubmit) and held.completed and held.transcript:
                # Completed by this request: answered from what it holds, no reads.
                return _answer(job.id, held.transcript, asked, held.completed.language)
    finally:
        early.abandon()
    done = await wait_until_terminal(ctx, request, client, job.id, MAX_WAIT_SECONDS)
    if done is None:
        # Gone (deleted) or nobody listening any more: the answer is not read.
        raise OpenAIError(404, f"the job {job.id} is gone", code="job_not_found")
    if not service.is_terminal(done.status):
        raise OpenAIError(
            504,
            f"the transcription is still running after {MAX_WAIT_SECONDS:.0f} seconds: "
            f"follow it with GET /jobs/{job.id}",
            type=SERVER_ERROR,
            code="timeout",
            headers=NO_RETRY,
        )
    if done.status != JobStatus.completed:
        raise _failure(done)
    return _answer(job.id, await _transcript(ctx, done), asked, done.language)


def _answer(
    job_id: str, transcript: Transcript, asked: TranscriptionRequest, language: str | None
) -> Response:
    try:
        body, media_type = render(transcript, asked.response_format, asked.granularities, language)
    except TranscriptHasNoTimings as exc:
        raise OpenAIError(
            400,
            f"{exc} (job {job_id}: GET /jobs/{job_id}/transcript has it)",
            param="response_format",
            code="unsupported_value",
        ) from None
    headers = {"x-job-id": job_id}
    if isinstance(body, dict):
        return JSONResponse(body, media_type=media_type, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
