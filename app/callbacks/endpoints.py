"""Inbound vendor notifications and the media links vendors fetch.

A callback is only a signal: its body is never read as a result. It makes the
job's poll task due now, and the worker asks the vendor itself ("pull after
push"). A wrong, expired or forged link is a 404 and costs no vendor call.
Neither route needs an API key, and neither is in the public OpenAPI document.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import Ctx
from app.errors import NotFound
from app.events import commit
from app.ids import looks_like_id
from app.jobs import repository, service
from app.links import CALLBACK_PURPOSE, MEDIA_PURPOSE
from app.queue import repository as queue

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.post("/callbacks/{provider}/{job_id}")
async def vendor_callback(
    provider: str,
    job_id: str,
    ctx: Ctx,
    expires: str | None = Query(default=None, max_length=20),
    sig: str | None = Query(default=None, max_length=100),
) -> Response:
    if not looks_like_id(job_id) or not ctx.signer.verify(CALLBACK_PURPOSE, job_id, expires, sig):
        raise NotFound("no such callback")
    # Autocommit: a read and one UPDATE need no transaction around them.
    async with ctx.autocommit_sessions() as session:
        job = await repository.get(session, job_id)
        if job is None or job.provider != provider:
            raise NotFound("no such callback")
        if not service.is_terminal(job.status):
            # Duplicate and late callbacks land here too: at worst one extra poll.
            if await _poll_now(session, job_id):
                log.info("callback from %s for job %s: polling now", provider, job_id)
            await commit(session, ctx.hub)
    return Response(status_code=204)


async def _poll_now(session: AsyncSession, job_id: str) -> bool:
    """Make the job's poll due now. With none waiting (the submit's answer, or
    a poll, is still on its way), mark the job so that the next poll scheduled
    is due at once, then look again: that poll may have been written between."""
    if await queue.make_due_now(session, job_id, service.POLL_TASK):
        return True
    await repository.note_vendor_signal(session, job_id)
    return await queue.make_due_now(session, job_id, service.POLL_TASK)


@router.get("/media/{job_id}")
async def media(
    job_id: str,
    ctx: Ctx,
    expires: str | None = Query(default=None, max_length=20),
    sig: str | None = Query(default=None, max_length=100),
) -> FileResponse:
    if not looks_like_id(job_id) or not ctx.signer.verify(MEDIA_PURPOSE, job_id, expires, sig):
        raise NotFound("no such media")
    async with ctx.autocommit_sessions() as session:
        job = await repository.get(session, job_id)
    if job is None or job.audio_key is None or not ctx.storage.exists(job.audio_key):
        raise NotFound("no such media")
    source = job.source
    return FileResponse(
        ctx.storage.path(job.audio_key),
        media_type=source.get("content_type") or "application/octet-stream",
        filename=source.get("filename") or f"{job_id}.{job.audio_format or 'bin'}",
    )
