"""Settings: embedded defaults, and empty values counted as unset."""

from __future__ import annotations

from pathlib import Path

from app.config import DEFAULT_DATABASE_URL, Settings
from app.providers.registry import ProviderRegistry


def test_defaults_are_the_embedded_setup(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_url.startswith("sqlite+aiosqlite:///./var/")
    assert settings.storage_dir == Path("./var/blobs")
    assert settings.local_provider is True
    assert settings.public_base_url is None


def test_an_empty_value_counts_as_unset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGLO_API_KEY", "")
    monkeypatch.setenv("PUBLIC_BASE_URL", "")
    settings = Settings()
    assert settings.daglo_api_key is None
    assert settings.public_base_url is None


def test_local_provider_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCAL_PROVIDER", "false")
    registry = ProviderRegistry.from_settings(Settings(), http=None)  # type: ignore[arg-type]
    assert registry.enabled() == {}
    assert "LOCAL_PROVIDER" in registry.why_unavailable("local")
