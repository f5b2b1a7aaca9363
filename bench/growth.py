"""GET /jobs as the jobs table grows from 1,000 rows to 1,000,000.

    python bench/growth.py [--small 1000] [--large 1000000] [--requests 200]

Starts a PostgreSQL server, applies the migrations, and bulk-loads jobs with
one INSERT … SELECT FROM generate_series per batch: one client owns 90% of the
rows and four others the rest; 90% completed, 7% failed, 2% canceled, the
jobs of the last six hours queued or processing; six providers, unevenly;
created_at spread over 180 days; JSON columns as a typical job has them.

At each size the gateway (`stt-gateway serve --no-worker`) serves the real
HTTP API, and every query shape is timed ``--requests`` times one after the
other, then again from ``--concurrency`` clients at once, as the big client:
the first page, a deep page (reached by following next_cursor), the filters
and a job by id. It prints p50/p99 at both sizes and their ratio (goal: the
p99 at most 2x); for the pages that were shorter at the small size (a filter
that few of 1,000 jobs match), the same again with that length as the limit at
the large size, so both sizes serve the same number of jobs; then EXPLAIN
(ANALYZE, BUFFERS) of each shape at the large size, taken from the SQL that
app/jobs/repository.py really sends (captured from SQLAlchemy as it runs),
and exits 1 if a plan scans the jobs table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import create_engine, create_session_factory
from app.heap import freeze_startup_objects
from app.jobs import repository
from app.jobs.repository import JobFilter
from app.migrate import upgrade_to_head
from bench.common import (
    database_dsn,
    gateway_env,
    machine,
    pct,
    postgres,
    script_parser,
    serve_gateway,
    stop_all,
    table_head,
)
from tests.support.gateway import create_client
from tests.support.postgres import admin, free_port, sqlalchemy_url

PAGE = 50
SPAN = timedelta(days=180)
BIG_CLIENT_SHARE = 0.9
GOAL_RATIO = 2.0

# One batch of jobs n = $1 … $2: $3 the client ids (the big one first), $4 the
# span in seconds, $5 the newest created_at, $6 the big client's share. The
# inner SELECT draws the random numbers once per row (a subquery with volatile
# columns is not flattened), the outer ones derive the columns from them, and
# rows go in in created_at order, as a live table's do. Ids have the shape of
# app/ids.py's: time-ordered, 26 characters of [0-9a-z].
LOAD_BATCH = """
INSERT INTO jobs (id, client_id, provider, fallback_providers, provider_attempts, deadline_at,
    status, provider_job_id, provider_status, language, options, metadata, callback_url,
    source, audio_key, audio_format, error, artifacts, created_at, updated_at, completed_at)
SELECT id, client_id, provider, '[]', '[]', NULL,
    status,
    CASE WHEN status <> 'queued' THEN md5(id) END,
    CASE status WHEN 'completed' THEN 'done' WHEN 'failed' THEN 'error'
        WHEN 'processing' THEN 'running' END,
    CASE WHEN r_misc < 0.6 THEN 'en' WHEN r_misc < 0.85 THEN 'ko' END,
    CASE WHEN r_misc < 0.3 THEN '{"diarize": true}' ELSE '{}' END::json,
    json_build_object('order', n::text, 'customer', 'customer-' || n % 997),
    CASE WHEN r_misc > 0.7 THEN 'https://hooks.example.com/stt/' || n END,
    json_build_object('type', 'upload', 'filename', 'call-' || n || '.wav',
        'content_type', 'audio/wav', 'size', 200000 + n * 7919 % 50000000,
        'sha256', md5(n::text) || md5(id)),
    'jobs/' || id || '/audio',
    CASE WHEN r_misc < 0.8 THEN 'wav' ELSE 'mp3' END,
    CASE WHEN status = 'failed' THEN json_build_object('code', 'provider_error',
        'message', 'the provider could not transcribe the audio', 'retryable', false,
        'provider_detail', json_build_object('status', 422)) END,
    CASE WHEN status = 'completed'
        THEN '[{"name": "words.json", "content_type": "application/json", "size": 18234}]'
        ELSE '[]' END::json,
    created_at,
    coalesce(completed_at, created_at),
    completed_at
