"""ORM tables. Queries live in the repositories, not here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db import UTCDateTime, utcnow

# Constraint names that Alembic can find again in later migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT autoincrement on Postgres, INTEGER PRIMARY KEY (rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


def table_of(model: type[Base]) -> Table:
    """A model's table, for statements built once on the table: on the hot paths
    they skip the ORM's per-statement work (half the CPU of a simple UPDATE)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Client(Base):
    """A service that calls the gateway; its API key is stored as a SHA-256 hash."""

    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    webhook_secret: Mapped[str] = mapped_column(String(100))
    # After a rotation the old secret still signs, beside the new one, until then.
    previous_webhook_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # GET /jobs: a client's jobs, newest first, paged by (created_at, id).
        Index("ix_jobs_client_id_created_at_id", "client_id", "created_at", "id"),
        # GET /jobs?status= and ?provider=: the same order within one value, and the
        # count of a client's jobs in flight (rate limits).
        Index("ix_jobs_client_id_status_created_at_id", "client_id", "status", "created_at", "id"),
        Index(
            "ix_jobs_client_id_provider_created_at_id", "client_id", "provider", "created_at", "id"
        ),
        # ?status= and ?provider= together: one index walks a page, where either of the
        # two above reads about one row in (the pair's share) per row of the page.
        Index(
            "ix_jobs_client_id_status_provider_created_at_id",
            "client_id",
            "status",
            "provider",
            "created_at",
            "id",
        ),
        # The retention sweeper: terminal jobs by age.
        Index("ix_jobs_completed_at", "completed_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40))  # the vendor doing (or that did) the work
    # Vendors to try next, in order, when `provider` fails retryably past its deadline
    fallback_providers: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Vendors given up on, in order: [{"provider", "error", "at"}]
    provider_attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Until then, retryable errors of `provider` are retried; after it, the next vendor
    deadline_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20))
    provider_job_id: Mapped[str | None] = mapped_column(String(200))
    provider_status: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(35))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    callback_url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[dict[str, Any]]
    audio_key: Mapped[str | None] = mapped_column(String(300))  # blob of the audio, if stored
    audio_format: Mapped[str | None] = mapped_column(String(10))
    error: Mapped[dict[str, Any] | None]
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None]
    # A vendor's callback came while no poll was waiting (the submit's answer, or
    # a poll, still on its way): the next poll scheduled is made due at once.
    vendor_signalled_at: Mapped[datetime | None]


class JobResult(Base):
    """The normalised transcript and the vendor's raw payload, apart from the hot job row."""

    __tablename__ = "job_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    transcript: Mapped[dict[str, Any]]
    raw: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    """A unit of background work, written in the transaction that causes it.

    ``run_at`` is both the schedule and the lease: claiming a task moves it to
    now + lease, so a task whose worker died becomes due again by itself.
    """

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_run_at", "run_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    run_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    claim_token: Mapped[str | None] = mapped_column(String(40))
    ref: Mapped[str | None] = mapped_column(String(40))  # what the task is about (a delivery)
    last_error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))  # of the request that caused it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for a client's callback_url; its id is the ``webhook-id`` of every attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]  # the body, fixed when the event happens
    status: Mapped[str] = mapped_column(String(20))  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int]
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None]
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]


class IdempotencyKey(Base):
    """A client's Idempotency-Key: the request it came with and the job it made (24 hours)."""

    __tablename__ = "idempotency_keys"

    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the request's content
    # None while the first request is still storing its upload
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"),
        index=True,  # for the cascade
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ProviderSubmission(Base):
    """The submit ledger: written before a vendor is called, completed after it answers.

    A row left open means the gateway died while the vendor had the request:
    the vendor may have accepted (and billed) it, so it is not sent again.
    """

    __tablename__ = "provider_submissions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # accepted | refused | retryable | in_doubt
    outcome: Mapped[str | None] = mapped_column(String(20))
    provider_job_id: Mapped[str | None] = mapped_column(String(200))
