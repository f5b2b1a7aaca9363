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
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    REPO,
    cpu_seconds,
    machine,
    multipart_body,
    pct,
    postgres,
    postmaster_pid,
    process_tree,
    profile,
    script_parser,
    stop_all,
    table_head,
    table_row,
    wav_bytes,
)
from bench.fake_vendors import VENDOR_SETTINGS, VENDORS
from tests.support.gateway import GatewayProcess
from tests.support.postgres import PostgresServer, admin, free_port, sqlalchemy_url

GOAL_JOBS_PER_SECOND = 300.0
WAV = wav_bytes(8 * 1024)  # a quarter of a second: the upload is not what is measured
BOUNDARY = "lifecycle4b2e"
# What each vendor's job asks for, besides the file and the callback_url.
FIELDS: dict[str, dict[str, str]] = {
    "klangio": {"options": json.dumps({"outputs": ["midi"]})},  # music: no language
    "daglo": {},
    "aimlapi": {},
    "infomaniak": {},
    "phonexia": {"language": "en-US"},  # its default engine needs one
}
TOPOLOGIES = {"A": "1 serve (worker inside)", "B": "2 serve --no-worker + 2 worker"}


# --- the processes --------------------------------------------------------------------


@dataclass
class Stack:
    """Everything one topology runs, and the processes whose CPU is counted."""

    api_urls: list[str] = field(default_factory=list)
    gateways: list[GatewayProcess] = field(default_factory=list)
    others: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    fakes: dict[str, str] = field(default_factory=dict)  # vendor -> base URL
    receiver_url: str = ""

    def gateway_pids(self) -> dict[str, int]:
        pids, numbers = {}, Counter[str]()
        for gateway in self.gateways:
            kind = gateway.args[0]  # serve | worker
            numbers[kind] += 1
            if gateway.proc is not None:
                pids[f"{kind}-{numbers[kind]}"] = gateway.proc.pid
        return pids

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.terminate()
        stop_all(list(self.others.values()))


def start_fakes(stack: Stack, work: Path, callback_delay: float) -> None:
    for vendor in VENDORS:
        log = (work / f"fake-{vendor}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "fake_vendors.py"), vendor,
             "--callback-delay", str(callback_delay)],
            stdout=subprocess.PIPE, stderr=log, cwd=REPO,
        )  # fmt: skip
        stack.others[f"fake-{vendor}"] = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {vendor} fake did not start: see {log.name}")
        stack.fakes.update(json.loads(line))


def create_client(env: dict[str, str]) -> dict[str, str]:
    """``stt-gateway keys create`` (it migrates the database first)."""
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", "--name", "bench"],
        env=env, cwd=REPO, capture_output=True, check=True,
    )  # fmt: skip
    created: dict[str, str] = json.loads(out.stdout)
    return created


def start_receiver(stack: Stack, work: Path, secret: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "webhook_receiver.py"), "--port", str(port)],
        env={**os.environ, "WEBHOOK_SECRET": secret},
        stdout=(work / "receiver.log").open("wb"), stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    stack.others["receiver"] = proc
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/count", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the webhook receiver did not start") from None
            time.sleep(0.1)
    stack.receiver_url = f"http://127.0.0.1:{port}"


def gateway_env(database_url: str, work: Path, stack: Stack, args: argparse.Namespace,
                public_port: int) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "STORAGE_"))}
    env.update(
        DATABASE_URL=database_url,
        STORAGE_DIR=str(work / "storage"),  # shared: a worker reads what a serve stored
        LOG_LEVEL="WARNING",
        ALLOW_PRIVATE_URLS="true",  # the receiver and the fakes are on loopback
        PUBLIC_BASE_URL=f"http://127.0.0.1:{public_port}",
        SIGNING_SECRET=secrets.token_hex(32),  # the same link key in every process
        LOCAL_PROVIDER="false",
        WORKER_CONCURRENCY=str(args.worker_concurrency),
        PROVIDER_MAX_IN_FLIGHT=str(args.worker_concurrency),  # the fakes need no cap
        # A connection for each task in flight and some for the requests: with the
        # default 20 the pool churned (0.26-0.30 new connections per job, against 0.06).
        DATABASE_POOL_SIZE=str(args.worker_concurrency + 8),
    )
    for vendor, url in stack.fakes.items():
        env.update(VENDOR_SETTINGS[vendor](url))
    return env


