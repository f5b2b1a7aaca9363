"""The checks of bench/lifecycle.py: the database's and the fakes' counts, that no
job was lost or doubled, and the SQL statements PostgreSQL logged, by kind."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import asyncpg
import httpx

from bench.lifecycle_client import Creation
from bench.lifecycle_stack import Stack
from tests.support.postgres import PostgresServer


async def database_counts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        jobs = await conn.fetch("SELECT status, count(*) FROM jobs GROUP BY status")
        deliveries = await conn.fetch(
            "SELECT status, count(*) FROM webhook_deliveries GROUP BY status"
        )
        submissions = await conn.fetch(
            "SELECT provider, outcome, count(*) FROM provider_submissions GROUP BY 1, 2"
        )
        tasks = await conn.fetchval("SELECT count(*) FROM tasks")
        attempts = await conn.fetchval("SELECT count(*) FROM webhook_attempts")
        # Since the database was made: transactions and connections (sessions).
        stats = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return {
        "jobs": {r["status"]: r["count"] for r in jobs},
        "deliveries": {r["status"]: r["count"] for r in deliveries},
        "webhook_attempts": attempts,
        "submissions": {f"{r['provider']}:{r['outcome']}": r["count"] for r in submissions},
        "tasks_left": tasks,
        "transactions": stats["xact_commit"] + stats["xact_rollback"],
        "connections_opened": stats["sessions"],
    }


def check(creation: Creation, records: dict[str, Any], db: dict[str, Any],
          fakes: dict[str, dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    created = set(creation.jobs)
    completed = [r for r in records["records"] if r[1] == "job.completed"]
    hooked = {r[0] for r in completed}
    by_job = Counter(r[0] for r in completed)
    ids_per_job: dict[str, set[str]] = {}
    for job_id, _, webhook_id, _ in completed:
        ids_per_job.setdefault(job_id, set()).add(webhook_id)
    sent = Counter(c.vendor for c in creation.jobs.values())
    vendors = {
        vendor: {
            "jobs": sent[vendor],
            "accepted": tallies["accepted"],
            "submit_requests": tallies["requests"].get("submit", 0),
            "status_requests": tallies["requests"].get("status", 0),
            "callbacks": tallies["callbacks"],
        }
        for vendor, tallies in fakes.items()
    }
    return {
        "created": len(created),
        "completed_in_db": db["jobs"].get("completed", 0),
        "not_completed_in_db": {k: v for k, v in db["jobs"].items() if k != "completed"},
        "webhooks_missing": len(created - hooked),
        "webhooks_unexpected": len(hooked - created),
        "webhooks_duplicate": sum(n - 1 for n in by_job.values()),
        # the same event twice (a retried delivery) vs two events for one job
        "webhooks_duplicate_events": sum(len(ids) - 1 for ids in ids_per_job.values()),
        "other_events": Counter(r[1] for r in records["records"] if r[1] != "job.completed"),
        "bad_signatures": records["rejected"].get("bad_signature", 0),
        "vendors": vendors,
        "vendor_submits_equal_jobs": all(
            v["accepted"] == v["jobs"] == v["submit_requests"] for v in vendors.values()
        ),
    }


def fake_tallies(stack: Stack) -> dict[str, dict[str, Any]]:
    return {
        vendor: httpx.get(f"{url}/_bench/counts", timeout=30).json()
        for vendor, url in stack.fakes.items()
    }


def count_statements(server: PostgresServer, offset: int) -> Counter[str]:
    """Statements PostgreSQL logged since ``offset`` of its log, by kind (the
    command and its table: "BEGIN", "UPDATE tasks", "SELECT jobs", ...)."""
    with (server.dir / "server.log").open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    kinds: Counter[str] = Counter()
    # An entry starts with its timestamp; a statement's later lines follow it.
    for entry in re.split(r"\n(?=\d{4}-\d\d-\d\d )", text):
        marker = re.search(r"LOG:  (?:statement|execute [^:]*): (.*)", entry, re.DOTALL)
        if marker:
            kinds[statement_kind(marker.group(1))] += 1
    return kinds


def statement_kind(sql: str) -> str:
    words = sql.replace('"', "").replace(";", " ").split()
    if not words:
        return "?"
    command = words[0].upper()
    if command in ("BEGIN", "COMMIT", "ROLLBACK"):
        return command
    if command == "SELECT" and "pg_notify" in sql:
        return "SELECT pg_notify"
    if command == "WITH":  # a data-modifying CTE: what it inserts into first
        match = re.search(r"INSERT INTO (\w+)", sql)
        return f"WITH .. INSERT {match.group(1) if match else '?'}"
    table = re.search(r"(?:FROM|INTO|UPDATE)\s+(\w+)", sql, re.IGNORECASE)
    return f"{command} {table.group(1) if table else ''}".strip()
