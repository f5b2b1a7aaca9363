"""The submit ledger: a row committed before a vendor is asked to take a job.

No vendor we support documents an idempotency key, so after a crash the only
way to know whether a submit may have reached the vendor is to have written
down, beforehand, that it was about to. A row still open when the submit step
runs again means exactly that: the request was out when the gateway died.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Update, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.models import ProviderSubmission, table_of

ACCEPTED = "accepted"  # the vendor took it (its job id is kept)
REFUSED = "refused"  # the vendor said no: nothing to pay for
RETRYABLE = "retryable"  # an error answer (5xx, 429, …): the vendor did not take it
IN_DOUBT = "in_doubt"  # the gateway died while the vendor had the request


def is_kept_for(provider: object) -> bool:
    """Whether submits to this provider are written down: not where sending one
    twice costs nothing (the local engine, which is simply run again)."""
    return not getattr(provider, "resubmit_is_free", False)


async def open_submission(session: AsyncSession, job_id: str, provider: str) -> int | None:
    """The id of a submit to this vendor that was started and never settled."""
    return await session.scalar(
        select(ProviderSubmission.id).where(
            ProviderSubmission.job_id == job_id,
            ProviderSubmission.provider == provider,
            ProviderSubmission.outcome.is_(None),
        )
    )


async def accepted_count(session: AsyncSession, job_id: str, provider: str) -> int:
    """How many submits of this job this vendor has taken."""
    count = await session.scalar(
        select(func.count()).where(
            ProviderSubmission.job_id == job_id,
            ProviderSubmission.provider == provider,
            ProviderSubmission.outcome == ACCEPTED,
        )
    )
    return int(count or 0)


async def begin(session: AsyncSession, job_id: str, provider: str) -> int:
    row = ProviderSubmission(job_id=job_id, provider=provider, started_at=utcnow())
    session.add(row)
    await session.flush()
    return row.id


@dataclass(frozen=True)
class Settlement:
    """How a submit ended, for its ledger row."""

    submission_id: int
    outcome: str
    provider_job_id: str | None = None

    def params(self) -> dict[str, Any]:
        """The bound parameters of ``settle_statement``: prefixed, so that none is
        taken for a column to set by an UPDATE it is run beside (see
        ``jobs.repository.complete``)."""
        return {
            "submission_id": self.submission_id,
            "submission_outcome": self.outcome,
            "submission_finished_at": utcnow(),
            "submission_provider_job_id": self.provider_job_id,
        }


async def settle(
    session: AsyncSession, submission_id: int, outcome: str, provider_job_id: str | None = None
) -> None:
    settlement = Settlement(submission_id, outcome, provider_job_id)
    await session.execute(settle_statement(), settlement.params())


@functools.cache
def settle_statement() -> Update:
    """Built once, on the table: no ORM bulk-update machinery on every submit."""
    submissions = table_of(ProviderSubmission)
    columns = ("outcome", "finished_at", "provider_job_id")
    return (
        update(submissions)
        .where(submissions.c.id == bindparam("submission_id"))
        .values({name: bindparam(f"submission_{name}") for name in columns})
    )
