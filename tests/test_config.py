"""Settings: embedded defaults, empty values counted as unset, the pool size applied,
malformed values refused at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from app.config import DEFAULT_DATABASE_URL, Settings
from app.context import GatewayContext
from app.providers.registry import ProviderRegistry
from tests.support.gateway import REPO


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


# An operator's likely slip: the token pasted where the product id goes.
PASTED_TOKEN = "ik-Zx81-secret-token"


@pytest.mark.parametrize("value", [PASTED_TOKEN, "my-product", "24250/results", " 24250", "2.5"])
def test_a_non_numeric_infomaniak_product_id_is_refused(monkeypatch, tmp_path, value):
    # It goes into the vendor's /1/ai/{product_id}/... paths, where it is an integer.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INFOMANIAK_API_KEY", "ik-the-real-token")
    monkeypatch.setenv("INFOMANIAK_PRODUCT_ID", value)
    with pytest.raises(pydantic.ValidationError) as refused:
        Settings()
    message = str(refused.value)
    assert "infomaniak_product_id" in message
    assert [error["loc"] for error in refused.value.errors()] == [("infomaniak_product_id",)]
    assert value.strip() not in message and "ik-the-real-token" not in message


def test_a_numeric_infomaniak_product_id_is_taken(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INFOMANIAK_API_KEY", "ik-the-real-token")
    monkeypatch.setenv("INFOMANIAK_PRODUCT_ID", "24250")
    settings = Settings()
    assert settings.infomaniak_product_id == "24250"
    registry = ProviderRegistry.from_settings(settings, http=None)  # type: ignore[arg-type]
    assert "infomaniak" in registry.enabled()


def test_the_gateway_does_not_start_with_a_non_numeric_product_id(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "INFOMANIAK_API_KEY": "ik-the-real-token",
        "INFOMANIAK_PRODUCT_ID": PASTED_TOKEN,
    }
    served = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=30,  # a gateway that started would serve on until this
    )
    assert served.returncode != 0
    assert "infomaniak_product_id" in served.stderr
    assert PASTED_TOKEN not in served.stderr + served.stdout
    assert "ik-the-real-token" not in served.stderr + served.stdout
    assert not (tmp_path / "var").exists()  # refused before the database was made
