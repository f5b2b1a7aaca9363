"""Settings, read from the environment or a ``.env`` file (names as in CONTRACT.md).

With nothing set, the gateway runs embedded: an SQLite file and blobs under
``./var/``, and only the offline ``local`` engine.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/stt-gateway.db"


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a secret pasted into the wrong
    # setting; the start-up error names the setting, never echoes what it holds.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", env_ignore_empty=True, hide_input_in_errors=True
    )

    database_url: str = DEFAULT_DATABASE_URL
    # PostgreSQL connections each process keeps (and as many again for its busiest moments)
    database_pool_size: int = Field(default=20, ge=1)
    storage_dir: Path = Path("./var/blobs")
    public_base_url: str | None = None
    # Key of the signed callback and media links; unset: a key file in STORAGE_DIR
    signing_secret: SecretStr | None = None
    callback_link_ttl_seconds: int = Field(default=14 * 24 * 3600, gt=0)
    media_link_ttl_seconds: int = Field(default=24 * 3600, gt=0)

    # Uploads
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_source_url_bytes: int = Field(default=2 * 1024**3, gt=0)
    # The whole download of a source_url, redirects included
    source_url_timeout_seconds: float = Field(default=600.0, gt=0)
    # An upload whose client sends nothing for this long is answered 408 and dropped
    upload_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    # A request's line and headers must arrive within this time (else 408) and
    # fit in this many bytes (else 431): slowloris and header floods.
    request_header_timeout_seconds: float = Field(default=10.0, gt=0)
    max_request_header_bytes: int = Field(default=64 * 1024, ge=1024)
    # Loopback, link-local and private addresses in source_url / callback_url
    allow_private_urls: bool = False

    # Per-client limits, answered with 429 and Retry-After (app.limits); 0 turns each off.
    # The request rate is counted in each process's memory: N processes allow N times it.
    rate_limit_per_second: float = Field(default=0.0, ge=0)
    rate_limit_burst: int = Field(default=0, ge=0)  # 0: the per-second figure, rounded up
    max_jobs_in_flight: int = Field(default=0, ge=0)  # a client's queued + processing jobs

    # Worker
    run_worker: bool = True  # `serve --no-worker` turns it off
    worker_concurrency: int = Field(default=8, ge=1)
    task_lease_seconds: float = Field(default=60.0, gt=0)
    worker_poll_seconds: float = Field(default=2.0, gt=0)
    task_max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)

    # Retention (app/retention.py), counted from the moment a job became terminal:
    # its audio is deleted after AUDIO_RETENTION_HOURS (0: at the next sweep), the
    # whole job after RESULT_RETENTION_DAYS (0: kept until the client deletes it).
    audio_retention_hours: float = Field(default=24.0, ge=0)
    result_retention_days: float = Field(default=30.0, ge=0)
    retention_sweep_seconds: float = Field(default=300.0, gt=0)  # the worker sweeps this often

    # Vendor faults (per worker process): calls in flight per vendor; the circuit
    # breaker opens after this many retryable failures in a row, for this long;
    # a job's retryable errors are retried this long per vendor, then it falls
    # back to its next provider or fails.
    provider_max_in_flight: int = Field(default=32, ge=1)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    provider_deadline_seconds: float = Field(default=900.0, gt=0)
    # A vendor that gives no hint is polled a tenth of the job's age after the
    # last look, never sooner than this, never later than 60 s.
    poll_min_seconds: float = Field(default=1.0, gt=0, le=60)
    # A submit cut off by a crash may have been accepted (and billed) by the
    # vendor: false fails the job (`submit_interrupted`), true sends it again.
    resubmit_in_doubt: bool = False
    # A vendor that accepted a job and then failed it in a way an identical
    # request may cure (Daglo's transcript_error, Phonexia's failed) is sent the
    # job again this many times, after a growing pause; 0 fails it at once.
    vendor_failure_resubmits: int = Field(default=2, ge=0, le=10)

    # Providers
    local_provider: bool = True
    local_engine_processes: int = Field(default=1, ge=1)
    klangio_api_key: SecretStr | None = None
    klangio_base_url: str = "https://api.klang.io"
    daglo_api_key: SecretStr | None = None
    daglo_base_url: str = "https://apis.daglo.ai"
    # Daglo's documented limit per endpoint; an account granted more may raise it.
    daglo_requests_per_second: float = Field(default=20.0, gt=0)
    aimlapi_api_key: SecretStr | None = None
    aimlapi_base_url: str = "https://api.aimlapi.com"
    infomaniak_api_key: SecretStr | None = None
    # The numeric {product_id} in Infomaniak's /1/ai/{product_id}/... paths (e.g. 24250)
    infomaniak_product_id: str | None = Field(default=None, pattern=r"^[0-9]+$")
    infomaniak_base_url: str = "https://api.infomaniak.com"
    phonexia_base_url: str | None = None
    phonexia_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"

    # Client webhooks
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    # Seconds to wait before each retry of a failed delivery (Svix's schedule:
    # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: more than 24 hours in all).
    webhook_retry_schedule: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000], min_length=1
    )
    # After `keys rotate-secret`, the old secret signs beside the new one this long.
    webhook_secret_overlap_hours: float = Field(default=24.0, ge=0)

    log_level: str = "INFO"
    # auto: JSON lines when stderr is not a terminal, readable text when it is
    log_format: Literal["auto", "json", "text"] = "auto"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
