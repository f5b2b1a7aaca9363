"""The job as clients see it, and what they send to create one."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.models import Job


class JobStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    canceled = "canceled"


TERMINAL_STATUSES = frozenset({JobStatus.completed, JobStatus.failed, JobStatus.canceled})

# BCP 47, loosely: "en", "en-US", "zh-Hant-TW", "ko".
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")


def canonical_case(tag: str) -> str:
    """A language tag in BCP 47's case: ``EN-us`` is ``en-US``, ``zh-hant`` ``zh-Hant``."""
    first, *rest = tag.split("-")
    parts = [first.lower()]
    for part in rest:
        if len(part) == 2 or (len(part) == 3 and part.isdigit()):
            parts.append(part.upper())  # a region
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())  # a script
        else:
            parts.append(part.lower())
    return "-".join(parts)


class UploadSource(BaseModel):
    type: Literal["upload"] = "upload"
    filename: str | None
    content_type: str | None
    size: int
    sha256: str


class UrlSource(BaseModel):
    type: Literal["url"] = "url"
    url: str


class JobError(BaseModel):
    code: str
    message: str
    retryable: bool = False
    provider_detail: Any = None


class ArtifactOut(BaseModel):
    name: str
    content_type: str
    size: int


class ProviderAttempt(BaseModel):
    provider: str
    error: JobError
    at: datetime


class JobOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "job_01jd5m3x2k8q9r7t6v5w4y3z2a",
                    "status": "completed",
                    "provider": "local",
                    "provider_job_id": "job_01jd5m3x2k8q9r7t6v5w4y3z2a",
                    "provider_status": "done",
                    "language": "en",
                    "options": {},
                    "metadata": {"order": "42"},
                    "callback_url": None,
                    "source": {
                        "type": "upload",
                        "filename": "hello.wav",
                        "content_type": "audio/wav",
                        "size": 103500,
                        "sha256": "9f2c…",
                    },
                    "error": None,
                    "artifacts": [],
                    "fallback_providers": [],
                    "provider_attempts": [],
                    "deadline_at": "2026-11-21T06:15:00Z",
                    "created_at": "2026-11-21T06:00:00Z",
                    "updated_at": "2026-11-21T06:00:02Z",
                    "completed_at": "2026-11-21T06:00:02Z",
                }
            ]
        }
    )

    id: str
    status: JobStatus
    provider: str
    provider_job_id: str | None
    provider_status: str | None
    language: str | None
    options: dict[str, Any]
    metadata: dict[str, Any]
    callback_url: str | None
    source: Annotated[UploadSource | UrlSource, Field(discriminator="type")]
    error: JobError | None
    artifacts: list[ArtifactOut]
    fallback_providers: list[str] = Field(
        description="Providers to try next, in order, if `provider` keeps failing"
    )
    provider_attempts: list[ProviderAttempt] = Field(
        description="Providers given up on for this job, in order, with their last error"
    )
    deadline_at: datetime | None = Field(
        description="Until then the current provider's retryable errors are retried"
    )
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            status=JobStatus(job.status),
            provider=job.provider,
            provider_job_id=job.provider_job_id,
            provider_status=job.provider_status,
            language=job.language,
            options=job.options,
            metadata=job.meta,
            callback_url=job.callback_url,
            source=job.source,  # validated by the discriminator
            error=JobError.model_validate(job.error) if job.error else None,
            artifacts=[ArtifactOut.model_validate(a) for a in job.artifacts],
            fallback_providers=job.fallback_providers,
            provider_attempts=[ProviderAttempt.model_validate(a) for a in job.provider_attempts],
            deadline_at=job.deadline_at,
            created_at=job.created_at,
            updated_at=job.updated_at,
            completed_at=job.completed_at,
        )


class JobPage(BaseModel):
    data: list[JobOut]
    next_cursor: str | None


class JobFields(BaseModel):
    """The fields of a new job other than its audio, from a form or a JSON body."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(default="local", min_length=1, max_length=40)
    language: str | None = Field(default=None, examples=["en"])
    options: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    callback_url: str | None = Field(default=None, max_length=2048)
    fallback_providers: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=5
    )

    @field_validator("options", "metadata", "fallback_providers", mode="before")
    @classmethod
    def _null_is_not_given(cls, value: Any, info: ValidationInfo) -> Any:
        """``null`` is the default, as clients that send every field (null when
        unset, as Stripe's do) mean it."""
        if value is None:
            return [] if info.field_name == "fallback_providers" else {}
        return value

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _LANGUAGE.match(value):
            raise ValueError("must be a language tag such as 'en' or 'en-US'")
        return canonical_case(value)

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 50:
            raise ValueError("at most 50 keys")
        return value

    @field_validator("options", "metadata")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_plain_json(value, depth=0)
        # The form caps each field at 64 KiB: the same limit for a JSON body, or a
        # job's every view, page and webhook could carry megabytes of it.
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_JSON_FIELD_BYTES:
            raise ValueError(f"at most 64 KiB as JSON; this is {size} bytes")
        return value


_MAX_JSON_DEPTH = 32
MAX_JSON_FIELD_BYTES = 64 * 1024


def _check_plain_json(value: Any, depth: int) -> None:
    """Refuse what JSON cannot round-trip (NaN, Infinity) and absurd nesting."""
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN or Infinity)")
    if isinstance(value, dict):
        for item in value.values():
            _check_plain_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_plain_json(item, depth + 1)


class CreateJobFromUrl(JobFields):
    """``POST /jobs`` with a JSON body: the audio is fetched from ``source_url``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"source_url": "https://example.com/call.wav", "provider": "local"}]
        },
    )

    source_url: str = Field(max_length=2048)