FROM (
    SELECT *,
        CASE WHEN status IN ('completed', 'failed', 'canceled')
            THEN created_at + make_interval(secs => 5 + r_misc * 300) END AS completed_at
    FROM (
        SELECT n, r_misc, created_at,
            'job_' || lpad(to_hex((extract(epoch FROM created_at) * 1000)::bigint), 12, '0')
                || substr(md5(n::text), 1, 14) AS id,
            CASE WHEN r_client < $6::float8 THEN ($3::text[])[1]
                ELSE ($3::text[])[2 + floor((r_client - $6) / (1 - $6)
                    * (cardinality($3::text[]) - 1))::int] END AS client_id,
            CASE WHEN r_provider < 0.35 THEN 'openai' WHEN r_provider < 0.60 THEN 'daglo'
                WHEN r_provider < 0.75 THEN 'aimlapi' WHEN r_provider < 0.85 THEN 'klangio'
                WHEN r_provider < 0.93 THEN 'phonexia' ELSE 'infomaniak' END AS provider,
            CASE WHEN created_at > $5::timestamptz - interval '6 hours'
                    THEN CASE WHEN r_status < 0.5 THEN 'queued' ELSE 'processing' END
                WHEN r_status < 0.90 THEN 'completed' WHEN r_status < 0.97 THEN 'failed'
                ELSE 'canceled' END AS status
        FROM (
            SELECT n, random() AS r_client, random() AS r_provider, random() AS r_status,
                random() AS r_misc,
                $5::timestamptz - make_interval(secs => random() * $4::float8) AS created_at
            FROM generate_series($1::bigint, $2::bigint) AS n
        ) AS draws
    ) AS rows
) AS jobs
ORDER BY created_at
"""

BATCH_ROWS = 200_000


async def bulk_load(dsn: str, clients: list[str], first: int, last: int, newest: datetime) -> None:
    """Jobs ``first`` … ``last`` (1-based), in batches, then VACUUM (ANALYZE).

    VACUUM as well as ANALYZE: after a million inserts autovacuum would do it on
    its own (PostgreSQL 13+ vacuums on inserts), and a benchmark that ran before
    it did would measure an unrealistic table.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SELECT setseed({first / (last + 1):.6f})")
        for start in range(first, last + 1, BATCH_ROWS):
            end = min(last, start + BATCH_ROWS - 1)
            await conn.execute(
                LOAD_BATCH, start, end, clients, SPAN.total_seconds(), newest, BIG_CLIENT_SHARE
            )
            print(f"  loaded jobs {start:,} … {end:,}", file=sys.stderr)
        await conn.execute("VACUUM (ANALYZE) jobs")
    finally:
        await conn.close()


async def client_ids(dsn: str, names: list[str]) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, name FROM clients WHERE name = any($1)", names)
    finally:
        await conn.close()
    by_name = {row["name"]: row["id"] for row in rows}
    return [by_name[name] for name in names]


async def sample_ids(dsn: str, client_id: str, count: int) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id FROM jobs WHERE client_id = $1 ORDER BY random() LIMIT $2", client_id, count
        )
    finally:
        await conn.close()
    return [row["id"] for row in rows]


# --- the query shapes -----------------------------------------------------------


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


def find_deep_cursor(client: httpx.Client, pages: int) -> tuple[str | None, int]:
    """Follow next_cursor up to ``pages`` pages in (fewer if the list ends first)."""
    cursor, page = None, 1
    while page < pages:
        params: dict[str, str | int] = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        answer = client.get("/jobs", params=params)
        answer.raise_for_status()
        next_cursor = answer.json()["next_cursor"]
        if next_cursor is None:
            break
        cursor, page = next_cursor, page + 1
    return cursor, page


def request_of(shape: Shape, target: Target, i: int) -> tuple[str, dict[str, str | int]]:
    if shape.by_id:
        return f"/jobs/{target.ids[i % len(target.ids)]}", {}
    params: dict[str, str | int] = {"limit": shape.limit, **shape.query}
    if shape.deep and target.deep_cursor:
        params["cursor"] = target.deep_cursor
    return "/jobs", params


def timed_sequential(client: httpx.Client, shape: Shape, target: Target, n: int) -> list[float]:
    latencies = []
    for i in range(n):
        path, params = request_of(shape, target, i)
        started = time.perf_counter()
        answer = client.get(path, params=params)
        latencies.append(time.perf_counter() - started)
        answer.raise_for_status()
    return latencies


async def timed_concurrent(
    base_url: str, headers: dict[str, str], shape: Shape, target: Target, n: int, workers: int
) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=60
    ) as client:
        counter = iter(range(n))

        async def worker() -> None:
            for i in counter:
                path, params = request_of(shape, target, i)
                started = time.perf_counter()
                answer = await client.get(path, params=params)
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(workers)))
    return latencies


@dataclass
class Timings:
    sequential: list[float]
    concurrent: list[float]


