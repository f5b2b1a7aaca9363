"""The /jobs endpoints. Thin: parsing and answers here, decisions in intake/service."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from app.deps import Caller, Ctx, CurrentClient, Session
from app.errors import PROBLEM_MEDIA_TYPE, Conflict, InvalidRequest, NotFound, Problem
from app.events import commit
from app.ids import looks_like_id
from app.jobs import intake, repository, service
from app.jobs.repository import InvalidCursor, JobFilter
from app.jobs.schemas import CreateJobFromUrl, JobOut, JobPage, JobStatus
from app.models import Job
from app.storage import artifact_key, job_prefix
from app.transcripts import RENDERERS, Transcript, TranscriptHasNoTimings

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_WAIT_SECONDS = 60
_WAIT_RECHECK_SECONDS = 5.0  # a lost wake-up costs at most this much


def problem_response_doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": Problem.model_json_schema()}},
    }


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem_response_doc("Missing or invalid API key")
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: problem_response_doc("No such job for this client")
}

_CREATE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "The audio"},
                    "source_url": {"type": "string", "description": "Or: where to fetch the audio"},
                    "provider": {"type": "string", "default": "local"},
                    "language": {"type": "string", "examples": ["en"]},
                    "options": {
                        "type": "string",
                        "description": "A JSON object of provider options",
                    },
                    "metadata": {
                        "type": "string",
                        "description": "A JSON object, returned as given",
                    },
                    "callback_url": {"type": "string"},
                },
            },
            "encoding": {"file": {"contentType": "audio/*"}},
        },
        "application/json": {"schema": CreateJobFromUrl.model_json_schema()},
    },
}


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
        **AUTH_ERRORS,
        413: problem_response_doc("The file is over the upload limit"),
        415: problem_response_doc("Not audio, or a format the provider cannot take"),
        422: problem_response_doc("Invalid fields or provider options"),
    },
)
async def create_job(request: Request, ctx: Ctx, client: CurrentClient) -> JSONResponse:
    job = await intake.create_job(request, ctx, client)
    return JSONResponse(
        JobOut.of(job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/jobs/{job.id}"},
    )


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
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"{name} needs a timezone, e.g. 2026-11-21T06:00:00Z")
    filters = JobFilter(
        status=status.value if status else None,
        provider=provider,
        created_after=created_after,
        created_before=created_before,
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
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/x-subrip": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}},
            }
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
    format: Literal["json", "text", "srt", "vtt"] = "json",
) -> Response:
    job = await own_job(session, client, job_id)
    result = (
        await repository.get_result(session, job.id) if job.status == JobStatus.completed else None
    )
    if result is None:
        raise Conflict(
            f"job {job_id!r} is {job.status}; its transcript exists once it is completed"
        )
    transcript = Transcript.model_validate(result.transcript)
    if format == "json":
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
