"""Turns a create-job request (a streamed form or a JSON body) into a new job.

Validation that needs the provider (options, audio format, settings) happens
here, before anything is written to the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

from app import limits, logs
from app.audio.sniff import MEDIA_TYPES
from app.context import GatewayContext
from app.db import utcnow
from app.deps import Caller
from app.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType, field_errors
from app.events import commit
from app.ids import new_id
from app.jobs import form_fields, idempotency, ledger, repository, service
from app.jobs.form import (
    FORM_FIELDS,
    DigestSink,
    FileListener,
    FilePart,
    JobFormReader,
    until_idle,
)
from app.jobs.held import HeldSubmit
from app.jobs.repository import Lease
from app.jobs.schemas import CreateJobFromUrl, JobFields, JobStatus
from app.metrics import job_created
from app.models import Job
from app.providers.base import PermanentProviderError, Provider, RefusedRequest
from app.queue.repository import ClaimedTask, new_claim_token
from app.storage import audio_key, job_prefix
from app.urls import UrlRefused, check_url_target

_MAX_JSON_BODY = 1024 * 1024


@dataclass(frozen=True)
class StoredUpload:
    part: FilePart
    size: int
    sha256: str


_FORM_OVERHEAD = 1024 * 1024  # room for the form's other fields and boundaries


def media_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def create_job(
    request: Request, ctx: GatewayContext, client: Caller, idempotency_key: str | None = None
) -> tuple[Job, bool]:
    """The new job; or, for an Idempotency-Key used before, its job and True (a replay)."""
    key = idempotency.checked_key(idempotency_key)
    if key is None:
        await limits.check_jobs_in_flight(ctx, client.id)  # before the upload is read
        return await _new_job(request, ctx, client, None), False
    claim = await idempotency.claim(ctx, client.id, key)
    if claim is None:  # used before: the body is only fingerprinted, nothing is stored
        fields, upload, source_url = await _read_body(request, ctx, None)
        request_hash = idempotency.fingerprint(fields, upload, source_url)
        job = await idempotency.replay(ctx, client.id, key, request_hash)
        logs.job_id.set(job.id)
        return job, True
    async with idempotency.held(ctx, claim):
        # Only a new job counts against the limit: a replay (above) makes none.
        await limits.check_jobs_in_flight(ctx, client.id)
        return await _new_job(request, ctx, client, claim), False


async def _new_job(
    request: Request, ctx: GatewayContext, client: Caller, claim: idempotency.Claim | None
) -> Job:
    job_id = new_id("job")
    logs.job_id.set(job_id)  # on every log line of this request from here on
    with discard_on_failure(ctx, job_id):
        fields, upload, source_url = await _read_body(request, ctx, job_id)
        return await store_job(ctx, client, job_id, fields, upload, source_url, claim=claim)


async def _read_body(
    request: Request, ctx: GatewayContext, job_id: str | None
) -> tuple[JobFields, StoredUpload | None, str | None]:
    """The job's fields and audio; without a ``job_id`` the file is hashed, not stored."""
    media_type = media_type_of(request)
    if media_type == "multipart/form-data":
        return await _read_form(request, ctx, job_id)
    if media_type == "application/json":
        body = await _read_json(request, ctx.settings.upload_idle_timeout_seconds)
        return body, None, body.source_url
    raise UnsupportedMediaType(
        "send multipart/form-data (with a file or source_url) or application/json (with source_url)"
    )


@contextlib.contextmanager
def discard_on_failure(ctx: GatewayContext, job_id: str) -> Iterator[None]:
    """Whatever is refused or fails inside, no stored byte outlives the request."""
    try:
        yield
    except BaseException:
        ctx.storage.delete_prefix(job_prefix(job_id))
        raise