def start_gateways(topology: str, env: dict[str, str], work: Path, port: int,
                   stack: Stack) -> None:  # fmt: skip
    if topology == "A":
        stack.gateways.append(
            GatewayProcess(env, work / "serve-1.log", "serve", "--port", str(port), port=port)
        )
    else:
        second = free_port()
        stack.gateways += [
            GatewayProcess(env, work / "serve-1.log", "serve", "--no-worker", "--port",
                           str(port), port=port),
            GatewayProcess(env, work / "serve-2.log", "serve", "--no-worker", "--port",
                           str(second), port=second),
            GatewayProcess(env, work / "worker-1.log", "worker"),
            GatewayProcess(env, work / "worker-2.log", "worker"),
        ]  # fmt: skip
    for gateway in stack.gateways:
        gateway.start()
    stack.api_urls = [g.base_url for g in stack.gateways if g.args[0] == "serve"]


# --- the client -------------------------------------------------------------------------


def multipart(vendor: str, callback_url: str) -> bytes:
    fields = {"provider": vendor, "callback_url": callback_url, **FIELDS[vendor]}
    body, _ = multipart_body(WAV, fields, "a.wav", BOUNDARY)
    return body


@dataclass
class Created:
    vendor: str
    started: float  # time.monotonic() when the POST went out
    answered: float


@dataclass
class Creation:
    jobs: dict[str, Created] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[float, float, str]] = field(default_factory=list)  # transport errors


