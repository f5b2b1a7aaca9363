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
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.heap import freeze_startup_objects
from app.migrate import upgrade_to_head
from bench.common import (
    database_dsn,
    gateway_env,
    machine,
    postgres,
    script_parser,
    serve_gateway,
    stop_all,
)
from bench.growth_load import bulk_load, client_ids, sample_ids
from bench.growth_plans import explain, repository_statements
from bench.growth_report import (
    GOAL_RATIO,
    Stage,
    print_latencies,
    print_plans,
    print_same_rows,
    short_pages,
)
from bench.growth_shapes import PAGE, Shape, Target, Timings, shapes
from tests.support.gateway import create_client
from tests.support.postgres import admin, free_port, sqlalchemy_url

# --- timing the HTTP API -------------------------------------------------------


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