def measure(
    base_url: str, key: str, target: Target, all_shapes: list[Shape], args: argparse.Namespace
) -> dict[str, Timings]:
    headers = {"Authorization": f"Bearer {key}"}
    results = {}
    # This process imports the gateway too: a full GC pass over it would be timed
    # as the query's latency.
    freeze_startup_objects()
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        for shape in all_shapes:
            timed_sequential(client, shape, target, 20)  # warm up
            sequential = timed_sequential(client, shape, target, args.requests)
            concurrent = asyncio.run(
                timed_concurrent(base_url, headers, shape, target, args.requests, args.concurrency)
            )
            results[shape.name] = Timings(sequential, concurrent)
    return results


# --- the query plans ----------------------------------------------------------------


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


# --- the report ----------------------------------------------------------------------


@dataclass
class Stage:
    """Everything measured at one size."""

    size: int
    timings: dict[str, Timings]
    target: Target
    plans: dict[str, PlanCheck]
    # The shapes whose page was shorter at the small size, timed again here with
    # that page's length as the limit: the same work at both sizes.
    same_rows: dict[str, Timings] = field(default_factory=dict)


def print_latencies(small: Stage, large: Stage) -> list[str]:
    """The latency table; returns the shapes whose p99 grew past the goal."""
    s, g = f"{small.size:,}", f"{large.size:,}"
    columns = [f"query ({PAGE} a page)", f"p50 ms {s}", f"p99 ms {s}", f"p50 ms {g}",
               f"p99 ms {g}", "p50 ratio", "p99 ratio", f"conc. p99 {s}", f"conc. p99 {g}",
               "conc. p99 ratio"]  # fmt: skip
    print("\n" + table_head(columns))
    over = []
    for name, at_small in small.timings.items():
        at_large = large.timings[name]
        seq_small = pct(at_small.sequential, 0.5), pct(at_small.sequential, 0.99)
        seq_large = pct(at_large.sequential, 0.5), pct(at_large.sequential, 0.99)
        conc_small, conc_large = pct(at_small.concurrent, 0.99), pct(at_large.concurrent, 0.99)
        if seq_large[1] / seq_small[1] > GOAL_RATIO:
            over.append(name)
        print(
            f"| {name} | {seq_small[0]:.1f} | {seq_small[1]:.1f} | {seq_large[0]:.1f} "
            f"| {seq_large[1]:.1f} | {seq_large[0] / seq_small[0]:.2f} "
            f"| {seq_large[1] / seq_small[1]:.2f} | {conc_small:.1f} | {conc_large:.1f} "
            f"| {conc_large / conc_small:.2f} |"
        )
    return over


def short_pages(small: Stage, all_shapes: list[Shape]) -> list[Shape]:
    """The list shapes whose page at the small size held fewer than ``PAGE`` jobs,
    each with that length as its limit."""
    shorter = []
    for shape in all_shapes:
        rows = min(small.plans[shape.name].rows_returned, PAGE)
        if not shape.by_id and 0 < rows < PAGE:
            shorter.append(replace(shape, limit=rows))
    return shorter


def print_same_rows(small: Stage, large: Stage) -> list[str]:
    """Sequential p50/p99 of the short pages at both sizes with the same limit:
    the growth of the query alone, not of the page it answers. Returns the
    shapes whose p99 grew past the goal even so."""
    over: list[str] = []
    if not large.same_rows:
        return over
    s, g = f"{small.size:,}", f"{large.size:,}"
    columns = ["query, the same rows at both sizes", "rows", f"p50 / p99 ms {s}",
               f"p50 / p99 ms {g}", "p50 ratio", "p99 ratio"]  # fmt: skip
    print("\n" + table_head(columns, text_columns=1))
    for name, at_large in large.same_rows.items():
        at_small = small.timings[name].sequential
        rows = min(small.plans[name].rows_returned, PAGE)
        p_small = pct(at_small, 0.5), pct(at_small, 0.99)
        p_large = pct(at_large.sequential, 0.5), pct(at_large.sequential, 0.99)
        if p_large[1] / p_small[1] > GOAL_RATIO:
            over.append(name)
        print(
            f"| {name} | {rows} | {p_small[0]:.1f} / {p_small[1]:.1f} "
            f"| {p_large[0]:.1f} / {p_large[1]:.1f} | {p_large[0] / p_small[0]:.2f} "
            f"| {p_large[1] / p_small[1]:.2f} |"
        )
    return over