async def store_job(
    ctx: GatewayContext,
    client: Caller,
    job_id: str,
    fields: JobFields,
    upload: StoredUpload | None,
    source_url: str | None,
    *,
    claim: idempotency.Claim | None = None,
) -> Job:
    """Validate against the provider, then insert the job with its first task
    (and bind the request's Idempotency-Key to it, in the same transaction)."""
    logs.job_id.set(job_id)
    job = await _validated_job(ctx, client, job_id, fields, upload, source_url)
    # PostgreSQL writes both rows in one statement; binding a key is a second one.
    async with ctx.sessions_for(one_statement=claim is None)() as session:
        await repository.insert_with_first_task(session, job, service.SUBMIT_TASK)
        if claim is not None:
            request_hash = idempotency.fingerprint(fields, upload, source_url)
            await idempotency.bind(session, claim, request_hash, job.id)
        await commit(session, ctx.hub)
    job_created(job.provider)  # committed: the job exists
    return job


async def store_job_to_run_now(
    ctx: GatewayContext,
    client: Caller,
    job_id: str,
    fields: JobFields,
    upload: StoredUpload,
    provider: Provider,
) -> tuple[Job, ClaimedTask]:
    """As store_job, for a provider that answers in one call, whose submit the
    caller runs at once: the job is stored already ``processing``, its submit
    task leased as a worker's claim would be and its ledger row open, all in
    one statement. If this process dies the lease runs out and a worker finds
    the open row: the submit was cut off, as any other."""
    logs.job_id.set(job_id)
    job = await _validated_job(ctx, client, job_id, fields, upload, None)
    # As the submit step shows a synchronous provider's job: in hand, the engine
    # working. No provider_status: such a vendor has no status word to keep.
    job.status, job.provider_job_id = JobStatus.processing.value, job_id
    lease = Lease(new_claim_token(), utcnow() + timedelta(seconds=ctx.settings.task_lease_seconds))
    submission = None
    async with ctx.sessions_for(one_statement=True)() as session:
        if ledger.is_kept_for(provider):
            task_id, submission = await repository.insert_submitting(
                session, job, service.SUBMIT_TASK, lease
            )
        else:
            task_id = await repository.insert_with_first_task(
                session, job, service.SUBMIT_TASK, lease
            )
        await commit(session, ctx.hub)
    job_created(job.provider)
    held = HeldSubmit(job, submission)
    task = ClaimedTask(
        task_id, service.SUBMIT_TASK, job.id, 1, lease.token, None, logs.request_id.get(), held
    )
    return job, task


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


async def read_form(
    request: Request,
    ctx: GatewayContext,
    job_id: str | None,
    *,
    fields: frozenset[str] = FORM_FIELDS,
    repeatable: frozenset[str] = frozenset(),
    max_parts: int | None = None,
    listener: FileListener | None = None,
) -> tuple[JobFormReader, StoredUpload | None]:
    """Stream a multipart body: the file to the job's audio key, the other fields kept.

    Without a ``job_id`` the file is only counted and hashed (a replayed request).
    ``listener`` is told of the file's bytes as they arrive.
    """
    limit = ctx.settings.max_upload_bytes
    declared = content_length(request)
    if declared is not None and declared > limit + _FORM_OVERHEAD:
        raise PayloadTooLarge(f"the request is larger than the upload limit of {limit} bytes")
    writer = ctx.storage.writer(audio_key(job_id)) if job_id else DigestSink()
    try:
        reader = JobFormReader(
            request.headers["content-type"],
            writer,
            limit,
            fields=fields,
            repeatable=repeatable,
            max_parts=max_parts,
            idle_timeout=ctx.settings.upload_idle_timeout_seconds,
            listener=listener,
        )
        await reader.read(request.stream())
        upload = None
        if reader.file is not None:
            await writer.commit()
            upload = StoredUpload(reader.file, writer.size, writer.sha256)
        else:
            writer.abort()
    except BaseException:
        await writer.discard()  # the 4xx goes out with nothing of the file left on disk
        raise
    return reader, upload


