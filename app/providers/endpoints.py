"""GET /providers: what this gateway can do, and each provider's options schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.deps import Ctx, CurrentClient
from app.jobs.endpoints import AUTH_ERRORS
from app.providers.base import Capabilities

router = APIRouter(tags=["providers"])


class ProviderOut(BaseModel):
    name: str = Field(examples=["local"])
    capabilities: Capabilities
    options_schema: dict[str, Any] = Field(
        description="The JSON Schema of the `options` a job for this provider takes"
    )


class ProviderList(BaseModel):
    data: list[ProviderOut]


@router.get(
    "/providers",
    operation_id="list_providers",
    summary="List the enabled providers",
    response_model=ProviderList,
    responses=AUTH_ERRORS,
)
async def list_providers(ctx: Ctx, _client: CurrentClient) -> ProviderList:
    return ProviderList(
        data=[
            ProviderOut(
                name=name,
                capabilities=provider.capabilities,
                options_schema=provider.options_model.model_json_schema(),
            )
            for name, provider in sorted(ctx.providers.enabled().items())
        ]
    )