def print_plans(small: Stage, large: Stage) -> list[str]:
    """The plans at the large size in full, then both sizes side by side; returns
    the shapes whose plan at the large size scans the table (at the small one a
    sequential scan of a few pages can be the right plan)."""
    for name, plan in large.plans.items():
        print(f"\n--- {name}, {large.size:,} jobs: EXPLAIN (ANALYZE, BUFFERS)\n{plan.text}")
    s, g = f"{small.size:,}", f"{large.size:,}"
    columns = ["query", f"plan at {g}", f"generic plan at {g}", f"plan at {s}",
               f"rows read / returned {s}", g, f"db p50 / p99 ms {s}", g]  # fmt: skip
    print("\n" + table_head(columns, text_columns=4))
    scanning = []
    for name, plan in large.plans.items():
        before = small.plans[name]
        if plan.seq_scan or plan.generic_seq_scan or "Index" not in plan.access:
            scanning.append(name)
        print(
            f"| {name} | {plan.access} | {plan.generic_access} | {before.access} "
            f"| {before.rows_read} / {before.rows_returned} "
            f"| {plan.rows_read} / {plan.rows_returned} "
            f"| {pct(before.db_latencies, 0.5):.2f} / {pct(before.db_latencies, 0.99):.2f} "
            f"| {pct(plan.db_latencies, 0.5):.2f} / {pct(plan.db_latencies, 0.99):.2f} |"
        )
    return scanning


# --- main ------------------------------------------------------------------------------


def main() -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--small", type=int, default=1_000, help="jobs at the first measure")
    parser.add_argument("--large", type=int, default=1_000_000, help="jobs at the second")
    parser.add_argument("--requests", type=int, default=200, help="per shape and variant")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--deep-pages", type=int, default=300, help="how deep the deep page is")
    args = parser.parse_args()
    host = machine()

    work = Path(tempfile.mkdtemp(prefix="stt-bench-growth-"))
    procs: list[subprocess.Popen[bytes]] = []
    newest = datetime.now(UTC).replace(microsecond=0)
    all_shapes = shapes(newest)
    try:
        with postgres() as server:
            admin(server.admin_dsn, "CREATE DATABASE growth")
            url = sqlalchemy_url(server.admin_dsn, "growth")
            dsn = database_dsn(server.admin_dsn, "growth")
            upgrade_to_head(url)
            names = ["bench-main", *(f"bench-{i}" for i in range(4))]
            api_key = create_client(url, names[0]).api_key
            for name in names[1:]:
                create_client(url, name)
            clients = asyncio.run(client_ids(dsn, names))
            env = gateway_env(url, work / "blobs")
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"

            def stage(size: int, first: int, short: list[Shape]) -> Stage:
                started = time.perf_counter()
                asyncio.run(bulk_load(dsn, clients, first, size, newest))
                print(f"{size:,} jobs loaded in {time.perf_counter() - started:.0f} s",
                      file=sys.stderr)  # fmt: skip
                # A fresh gateway at each size: no plan or pool left from the last one.
                stop_all(procs)
                procs[:] = [serve_gateway(env, port, work / f"gateway-{size}.log")]
                auth = {"Authorization": f"Bearer {api_key}"}
                with httpx.Client(base_url=base_url, headers=auth, timeout=60) as client:
                    cursor, page = find_deep_cursor(client, args.deep_pages)
                ids = asyncio.run(sample_ids(dsn, clients[0], args.requests))
                target = Target(cursor, page, ids)
                print(f"measuring at {size:,} jobs (deep page: {page})", file=sys.stderr)
                timings = measure(base_url, api_key, target, all_shapes, args)
                statements = asyncio.run(repository_statements(url, clients[0], all_shapes, target))
                plans = {
                    name: asyncio.run(explain(dsn, statement, params, args.requests))
                    for name, (statement, params) in statements.items()
                }
                same_rows = measure(base_url, api_key, target, short, args) if short else {}
                return Stage(size, timings, target, plans, same_rows)

            small = stage(args.small, 1, [])
            large = stage(args.large, args.small + 1, short_pages(small, all_shapes))
            print(f"\n{args.requests} requests per query shape, sequential, then "
                  f"{args.concurrency} concurrent clients, as the client with 90% of the jobs; "
                  f"deep page: page {small.target.deep_page} at {small.size:,}, "
                  f"page {large.target.deep_page} at {large.size:,}")  # fmt: skip
            over = print_latencies(small, large)
            over_same_rows = print_same_rows(small, large)
            scanning = print_plans(small, large)
            print(f"\nmachine: {host}")
            if over:
                print(f"p99 more than {GOAL_RATIO:.0f}x at {large.size:,}: {', '.join(over)}")
            if large.same_rows:
                print(f"with the same rows at both sizes, p99 more than {GOAL_RATIO:.0f}x: "
                      f"{', '.join(over_same_rows) or 'none'}")  # fmt: skip
            if scanning:
                print(f"NOT served by an index: {', '.join(scanning)}")
                return 1
            print("every query shape is served by an index (no Seq Scan on jobs)")
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