async def _read_form(
    request: Request, ctx: GatewayContext, job_id: str | None
) -> tuple[JobFields, StoredUpload | None, str | None]:
    reader, upload = await read_form(request, ctx, job_id)
    # An empty field is one not given, as an HTML form sends an unset input: the
    # same rule for every field (an empty provider is the default one, an empty
    # source_url beside a file is no source_url).
    raw = {name: value for name, value in reader.fields.items() if value.strip()}
    if upload is None and "source_url" not in raw:
        raise InvalidRequest(
            "give the audio as a 'file' part or a 'source_url' field",
            errors=[
                {"field": "file", "message": "file or source_url is required", "type": "missing"}
            ],
        )
    if upload is not None and "source_url" in raw:
        raise InvalidRequest(
            "give either a 'file' or a 'source_url', not both",
            errors=[
                {"field": name, "message": "give file or source_url", "type": "exclusive"}
                for name in ("file", "source_url")
            ],
        )
    values: dict[str, Any] = {k: v for k, v in raw.items() if k != "source_url"}
    for name in ("options", "metadata"):
        if name in values:
            values[name] = form_fields.json_object(name, values[name])
    if "fallback_providers" in values:
        values["fallback_providers"] = form_fields.name_list(values["fallback_providers"])
    try:
        fields = JobFields.model_validate(values)
    except ValidationError as exc:
        raise _invalid(exc) from None
    return fields, upload, raw.get("source_url")


async def _read_json(request: Request, idle_timeout: float) -> CreateJobFromUrl:
    declared = content_length(request)
    if declared is not None and declared > _MAX_JSON_BODY:
        raise PayloadTooLarge("a JSON job request is limited to 1 MiB")
    body = bytearray()
    chunks = until_idle(request.stream(), idle_timeout, "the request body")
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            body.extend(chunk)
            if len(body) > _MAX_JSON_BODY:
                raise PayloadTooLarge("a JSON job request is limited to 1 MiB")
    try:
        return CreateJobFromUrl.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> InvalidRequest:
    errors = field_errors(list(exc.errors()))
    detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
    return InvalidRequest(detail, errors=errors)


def _provider(ctx: GatewayContext, name: str, field: str = "provider") -> Provider:
    provider = ctx.providers.get(name)
    if provider is None:
        reason = ctx.providers.why_unavailable(name)
        raise InvalidRequest(
            reason, errors=[{"field": field, "message": reason, "type": "provider"}]
        )
    return provider


async def _checked_url(ctx: GatewayContext, field: str, url: str) -> str:
    try:
        await check_url_target(url, allow_private=ctx.settings.allow_private_urls)
    except UrlRefused as exc:
        raise InvalidRequest(
            f"{field} {exc}", errors=[{"field": field, "message": str(exc), "type": "url"}]
        ) from None
    return url


async def _validated_job(
    ctx: GatewayContext,
    client: Caller,
    job_id: str,
    fields: JobFields,
    upload: StoredUpload | None,
    source_url: str | None,
) -> Job:
    provider = _provider(ctx, fields.provider)
    try:
        options = provider.options_model.model_validate(fields.options)
    except ValidationError as exc:
        errors = [
            {**e, "field": f"options.{e['field']}".rstrip(".")}
            for e in field_errors(list(exc.errors()))
        ]
        raise InvalidRequest(
            f"invalid options for provider {provider.name!r}: "
            + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        ) from None
    _check_takes(ctx, provider, fields.language, options, upload, "provider")
    if upload is not None:
        source: dict[str, Any] = {
            "type": "upload",
            "filename": upload.part.filename,
            # What the bytes are, not what the client declared (often octet-stream).
            "content_type": MEDIA_TYPES[upload.part.format],
            "size": upload.size,
            "sha256": upload.sha256,
        }
    else:
        assert source_url is not None
        source = {"type": "url", "url": await _checked_url(ctx, "source_url", source_url)}
    fallbacks = _checked_fallbacks(ctx, provider, fields, upload)
    callback_url = fields.callback_url
    if callback_url is not None:
        await _checked_url(ctx, "callback_url", callback_url)
    now = utcnow()
    return Job(
        id=job_id,
        client_id=client.id,
        provider=provider.name,
        status=JobStatus.queued.value,
        language=fields.language,
        options=options.model_dump(mode="json", exclude_unset=True),
        meta=fields.metadata,
        callback_url=callback_url,
        source=source,
        audio_key=audio_key(job_id) if upload else None,
        audio_format=upload.part.format if upload else None,
        artifacts=[],
        created_at=now,
        updated_at=now,
        completed_at=None,
        provider_job_id=None,
        provider_status=None,
        error=None,
        fallback_providers=fallbacks,
        provider_attempts=[],
        deadline_at=now + timedelta(seconds=ctx.settings.provider_deadline_seconds),
    )


