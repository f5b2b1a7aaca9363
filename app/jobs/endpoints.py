"""The /jobs endpoints. Thin: parsing and answers here, decisions in intake/service."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from app.deps import Caller, Ctx, CurrentClient, Session
from app.errors import Conflict, InvalidRequest, NotFound, problem_response_doc
from app.events import commit
from app.ids import looks_like_id
from app.jobs import idempotency, intake, repository, service
from app.jobs.repository import InvalidCursor, JobFilter
from app.jobs.schemas import JobOut, JobPage, JobStatus
from app.models import Job
from app.storage import artifact_key, job_prefix
from app.transcripts import RENDERERS, Transcript, TranscriptHasNoTimings

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_WAIT_SECONDS = 60
_WAIT_RECHECK_SECONDS = 5.0  # a lost wake-up costs at most this much

_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_response_doc("Missing or invalid API key", headers=_WWW_AUTHENTICATE),
    429: problem_response_doc(
        "Over this API key's rate limit (requests per second; for POST /jobs also jobs "
        "queued or processing): try again after `Retry-After` seconds",
        headers=_RETRY_AFTER,
    ),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: problem_response_doc("No such job for this client")
}

# The multipart form of POST /jobs (read by app.jobs.form, not by FastAPI, so
# described here); app.openapi_doc adds it to the document's components.
CREATE_JOB_FORM: dict[str, Any] = {
    "title": "CreateJobForm",
    "description": "`POST /jobs` as multipart/form-data: the audio as `file`, or a `source_url`.",
    "type": "object",
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "The audio (wav, mp3, flac, ogg, webm, mp4/m4a, aiff, amr)",
        },
        "source_url": {
            "type": "string",
            "maxLength": 2048,
            "description": "Instead of `file`: where the gateway fetches the audio",
        },
        "provider": {"type": "string", "default": "local", "maxLength": 40, "examples": ["local"]},
        "language": {
            "type": "string",
            "description": "A BCP 47 language tag; unset: the provider detects it",
            "examples": ["en"],
        },
        "options": {
            "type": "string",
            "description": "A JSON object of provider options, as `GET /providers` describes them",
            "examples": ["{}"],
        },
        "metadata": {
            "type": "string",
            "description": "A JSON object (at most 50 keys), returned with the job as given",
            "examples": ['{"order": "42"}'],
        },
        "callback_url": {
            "type": "string",
            "maxLength": 2048,
            "description": "Where the gateway POSTs the signed `job.*` webhook",
            "examples": ["https://example.com/hooks/stt"],
        },
        "fallback_providers": {
            "type": "string",
            "description": "Providers to try next, in order, when `provider` keeps failing "
            "(retryable errors past its deadline, or its circuit is open): a JSON array or "
            "a comma-separated list",
            "examples": ['["daglo", "aimlapi"]', "daglo,aimlapi"],
        },
    },
    "additionalProperties": False,
    "examples": [{"provider": "local", "language": "en", "metadata": '{"order": "42"}'}],
}

_CREATE_BODY = {
    "description": "The audio and the job's fields: a multipart form, or JSON with a "
    "`source_url`. A body is required (without one the answer is a 415).",
    # Not `required: true`: openapi-python-client 0.29 then writes `body: … | Unset` without
    # importing Unset, for a body with two content types (its issue 1451); the generated
    # signature is the same either way.
    "required": False,
    "content": {
        "multipart/form-data": {
            "schema": {"$ref": "#/components/schemas/CreateJobForm"},
            "encoding": {"file": {"contentType": "audio/*"}},
        },
        "application/json": {"schema": {"$ref": "#/components/schemas/CreateJobFromUrl"}},
    },
}

_TRANSCRIPT_EXAMPLE = {
    "text": "hello world",
    "language": "en",
    "duration": 1.32,
    "provider": "local",
    "segments": [
        {
            "start": 0.06,
            "end": 1.02,
            "text": "hello world",
            "channel": None,
            "speaker": None,
            "words": [
                {"start": 0.06, "end": 0.5, "text": "hello", "confidence": 0.93},
                {"start": 0.52, "end": 1.02, "text": "world", "confidence": 0.88},
            ],
        }
    ],
}


class TranscriptFormat(StrEnum):
    json = "json"
    text = "text"
    srt = "srt"
    vtt = "vtt"


async def own_job(session: Session, client: Caller, job_id: str) -> Job:
    job = None
    if looks_like_id(job_id):  # anything else cannot exist: no query needed
        job = await repository.get_for_client(session, client.id, job_id)
    if job is None:
        raise NotFound(f"no job {job_id[:60]!r}")
    return job


@router.post(
    "",
    status_code=202,
    operation_id="create_job",
    summary="Create a transcription job",
    response_model=JobOut,
    openapi_extra={"requestBody": _CREATE_BODY},
    responses={
        202: {
            "description": "The job, accepted (or, for an `Idempotency-Key` used before, "
            "the job that key made, as it is now)",
            "headers": {
                "Location": {"description": "The job's URL", "schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "`true` when the job was made by an earlier request with "
                    "the same `Idempotency-Key`",
                    "schema": {"type": "string"},
                },
            },
        },
        **AUTH_ERRORS,
        409: problem_response_doc(
            "A request with the same `Idempotency-Key` is still in progress",
            headers={"Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}},
        ),
        413: problem_response_doc("The file is over the upload limit"),
        415: problem_response_doc("Not audio, or a format the provider cannot take"),
        422: problem_response_doc(
            "Invalid fields or provider options, or an `Idempotency-Key` that is invalid "
            "or was used with a different request"
        ),
    },
)
async def create_job(
    request: Request,
    ctx: Ctx,
    client: CurrentClient,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="1 to 255 printable ASCII characters. A repeat with the same key and "
            "the same request within 24 hours answers the same job and stores nothing; "
            "with a different request it is a 422",
            json_schema_extra=idempotency.document_key,
        ),
    ] = None,
) -> JSONResponse:
    job, replayed = await intake.create_job(request, ctx, client, idempotency_key)
    headers = {"Location": f"/jobs/{job.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(JobOut.of(job).model_dump(mode="json"), status_code=202, headers=headers)


@router.get(
    "/{job_id}",
    operation_id="get_job",
    summary="Get a job, optionally waiting until it is done",
    response_model=JobOut,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
async def get_job(
    job_id: str,
    ctx: Ctx,
    session: Session,
    client: CurrentClient,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            allow_inf_nan=False,  # else NaN reads as "should be <= 60"
            description="Seconds to hold the answer until the job is terminal",
        ),
    ] = 0,
) -> JobOut:
    job = await own_job(session, client, job_id)
    deadline = time.monotonic() + wait
    while not service.is_terminal(job.status):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await session.rollback()  # give the connection back while we wait
        await ctx.hub.wait_for_job(job_id, min(remaining, _WAIT_RECHECK_SECONDS))
        job = await own_job(session, client, job_id)
    return JobOut.of(job)


def _in_utc(name: str, value: datetime | None) -> datetime | None:
    """A time filter as UTC, as the database compares it: it needs a timezone, and
    its UTC time must exist (9999-12-31T23:00-01:00 is past the last datetime)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidRequest(
            f"{name} needs a timezone, e.g. 2026-11-21T06:00:00Z",
            errors=[{"field": name, "message": "no timezone", "type": "timezone_aware"}],
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(
            f"{name} is out of range once in UTC: {value.isoformat()}",
            errors=[{"field": name, "message": "out of range", "type": "datetime_range"}],
        ) from None


@router.get(
    "",
    operation_id="list_jobs",
    summary="List jobs, newest first",
    response_model=JobPage,
    responses={**AUTH_ERRORS, 422: problem_response_doc("Invalid filter or cursor")},
)
async def list_jobs(
    session: Session,
    client: CurrentClient,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: JobStatus | None = None,
    provider: Annotated[str | None, Query(max_length=40)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> JobPage:
    filters = JobFilter(
        status=status.value if status else None,
        provider=provider,
        created_after=_in_utc("created_after", created_after),
        created_before=_in_utc("created_before", created_before),
    )
    try:
        jobs, next_cursor = await repository.list_for_client(
            session, client.id, filters, limit, cursor
        )
    except InvalidCursor as exc:
        raise InvalidRequest(
            str(exc), errors=[{"field": "cursor", "message": str(exc), "type": "cursor"}]
        ) from None
    return JobPage(data=[JobOut.of(job) for job in jobs], next_cursor=next_cursor)


@router.post(
    "/{job_id}/cancel",
    operation_id="cancel_job",
    summary="Cancel a job that is not finished",
    response_model=JobOut,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        409: problem_response_doc("The job is already terminal"),
    },
)
async def cancel_job(job_id: str, ctx: Ctx, session: Session, client: CurrentClient) -> JobOut:
    job = await own_job(session, client, job_id)
    provider = ctx.providers.get(job.provider)
    at_vendor = bool(provider and provider.capabilities.cancel and job.provider_job_id)
    if not await service.cancel(session, job.id, at_vendor=at_vendor):
        raise Conflict(f"job {job_id!r} is {job.status} and cannot be canceled")
    await commit(session, ctx.hub)
    return JobOut.of(await own_job(session, client, job_id))


@router.delete(
    "/{job_id}",
    status_code=204,
    operation_id="delete_job",
    summary="Delete a job and everything stored for it",
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
async def delete_job(job_id: str, ctx: Ctx, session: Session, client: CurrentClient) -> Response:
    job = await own_job(session, client, job_id)
    await service.cancel(session, job.id)  # wakes anyone waiting on it
    await repository.delete_job(session, job.id)
    await commit(session, ctx.hub)
    ctx.storage.delete_prefix(job_prefix(job.id))
    return Response(status_code=204)


@router.get(
    "/{job_id}/transcript",
    operation_id="get_transcript",
    summary="Get the transcript of a completed job",
    response_model=Transcript,
    responses={
        200: {
            "description": "The transcript, as `format` asks",
            "content": {
                "application/json": {"example": _TRANSCRIPT_EXAMPLE},
                "text/plain": {"schema": {"type": "string"}},
                "application/x-subrip": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}},
            },
        },
        **AUTH_ERRORS,
        **NOT_FOUND,
        409: problem_response_doc("The job is not completed"),
        422: problem_response_doc("The transcript cannot be rendered in that format"),
    },
)
async def get_transcript(
    job_id: str,
    session: Session,
    client: CurrentClient,
    format: Annotated[
        TranscriptFormat, Query(description="`json` (the default), `text`, `srt` or `vtt`")
    ] = TranscriptFormat.json,
) -> Response:
    job = await own_job(session, client, job_id)
    result = (
        await repository.get_result(session, job.id) if job.status == JobStatus.completed else None
    )
    if result is None:
        if service.is_terminal(job.status):  # failed or canceled: none is coming
            raise Conflict(f"job {job_id!r} is {job.status}: it has no transcript, nor will it")
        raise Conflict(
            f"job {job_id!r} is {job.status}; its transcript exists once it is completed"
        )
    transcript = Transcript.model_validate(result.transcript)
    if format == TranscriptFormat.json:
        return JSONResponse(transcript.model_dump(mode="json"))
    render, media_type = RENDERERS[format]
    try:
        return Response(render(transcript), media_type=media_type)
    except TranscriptHasNoTimings as exc:
        raise InvalidRequest(
            str(exc), errors=[{"field": "format", "message": str(exc), "type": "format"}]
        ) from None


@router.get(
    "/{job_id}/artifacts/{name}",
    operation_id="get_artifact",
    summary="Download a stored vendor output",
    response_class=FileResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        **AUTH_ERRORS,
        **NOT_FOUND,
    },
)
async def get_artifact(
    job_id: str, name: str, ctx: Ctx, session: Session, client: CurrentClient
) -> FileResponse:
    job = await own_job(session, client, job_id)
    listed = next((a for a in job.artifacts if a["name"] == name), None)
    if listed is None:
        raise NotFound(f"job {job_id!r} has no artifact {name!r}")
    path = ctx.storage.path(artifact_key(job.id, name))
    if not path.is_file():
        raise NotFound(f"artifact {name!r} of job {job_id!r} is no longer stored")
    return FileResponse(path, media_type=listed["content_type"], filename=name)
