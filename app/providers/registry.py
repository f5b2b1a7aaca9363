"""Provider names, the settings each needs, and the adapters enabled by the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from app.config import Settings
from app.providers.base import Provider
from app.providers.local import LocalProvider

log = logging.getLogger(__name__)

ProviderFactory = Callable[[Settings, httpx.AsyncClient], Provider]


@dataclass(frozen=True)
class ProviderSpec:
    required_settings: tuple[str, ...]
    factory: ProviderFactory | None  # None: this release has no adapter for it yet


def _local(settings: Settings, _http: httpx.AsyncClient) -> Provider:
    return LocalProvider(processes=settings.local_engine_processes)


SPECS: dict[str, ProviderSpec] = {
    "local": ProviderSpec(("LOCAL_PROVIDER",), _local),
    "klangio": ProviderSpec(("KLANGIO_API_KEY",), None),
    "daglo": ProviderSpec(("DAGLO_API_KEY",), None),
    "aimlapi": ProviderSpec(("AIMLAPI_API_KEY",), None),
    "infomaniak": ProviderSpec(("INFOMANIAK_API_KEY", "INFOMANIAK_PRODUCT_ID"), None),
    "phonexia": ProviderSpec(("PHONEXIA_BASE_URL",), None),
    "openai": ProviderSpec(("OPENAI_API_KEY",), None),
}


def _configured(settings: Settings, spec: ProviderSpec) -> bool:
    return all(getattr(settings, name.lower()) for name in spec.required_settings)


class ProviderRegistry:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient) -> ProviderRegistry:
        providers: dict[str, Provider] = {}
        for name, spec in SPECS.items():
            if not _configured(settings, spec):
                continue
            if spec.factory is None:
                log.warning("provider %s is configured but has no adapter yet", name)
                continue
            providers[name] = spec.factory(settings, http)
        return cls(providers)

    def enabled(self) -> dict[str, Provider]:
        return dict(self._providers)

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def why_unavailable(self, name: str) -> str:
        """A client-facing reason why ``name`` cannot take jobs here."""
        spec = SPECS.get(name)
        enabled = ", ".join(sorted(self._providers)) or "none"
        if spec is None:
            return f"unknown provider {name!r}; enabled providers: {enabled}"
        if spec.factory is None:
            return f"provider {name!r} is not available in this release; enabled: {enabled}"
        missing = " and ".join(spec.required_settings)
        return f"provider {name!r} is not configured on this gateway: set {missing}"

    def close(self) -> None:
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()
