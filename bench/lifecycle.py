"""The whole job lifecycle at scale: creation to verified client webhook.

    python bench/lifecycle.py [--jobs 10000] [--topology A B] [--concurrency 64] [--rate 0]
                              [--worker-concurrency 32] [--json out.json] [--py-spy DIR]
                              [--count-statements] [--keep]

Per topology, on a fresh database of one PostgreSQL server started here:

- the five asynchronous vendors' fakes (bench/fake_vendors.py), one process
  each, answering at once (Klangio and Daglo call the gateway back);
- a client key from ``stt-gateway keys create``, and a webhook receiver
  (bench/webhook_receiver.py) in its own process that verifies every delivery
  with ``standardwebhooks`` and that key's secret;
- A: one ``stt-gateway serve`` (its worker inside); B: two ``serve
  --no-worker`` plus two ``stt-gateway worker``. PUBLIC_BASE_URL (where vendors
  call back) is the first serve process;
- a client (httpx, ``--concurrency`` requests in flight) creating ``--jobs``
  jobs round-robin over the five vendors (alternating between the serve
  processes in B), each a small WAV upload with ``callback_url`` = the receiver.

Measures jobs/s from the first create to the last verified ``job.completed``
webhook, the creation rate alone, the p50/p99 time from create to webhook
(also per vendor), the CPU each process used per job (user + system time from
/proc; PostgreSQL's backends included, those that exited too) and the new
database connections per job. Then checks nothing was lost or doubled: every
job ``completed`` in the database, exactly the created ids got a
``job.completed`` webhook (duplicates counted), and each fake accepted as many
submits as it was sent jobs. ``--count-statements`` logs every SQL statement
and counts them per job, by kind; ``--py-spy DIR`` profiles every gateway
process (raw stacks, for bench.common.summarise_profile or a flame graph).
Needs PostgreSQL's server binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    cpu_seconds,
    machine,
    pct,
    postgres,
    postmaster_pid,
    process_tree,
    profile,
    script_parser,
)
from bench.lifecycle_checks import check, count_statements, database_counts, fake_tallies
from bench.lifecycle_client import Creation, create_jobs, wait_for_webhooks
from bench.lifecycle_report import report
from bench.lifecycle_stack import (
    Stack,
    create_client,
    gateway_env,
    start_fakes,
    start_gateways,
    start_receiver,
)
from tests.support.postgres import PostgresServer, admin, free_port, sqlalchemy_url

TOPOLOGIES = {"A": "1 serve (worker inside)", "B": "2 serve --no-worker + 2 worker"}


# --- one run ----------------------------------------------------------------------------


def measure(creation: Creation, records: dict[str, Any]) -> dict[str, Any]:
    first_hook: dict[str, float] = {}
    for job_id, kind, _, at in records["records"]:
        if kind == "job.completed" and job_id in creation.jobs:
            first_hook[job_id] = min(at, first_hook.get(job_id, at))
    jobs = creation.jobs.values()
    start = min(c.started for c in jobs)
    created_by = max(c.answered for c in jobs)
    last_hook = max(first_hook.values(), default=start)
    end_to_end = [at - creation.jobs[job_id].started for job_id, at in first_hook.items()]
    create_latency = [c.answered - c.started for c in jobs]
    by_vendor: dict[str, list[float]] = {}
    for job_id, at in first_hook.items():
        created = creation.jobs[job_id]
        by_vendor.setdefault(created.vendor, []).append(at - created.started)
    return {
        "completed_with_webhook": len(first_hook),
        "seconds": last_hook - start,
        "jobs_per_second": len(first_hook) / (last_hook - start) if first_hook else 0.0,
        "creates_per_second": len(creation.jobs) / (created_by - start),
        "creation_seconds": created_by - start,
        "create_p50_ms": pct(create_latency, 0.5),
        "create_p99_ms": pct(create_latency, 0.99),
        "end_to_end_p50_s": pct(end_to_end, 0.5) / 1000 if end_to_end else None,
        "end_to_end_p99_s": pct(end_to_end, 0.99) / 1000 if end_to_end else None,
        "end_to_end_max_s": max(end_to_end) if end_to_end else None,
        "end_to_end_p50_p99_s_by_vendor": {
            vendor: (pct(times, 0.5) / 1000, pct(times, 0.99) / 1000)
            for vendor, times in sorted(by_vendor.items())
        },
    }


def run_topology(
    topology: str, server: PostgresServer, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    work = work / topology
    work.mkdir()
    database = f"lifecycle_{topology.lower()}"
    admin(server.admin_dsn, f"CREATE DATABASE {database}")
    dsn = server.admin_dsn.rsplit("/", 1)[0] + f"/{database}"
    stack = Stack()
    spies: dict[str, subprocess.Popen[bytes]] = {}
    try:
        if args.count_statements:  # new connections log every statement they run
            admin(server.admin_dsn, f"ALTER DATABASE {database} SET log_statement = 'all'")
        start_fakes(stack, work, args.callback_delay)
        port = free_port()
        env = gateway_env(sqlalchemy_url(server.admin_dsn, database), work, stack, args, port)
        client = create_client(env)
        start_receiver(stack, work, client["webhook_secret"])
        start_gateways(topology, env, work, port, stack)

        pids = stack.gateway_pids()
        parts = {
            **{name: [pid] for name, pid in pids.items()},
            "postgres": [postmaster_pid(server)],  # and its backends (children)
            **{name: [proc.pid] for name, proc in stack.others.items()},
        }
        trees = {
            name: [p for pid in roots for p in process_tree(pid)] for name, roots in parts.items()
        }
        cpu_before = {name: cpu_seconds(tree) for name, tree in trees.items()}
        client_before = os.times()
        log_offset = (server.dir / "server.log").stat().st_size
        if args.py_spy:
            for name, pid in pids.items():
                out = str(Path(args.py_spy) / f"{topology}-{name}.txt")
                spies[name] = profile(pid, out, nonblocking=True)

        print(f"\n[{topology}] {TOPOLOGIES[topology]}: creating {args.jobs} jobs ...", flush=True)
        creation = asyncio.run(
            create_jobs(stack, client["api_key"], args.jobs, args.concurrency, args.rate)
        )
        t0 = min((c.started for c in creation.jobs.values()), default=0.0)
        for started, ended, error in creation.failures[:10]:
            print(f"  {error} at {started - t0:.1f}-{ended - t0:.1f} s")
        print(f"[{topology}] {len(creation.jobs)} created, errors: {dict(creation.errors)}; "
              "waiting for the webhooks ...", flush=True)  # fmt: skip
        records = wait_for_webhooks(stack.receiver_url, len(creation.jobs), args.stall_seconds)

        client_after = os.times()
        # Again: processes started during the run count from zero (PostgreSQL's
        # new backends), those that ended show in their parent's children time.
        trees = {
            name: [p for pid in roots for p in process_tree(pid)] for name, roots in parts.items()
        }
        cpu_after = {name: cpu_seconds(tree) for name, tree in trees.items()}
        for spy in spies.values():
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        for spy in spies.values():
            spy.wait(timeout=120)
        spies.clear()

        statements = count_statements(server, log_offset) if args.count_statements else {}
        figures = measure(creation, records)
        tallies = fake_tallies(stack)
        for gateway in stack.gateways:  # their backends exit and flush their statistics
            gateway.terminate()
        time.sleep(1)
        db = asyncio.run(database_counts(dsn))
        checks = check(creation, records, db, tallies)
        done = max(figures["completed_with_webhook"], 1)
        cpu = {name: cpu_after[name] - cpu_before[name] for name in parts}
        cpu["client (this script)"] = sum(client_after[:2]) - sum(client_before[:2])
        return {
            "topology": topology,
            "description": TOPOLOGIES[topology],
            "jobs_asked": args.jobs,
            "creation_errors": dict(creation.errors),
            **figures,
            "cpu_ms_per_job": {name: 1000 * s / done for name, s in cpu.items()},
            "cpu_seconds": cpu,
            "statements_per_job": {k: n / done for k, n in statements.items()},
            "checks": checks,
            "database": db,
        }
    finally:
        for spy in spies.values():
            spy.send_signal(2)
            spy.wait(timeout=120)
        stack.stop()


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--topology", nargs="+", choices=sorted(TOPOLOGIES), default=["A", "B"])
    parser.add_argument("--concurrency", type=int, default=64, help="creates in flight")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="creates per second (default: as fast as the gateway takes them); below the "
        "gateway's capacity the end-to-end times are the pipeline's, not a backlog's",
    )
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=32,
        help="WORKER_CONCURRENCY of each worker (also PROVIDER_MAX_IN_FLIGHT); with vendors "
        "that answer at once a task is all CPU: more in flight only queue for the CPU and "
        "overflow the database pool (new connections per job: 0.08 at 16, 0.12 at 32, 0.33 at 48)",
    )
    parser.add_argument(
        "--callback-delay",
        type=float,
        default=0.1,
        help="seconds from a submit to the vendor's callback (Klangio, Daglo)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=60,
        help="give up waiting after this long without a webhook",
    )
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON too")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument(
        "--count-statements",
        action="store_true",
        help="log every SQL statement (log_statement=all) and count them per job; "
        "the logging costs PostgreSQL some time, so use it apart from the timed runs",
    )
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="profile each gateway process over the run (raw stacks, DIR/*.txt)",
    )
    args = parser.parse_args()
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)

    about = machine()
    print(about)
    work = Path(tempfile.mkdtemp(prefix="stt-lifecycle-"))
    results = []
    try:
        with postgres() as server:
            for topology in args.topology:
                results.append(run_topology(topology, server, args, work))
    finally:
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(results)
    if args.json:
        out = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": about,
            "args": vars(args),
            "results": results,
        }
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