def _checked_fallbacks(
    ctx: GatewayContext, primary: Provider, fields: JobFields, upload: StoredUpload | None
) -> list[str]:
    """Each fallback must be able to take this job as it is: enabled, the same
    language and audio; it runs with its default options (the job's options
    are the first provider's)."""
    names = fields.fallback_providers
    if len(set(names)) != len(names) or primary.name in names:
        raise InvalidRequest(
            "'fallback_providers' must not repeat a provider or name the job's own provider",
            errors=[{"field": "fallback_providers", "message": "repeated", "type": "value"}],
        )
    for name in names:
        fallback = _provider(ctx, name, "fallback_providers")
        defaults = fallback.options_model.model_validate({})  # a fallback runs with these
        _check_takes(ctx, fallback, fields.language, defaults, upload, "fallback provider")
    return list(names)


def _check_takes(
    ctx: GatewayContext,
    provider: Provider,
    language: str | None,
    options: BaseModel,
    upload: StoredUpload | None,
    role: str,
) -> None:
    """The provider can take this job: its language, its own rules on the request,
    and its audio as it comes (an upload in a format it reads, or a source_url)."""
    _check_language(provider, language)
    _check_job(provider, language, options, role)
    if upload is None:
        if not provider.capabilities.source_url:
            raise InvalidRequest(f"{role} {provider.name!r} takes uploads only, not source_url")
        return
    _check_format(provider, upload)
    _check_size(provider, upload, role)
    _check_duration(provider, upload, role)
    if not provider.capabilities.upload and not ctx.settings.public_base_url:
        raise InvalidRequest(
            f"{role} {provider.name!r} fetches audio by URL only: send a source_url, "
            "or set PUBLIC_BASE_URL on the gateway so the provider can fetch uploads"
        )


def _check_language(provider: Provider, language: str | None) -> None:
    accepted = provider.capabilities.languages
    if language is None or accepted is None:
        return
    wanted = {language.lower(), language.split("-")[0].lower()}
    if not wanted & {tag.lower() for tag in accepted}:
        offered = ", ".join(accepted) if accepted else "none (leave language out)"
        raise InvalidRequest(
            f"provider {provider.name!r} does not take language {language!r}; it takes: {offered}",
            errors=[{"field": "language", "message": "not offered", "type": "language"}],
        )


def _check_job(provider: Provider, language: str | None, options: BaseModel, role: str) -> None:
    check = getattr(provider, "check_job", None)
    if check is None:
        return
    try:
        check(language, options)
    except PermanentProviderError as exc:  # RefusedRequest names its field
        field = exc.field if isinstance(exc, RefusedRequest) else None
        raise InvalidRequest(
            f"{role} {provider.name!r}: {exc.message}",
            errors=[{"field": field, "message": "refused by the provider", "type": exc.code}]
            if field
            else None,
        ) from None


def _check_size(provider: Provider, upload: StoredUpload, role: str) -> None:
    limit = provider.capabilities.max_upload_bytes
    if limit is not None and upload.size > limit:
        raise PayloadTooLarge(
            f"{role} {provider.name!r} takes files of up to {limit} bytes; "
            f"this one has {upload.size}"
        )


def _check_duration(provider: Provider, upload: StoredUpload, role: str) -> None:
    limit = provider.capabilities.max_duration_seconds
    seconds = upload.part.seconds
    if limit is not None and seconds is not None and seconds > limit:
        raise PayloadTooLarge(
            f"{role} {provider.name!r} takes audio of up to {limit} seconds; "
            f"this one lasts {seconds:.0f}"
        )


def _check_format(provider: Provider, upload: StoredUpload) -> None:
    formats = provider.capabilities.formats
    if upload.part.format in formats:
        refuses = getattr(provider, "refuses_upload", None)
        if refuses is not None and (reason := refuses(upload.part.format, upload.part.head)):
            raise UnsupportedMediaType(
                f"provider {provider.name!r} cannot take this file: {reason}"
            )
        return
    hint = getattr(provider, "unsupported_format_hint", "")
    raise UnsupportedMediaType(
        f"provider {provider.name!r} does not take {upload.part.format} audio "
        f"(it takes: {', '.join(formats)}). {hint}".strip()
    )
