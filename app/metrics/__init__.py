"""The gateway's Prometheus metrics: their definitions and the helpers that count.

Each process exposes its own counters, from the moment it started. Vendor
calls, completions and webhook deliveries are counted by the process whose
worker did them: a separate ``stt-gateway worker`` process counts its own, and
the API process's ``/metrics`` does not show them. That worker serves no HTTP
(so nothing to scrape there yet): for complete numbers run the worker in the
API process (``serve`` without ``--no-worker``) and scrape every such process,
summing across them. The queue gauges are read from the database at scrape
time (``app.metrics.endpoint``), so they are the same in every process.

Labels take only bounded values: provider and vendor names, fixed operation
names, outcomes, HTTP methods, status codes and route templates; never a job
id, a URL, a raw request path or a header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

# Seconds to hours: a local job takes seconds, a long recording at a vendor hours.
_JOB_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
# One HTTP call: milliseconds to a synchronous transcription of several minutes.
_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

JOBS_CREATED = Counter("stt_jobs_created", "Jobs accepted (202), by provider", ["provider"])
JOBS_FINISHED = Counter(
    "stt_jobs_finished",
    "Jobs that reached a terminal status (completed, failed, canceled), by provider",
    ["provider", "status"],
)
JOB_DURATION = Histogram(
    "stt_job_completion_seconds",
    "Time from a job's creation to its completion (completed jobs only), by provider",
    ["provider"],
    buckets=_JOB_BUCKETS,
)
VENDOR_CALLS = Counter(
    "stt_vendor_requests",
    "HTTP calls to vendors by outcome: ok, retryable (408/425/429/5xx), "
    "permanent (other 4xx), transport_error (no answer: connection error or timeout)",
    ["vendor", "operation", "outcome"],
)
VENDOR_LATENCY = Histogram(
    "stt_vendor_request_duration_seconds",
    "Duration of HTTP calls to vendors, whatever their outcome",
    ["vendor", "operation"],
    buckets=_CALL_BUCKETS,
)
WEBHOOK_ATTEMPTS = Counter(
    "stt_webhook_deliveries",
    "Client webhook delivery attempts by outcome: succeeded, retry (to be sent again), "
    "failed (given up)",
    ["outcome"],
)
RATE_LIMITED = Counter(
    "stt_rate_limited",
    "Requests refused with 429 by the gateway's own limits, by reason: "
    "requests_per_second, jobs_in_flight",
    ["reason"],
)
HTTP_REQUESTS = Counter(
    "stt_http_requests",
    "HTTP requests served, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "stt_http_request_duration_seconds",
    "Time to serve an HTTP request, to the last byte of the answer, by method and route template",
    ["method", "route"],
    buckets=_CALL_BUCKETS,
)


def job_created(provider: str) -> None:
    JOBS_CREATED.labels(provider).inc()


def job_finished(provider: str, status: str, seconds: float | None = None) -> None:
    JOBS_FINISHED.labels(provider, status).inc()
    if seconds is not None:
        JOB_DURATION.labels(provider).observe(max(seconds, 0.0))


def vendor_call(vendor: str, operation: str, outcome: str, seconds: float) -> None:
    VENDOR_CALLS.labels(vendor, operation, outcome).inc()
    VENDOR_LATENCY.labels(vendor, operation).observe(seconds)


def webhook_attempt(outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()


def rate_limited(reason: str) -> None:
    RATE_LIMITED.labels(reason).inc()


# Counting what a transaction did, only once it is committed.

_AFTER_COMMIT = "metrics_after_commit"


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run ``action`` when ``session``'s transaction commits; drop it on rollback."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for action in session.info.pop(_AFTER_COMMIT, ()):
        try:
            action()
        except Exception:  # a metric must never fail a committed transaction
            log.exception("updating a metric after commit failed")


@event.listens_for(Session, "after_transaction_end")
def _drop_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction: committed (run above) or not
        session.info.pop(_AFTER_COMMIT, None)
