"""FastAPI dependencies: the gateway context, the request's session, the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app import clients, limits
from app.clients import Caller
from app.config import Settings
from app.context import GatewayContext
from app.errors import Unauthorized


def get_context(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.app.state.ctx
    return ctx


Ctx = Annotated[GatewayContext, Depends(get_context)]


async def get_session(ctx: Ctx) -> AsyncIterator[AsyncSession]:
    """The request's session. Endpoints that write commit it themselves, once."""
    async with ctx.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="An API key from `stt-gateway keys create`")


async def authenticated_client(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Who is calling, with no rate limit taken (for /metrics)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send your API key as 'Authorization: Bearer <api_key>'")
    # Its own short session: an upload may take minutes to arrive, and must not
    # hold a pooled connection while it does.
    async with ctx.autocommit_sessions() as session:
        caller = await clients.authenticate(session, credentials.credentials)
    if caller is None:
        raise Unauthorized("the API key is not valid or has been revoked")
    return caller


def _request_buckets(request: Request, settings: Settings) -> limits.TokenBuckets | None:
    """This app's request-rate buckets, made on first use; in memory, per process."""
    state = request.app.state
    if not hasattr(state, "request_buckets"):
        state.request_buckets = limits.request_buckets(settings)
    buckets: limits.TokenBuckets | None = state.request_buckets
    return buckets


async def current_client(
    request: Request, ctx: Ctx, caller: Annotated[Caller, Depends(authenticated_client)]
) -> Caller:
    """The caller, each request counted against its RATE_LIMIT_PER_SECOND (a 429 past it)."""
    limits.check_request_rate(_request_buckets(request, ctx.settings), caller.id)
    return caller


CurrentClient = Annotated[Caller, Depends(current_client)]
# Authenticated but never rate limited: Prometheus scrapes must not be refused.
UnmeteredClient = Annotated[Caller, Depends(authenticated_client)]
