"""FastAPI dependencies: the gateway context, the request's session, the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app import clients
from app.context import GatewayContext
from app.errors import Unauthorized
from app.models import Client


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


async def current_client(
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Client:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send your API key as 'Authorization: Bearer <api_key>'")
    client = await clients.authenticate(session, credentials.credentials)
    if client is None:
        raise Unauthorized("the API key is not valid or has been revoked")
    return client


CurrentClient = Annotated[Client, Depends(current_client)]
