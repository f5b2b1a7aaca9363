"""Provider names, the settings each needs, and the adapters enabled by the settings."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from app.config import Settings
from app.providers.base import Provider

log = logging.getLogger(__name__)

ProviderFactory = Callable[[Settings, httpx.AsyncClient], Provider]


@dataclass(frozen=True)
class ProviderSpec:
    required_settings: tuple[str, ...]
    # "module:function" building the adapter from the settings and the shared
    # HTTP client; imported only when the provider is enabled.
    factory: str


SPECS: dict[str, ProviderSpec] = {
    "local": ProviderSpec(("LOCAL_PROVIDER",), "app.providers.local:build"),
    "klangio": ProviderSpec(("KLANGIO_API_KEY",), "app.providers.klangio:build"),
    "daglo": ProviderSpec(("DAGLO_API_KEY",), "app.providers.daglo:build"),
    "aimlapi": ProviderSpec(("AIMLAPI_API_KEY",), "app.providers.aimlapi:build"),
    "infomaniak": ProviderSpec(
        ("INFOMANIAK_API_KEY", "INFOMANIAK_PRODUCT_ID"), "app.providers.infomaniak:build"
    ),
    "phonexia": ProviderSpec(("PHONEXIA_BASE_URL",), "app.providers.phonexia:build"),
    "openai": ProviderSpec(("OPENAI_API_KEY",), "app.providers.openai:build"),
}


def _load_factory(path: str) -> ProviderFactory | None:
    module_name, _, function = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    factory: ProviderFactory = getattr(module, function)
    return factory


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
            factory = _load_factory(spec.factory)
            if factory is None:
                log.warning("provider %s is configured but has no adapter yet", name)
                continue
            providers[name] = factory(settings, http)
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
        missing = " and ".join(spec.required_settings)
        return f"provider {name!r} is not configured on this gateway: set {missing}"

    def close(self) -> None:
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()