async def create_jobs(
    stack: Stack, api_key: str, count: int, concurrency: int, rate: float = 0.0
) -> Creation:
    """``count`` creates, ``concurrency`` at a time; with ``rate``, job n is not
    sent before n/rate seconds (an open-loop client at a steady pace)."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    bodies = {v: multipart(v, f"{stack.receiver_url}/hook") for v in VENDORS}
    result = Creation()
    numbers = iter(range(count))
    # Idle connections expire before the server's keep-alive timeout (uvicorn: 5 s) can close them
    # under a request just sent (a ReadError).
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2
    )
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        begin = time.monotonic()

        async def one_worker() -> None:
            for n in numbers:
                if rate:
                    await asyncio.sleep(max(0.0, begin + n / rate - time.monotonic()))
                vendor = VENDORS[n % len(VENDORS)]
                url = f"{stack.api_urls[n % len(stack.api_urls)]}/jobs"
                started = time.monotonic()
                try:
                    response = await client.post(url, content=bodies[vendor], headers=headers)
                except httpx.HTTPError as exc:
                    result.errors[type(exc).__name__] += 1
                    result.failures.append((started, time.monotonic(), repr(exc)))
                    continue
                if response.status_code != 202:
                    result.errors[f"{response.status_code} {response.text[:120]}"] += 1
                    continue
                result.jobs[response.json()["id"]] = Created(vendor, started, time.monotonic())

        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
    return result


def wait_for_webhooks(receiver: str, expected: int, stall_seconds: float) -> dict[str, Any]:
    """Wait until ``expected`` terminal events came, or none came for ``stall_seconds``."""
    seen, last_change = -1, time.monotonic()
    while True:
        counts = httpx.get(f"{receiver}/count", timeout=30).json()
        terminal = sum(counts["events"].values())
        if terminal >= expected:
            break
        if terminal != seen:
            seen, last_change = terminal, time.monotonic()
        elif time.monotonic() - last_change > stall_seconds:
            print(f"  no webhook for {stall_seconds:.0f} s: {terminal} of {expected} came")
            break
        time.sleep(0.2)
    records: dict[str, Any] = httpx.get(f"{receiver}/records", timeout=60).json()
    return records


# --- the checks -------------------------------------------------------------------------


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


# --- the report ---------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def report(results: list[dict[str, Any]]) -> None:
    print("\n| topology | jobs | jobs/s end to end | creates/s | create p50/p99 ms "
          "| end to end p50/p99 s | all completed | webhooks missing/dup | vendor submits = jobs |"
          "\n|---|---:|---:|---:|---:|---:|---|---:|---|")  # fmt: skip
    for r in results:
        c = r["checks"]
        completed = c["completed_in_db"] == c["created"] == r["jobs_asked"]
        print(
            f"| {r['topology']}: {r['description']} | {c['created']} | "
            f"{r['jobs_per_second']:.1f} | {r['creates_per_second']:.1f} | "
            f"{r['create_p50_ms']:.0f} / {r['create_p99_ms']:.0f} | "
            f"{_f(r['end_to_end_p50_s'], 2)} / {_f(r['end_to_end_p99_s'], 2)} | "
            f"{'yes' if completed else 'NO ' + json.dumps(c['not_completed_in_db'])} | "
            f"{c['webhooks_missing']} / {c['webhooks_duplicate']} | "
            f"{'yes' if c['vendor_submits_equal_jobs'] else 'NO'} |"
        )
    print()
    for r in results:
        ratio = r["jobs_per_second"] / GOAL_JOBS_PER_SECOND
        print(f"{r['topology']}: {r['jobs_per_second']:.1f} jobs/s end to end = "
              f"{ratio:.2f} of the goal ({GOAL_JOBS_PER_SECOND:.0f} jobs/s)")  # fmt: skip
    if len(results) == 2:
        a, b = results
        print(f"B/A: {b['jobs_per_second'] / a['jobs_per_second']:.2f}")
    for r in results:
        vendors = ", ".join(
            f"{vendor} {p50:.2f}/{p99:.2f}"
            for vendor, (p50, p99) in r["end_to_end_p50_p99_s_by_vendor"].items()
        )
        print(f"{r['topology']}: end to end p50/p99 s by vendor: {vendors}")
    print("\nCPU per job (ms), by process:")
    names = sorted({n for r in results for n in r["cpu_ms_per_job"]})
    print(table_head(["process", *(r["topology"] for r in results)]))
    for name in names:
        print(table_row([name, *(_f(r["cpu_ms_per_job"].get(name)) for r in results)]))
    print(table_row(["all", *(_f(sum(r["cpu_ms_per_job"].values())) for r in results)]))
    for r in results:
        if r["statements_per_job"]:
            per_job = r["statements_per_job"]
            print(f"\n{r['topology']}: SQL statements per job, {sum(per_job.values()):.1f} in all:")
            for kind, n in sorted(per_job.items(), key=lambda kv: -kv[1]):
                print(f"  {n:6.2f}  {kind}")
    for r in results:
        db, done = r["database"], max(r["completed_with_webhook"], 1)
        print(f"{r['topology']}: {db['connections_opened'] / done:.2f} PostgreSQL connections "
              "opened per job (pool churn)")  # fmt: skip
    for r in results:
        c = r["checks"]
        problems = {k: c[k] for k in ("webhooks_unexpected", "webhooks_duplicate_events",
                                      "bad_signatures") if c[k]}  # fmt: skip
        if problems or c["other_events"] or r["creation_errors"]:
            print(f"{r['topology']}: {problems} other events {dict(c['other_events'])} "
                  f"creation errors {r['creation_errors']}")  # fmt: skip
        for vendor, v in c["vendors"].items():
            if not v["accepted"] == v["jobs"] == v["submit_requests"]:
                print(f"{r['topology']}: {vendor} {v}")


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
