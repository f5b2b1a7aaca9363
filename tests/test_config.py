"""Settings: embedded defaults, empty values counted as unset, the pool size applied."""

from __future__ import annotations

from pathlib import Path

from app.config import DEFAULT_DATABASE_URL, Settings
from app.context import GatewayContext
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


async def test_database_pool_size_sizes_each_process_pool(monkeypatch, tmp_path, postgres_url):
    # DATABASE_POOL_SIZE connections stay open; as many again are lent at a peak.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("DATABASE_POOL_SIZE", "3")
    settings = Settings()
    assert settings.database_pool_size == 3
    ctx = GatewayContext.build(settings)
    try:
        pool = ctx.engine.sync_engine.pool
        held = [await ctx.engine.connect() for _ in range(6)]
        assert pool.checkedout() == 6  # 3 pooled + 3 overflow, no wait
        for connection in held:
            await connection.close()
        assert pool.checkedin() == 3  # the overflow ones were closed on return
    finally:
        await ctx.aclose()
