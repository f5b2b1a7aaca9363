"""The query shapes bench/growth.py times, and the records of what it measured."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.jobs.repository import JobFilter
from bench.growth_load import SPAN

PAGE = 50


@dataclass(frozen=True)
class Shape:
    name: str
    query: dict[str, str]  # GET /jobs query parameters; empty for GET /jobs/{id}
    filters: JobFilter
    deep: bool = False  # start from the cursor of a page deep in the list
    by_id: bool = False
    limit: int = PAGE


def shapes(newest: datetime) -> list[Shape]:
    # A one-week window in the middle of the data, the same at both sizes.
    after, before = newest - SPAN / 2 - timedelta(days=7), newest - SPAN / 2
    window = {"created_after": after.isoformat(), "created_before": before.isoformat()}
    return [
        Shape("first page", {}, JobFilter()),
        Shape("deep page (cursor)", {}, JobFilter(), deep=True),
        Shape("status=failed", {"status": "failed"}, JobFilter(status="failed")),
        Shape("provider=daglo", {"provider": "daglo"}, JobFilter(provider="daglo")),
        Shape(
            "created window (1 week)", window, JobFilter(created_after=after, created_before=before)
        ),
        Shape(
            "status=failed&provider=daglo",
            {"status": "failed", "provider": "daglo"},
            JobFilter(status="failed", provider="daglo"),
        ),
        Shape(
            "status=failed + window",
            {"status": "failed", **window},
            JobFilter(status="failed", created_after=after, created_before=before),
        ),
        # A rare pair: 2% of the jobs are canceled, 7% went to infomaniak.
        Shape(
            "status=canceled&provider=infomaniak",
            {"status": "canceled", "provider": "infomaniak"},
            JobFilter(status="canceled", provider="infomaniak"),
        ),
        Shape("GET /jobs/{id}", {}, JobFilter(), by_id=True),
    ]


@dataclass
class Target:
    """What a shape's requests need at one size: a deep cursor and job ids."""

    deep_cursor: str | None
    deep_page: int
    ids: list[str]


@dataclass
class Timings:
    sequential: list[float]
    concurrent: list[float]
