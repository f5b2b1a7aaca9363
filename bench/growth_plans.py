"""The query plans of bench/growth.py's shapes: the SQL app/jobs/repository.py
really sends (captured from SQLAlchemy as it runs), and EXPLAIN of it, custom and
generic plans, with the database's own latency of the prepared statement."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_engine, create_session_factory
from app.jobs import repository
from bench.growth_shapes import PAGE, Shape, Target


async def run_shape(session: AsyncSession, shape: Shape, client_id: str, target: Target) -> object:
    if shape.by_id:
        return await repository.get_for_client(session, client_id, target.ids[0])
    cursor = target.deep_cursor if shape.deep else None
    return await repository.list_for_client(session, client_id, shape.filters, PAGE, cursor)


async def repository_statements(
    url: str, client_id: str, all_shapes: list[Shape], target: Target
) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """Each shape's SQL and parameters, as app/jobs/repository.py sends them to asyncpg."""
    engine = create_engine(url)
    sent: list[tuple[str, tuple[Any, ...]]] = []

    def note(_conn, _cursor, statement, parameters, _context, _many):
        sent.append((statement, tuple(parameters)))

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    statements = {}
    try:
        async with create_session_factory(engine)() as session:
            for shape in all_shapes:
                sent.clear()
                await run_shape(session, shape, client_id, target)
                (statements[shape.name],) = sent  # one query per shape
    finally:
        await engine.dispose()
    return statements


@dataclass
class PlanCheck:
    text: str  # EXPLAIN (ANALYZE, BUFFERS), as PostgreSQL prints it
    access: str  # how the plan reads jobs: "Index Scan Backward on ix_…", "Seq Scan", …
    seq_scan: bool
    rows_read: int  # index entries and rows visited on jobs, filtered-out ones included
    rows_returned: int
    generic_access: str  # the same for the generic plan of the prepared statement
    generic_seq_scan: bool
    db_latencies: list[float]  # the prepared statement run alone, many times


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _walk(child))]


def _reads_of_jobs(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes that read the jobs table or one of its indexes."""
    return [
        n
        for n in _walk(plan)
        if n.get("Relation Name") == "jobs"
        or str(n.get("Index Name", "")).startswith(("ix_jobs_", "pk_jobs"))
    ]


def _access(nodes: list[dict[str, Any]]) -> str:
    return " + ".join(
        n["Node Type"]
        + (" Backward" if n.get("Scan Direction") == "Backward" else "")
        + (f" on {n['Index Name']}" if "Index Name" in n else "")
        for n in nodes
    )


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def explain(dsn: str, statement: str, params: tuple[Any, ...], runs: int) -> PlanCheck:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *params)
        (raw,) = await conn.fetchrow(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *params)
        top = json.loads(raw)[0]["Plan"]
        reads = _reads_of_jobs(top)
        # The gateway's pooled connections prepare each statement once and, after
        # five runs, PostgreSQL may switch to a generic plan: check that one too.
        await conn.execute(f"PREPARE shape AS {statement}")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        args = ", ".join(_literal(p) for p in params)
        (generic_raw,) = await conn.fetchrow(f"EXPLAIN (FORMAT JSON) EXECUTE shape({args})")
        generic = _reads_of_jobs(json.loads(generic_raw)[0]["Plan"])
        await conn.execute("RESET plan_cache_mode")
        # The database's share of a request, without HTTP or the gateway around it.
        prepared = await conn.prepare(statement)
        latencies = []
        for _ in range(runs):
            started = time.perf_counter()
            await prepared.fetch(*params)
            latencies.append(time.perf_counter() - started)
    finally:
        await conn.close()
    return PlanCheck(
        text="\n".join(row[0] for row in rows),
        access=_access(reads),
        seq_scan=any(n["Node Type"] == "Seq Scan" for n in reads),
        rows_read=sum(
            int(n["Actual Rows"] * n["Actual Loops"]) + int(n.get("Rows Removed by Filter", 0))
            for n in reads
            if n.get("Relation Name") == "jobs"
        ),
        rows_returned=int(top["Actual Rows"]),
        generic_access=_access(generic),
        generic_seq_scan=any(n["Node Type"] == "Seq Scan" for n in generic),
        db_latencies=latencies,
    )
