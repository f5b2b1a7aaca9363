"""GET /providers: what this gateway can do, and each provider's options schema."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from app.deps import Ctx, CurrentClient

router = APIRouter(tags=["providers"])


class ProviderOut(BaseModel):
    name: str
    capabilities: dict[str, Any]
    options_schema: dict[str, Any]


class ProviderList(BaseModel):
    data: list[ProviderOut]


@router.get(
    "/providers",
    operation_id="list_providers",
    summary="List the enabled providers",
    response_model=ProviderList,
)
async def list_providers(ctx: Ctx, _client: CurrentClient) -> ProviderList:
    return ProviderList(
        data=[
            ProviderOut(
                name=name,
                capabilities=asdict(provider.capabilities),
                options_schema=provider.options_model.model_json_schema(),
            )
            for name, provider in sorted(ctx.providers.enabled().items())
        ]
    )
