"""Our /v1/audio/transcriptions against LiteLLM's proxy, side by side, in one run.

    python bench/vs_litellm.py [--requests 256] [--big-requests 64] [--rounds 4]
                               [--json out.json] [--py-spy DIR] [--gateway-env K=V]

Four targets in front of one fake OpenAI-compatible upstream
(bench/fake_openai_upstream.py, answers at once): the upstream itself
("direct"), a bare relay (bench/null_relay.py: what the server stack alone
adds, the floor under any gateway on it), LiteLLM's proxy routing to it as
``openai/whisper-1``, and our gateway (``stt-gateway serve`` with its worker,
on PostgreSQL, the ``openai``
provider). The same client sends the same multipart body (a 1 MiB or 20 MiB
16 kHz mono WAV, ``model=openai/whisper-1``) to each, with 1 and 32
concurrent clients: a warm-up, then rounds that rotate the targets' order so
the machine's noise hits all four alike. Prints, per cell, p50/p99, the
latency each gateway adds over direct (its percentile minus direct's),
throughput, CPU time per request (of the gateway's processes; for ours also
PostgreSQL's), peak memory (VmHWM of the process tree, reset before the
cell), the ratios ours/LiteLLM and floor/LiteLLM. About two minutes on 2 cores.

Every answer must be a 200 whose text is the upstream's, and the upstream
must have had one whole file per request; a target with any error in a cell
gets no latency there. LiteLLM runs from its own venv, bench/.venv-litellm
(made on first use with ``pip install 'litellm[proxy]'``), never from the
gateway's dependencies. Needs PostgreSQL's server binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.heap import freeze_startup_objects
from bench.common import (
    machine,
    multipart_body,
    pct,
    postgres,
    postmaster_pid,
    process_tree,
    py_spy_command,
    reset_peak_rss,
    script_parser,
    stop_all,
    table_head,
    wav_bytes,
)
from bench.fake_openai_upstream import TEXT
from bench.servers import (
    LITELLM_KEY,
    MODEL,
    litellm_venv,
    litellm_version,
    serve_litellm,
    serve_ours,
    serve_relay,
    serve_upstream,
)
from tests.support.gateway import create_key
from tests.support.postgres import admin, free_port, sqlalchemy_url

TARGETS = ("direct", "relay", "litellm", "ours")
# relay: bench/null_relay.py, the floor (what a bare relay on our server stack adds)
GATEWAYS = ("relay", "litellm", "ours")
MIB = 1024 * 1024
SIZES_MIB = (1, 20)
CONCURRENCY = (1, 32)
GOAL_LATENCY_RATIO = 0.5  # ours adds less than half of LiteLLM's latency
GOAL_MEMORY_RATIO = 1.0  # and uses less memory

# --- memory and CPU of a process tree ---


def tree_memory_mib(root: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) summed over the tree, in MiB. The sum of peaks is an upper
    bound when several processes peak at different times."""
    rss = hwm = 0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss / 1024, hwm / 1024


def reset_tree_peak(root: int) -> bool:
    return all([reset_peak_rss(pid) for pid in process_tree(root)])


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of the tree so far, with the children ``root`` has reaped
    (PostgreSQL's backends come and go)."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == root:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy on ``pid`` until SIGINT, as raw collapsed stacks (with thread ids). It
    samples without pausing the process: pausing 100 times a second slows a busy
    server down by several times, which would profile another workload."""
    cmd = [py_spy_command(), "record", "--pid", str(pid), "--output", str(out),
           "--format", "raw", "--threads", "--nonblocking", "--subprocesses"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the client ---


def multipart(audio: bytes) -> tuple[bytes, str]:
    """OpenAI's form, as its SDK sends it: ``model`` then ``file``."""
    return multipart_body(audio, {"model": MODEL}, "audio.wav", "vslitellm5c1e")


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    pid: int | None  # the gateway's process; None for the upstream itself
    cpu_pid: int  # whose CPU time the target's requests cost: the gateway, or the upstream
    db_pid: int | None = None  # PostgreSQL's postmaster, for ours


@dataclass
class Batch:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _answer_is_right(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    try:
        return bool(response.json().get("text") == TEXT)
    except ValueError:
        return False


async def drive(target: Target, body: bytes, requests: int, concurrency: int) -> Batch:
    """``requests`` POSTs of ``body`` from ``concurrency`` workers on one client."""
    # This process imports the gateway too: a full GC pass over it would be timed
    # as the target's latency.
    freeze_startup_objects()
    batch = Batch()
    left = requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                started = time.perf_counter()
                try:
                    response = await client.post(target.url, content=body, headers=target.headers)
                except httpx.HTTPError as exc:
                    batch.errors += 1
                    if len(batch.error_samples) < 3:
                        batch.error_samples.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - started
                if _answer_is_right(response):
                    batch.latencies.append(elapsed)
                else:
                    batch.errors += 1
                    if len(batch.error_samples) < 3:
                        batch.error_samples.append(f"{response.status_code}: {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        batch.seconds = time.perf_counter() - started
    return batch


def upstream_stats(url: str) -> dict[str, int]:
    return dict(httpx.get(f"{url}/stats", timeout=10).json())


# --- a cell: one file size, one concurrency ---


@dataclass
class TargetResult:
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    upstream_requests: int = 0
    upstream_bytes: int = 0
    peak_rss_mib: float | None = None
    cpu_seconds: float = 0.0
    db_cpu_seconds: float = 0.0

    def add(self, batch: Batch, before: dict[str, int], after: dict[str, int]) -> None:
        self.ok += len(batch.latencies)
        self.errors += batch.errors
        self.error_samples += batch.error_samples[: 3 - len(self.error_samples)]
        self.seconds += batch.seconds
        self.latencies += batch.latencies
        self.upstream_requests += after["requests"] - before["requests"]
        self.upstream_bytes += after["bytes"] - before["bytes"]


def run_cell(
    targets: list[Target],
    upstream: str,
    size_mib: int,
    concurrency: int,
    requests: int,
    rounds: int,
    spy_dir: Path | None,
) -> tuple[dict[str, TargetResult], int, int]:
    """Each target's results, the rounds, and the requests per target per round."""
    body, content_type = multipart(wav_bytes(size_mib * MIB))
    for target in targets:
        target.headers["Content-Type"] = content_type
    # Each round's batch has at least one request per worker.
    rounds = max(1, min(rounds, requests // concurrency))
    per_round = -(-requests // rounds)
    warm_up = max(8, concurrency)
    for target in targets:
        asyncio.run(drive(target, body, warm_up, concurrency))
    results = {t.name: TargetResult() for t in targets}
    for target in targets:
        if target.pid is not None:
            reset_tree_peak(target.pid)
    spies = []
    if spy_dir is not None:
        for target in targets:
            if target.pid is not None:
                out = spy_dir / f"{target.name}-{size_mib}mib-c{concurrency}.txt"
                spies.append(spy(target.pid, out))
    for i in range(rounds):
        order = targets[i % len(targets) :] + targets[: i % len(targets)]
        for target in order:
            result = results[target.name]
            before = upstream_stats(upstream)
            cpu = tree_cpu_seconds(target.cpu_pid)
            db_cpu = tree_cpu_seconds(target.db_pid) if target.db_pid else 0.0
            batch = asyncio.run(drive(target, body, per_round, concurrency))
            result.cpu_seconds += tree_cpu_seconds(target.cpu_pid) - cpu
            if target.db_pid:
                result.db_cpu_seconds += tree_cpu_seconds(target.db_pid) - db_cpu
            result.add(batch, before, upstream_stats(upstream))
    for spying in spies:
        spying.send_signal(signal.SIGINT)
        spying.wait()
    for target in targets:
        if target.pid is not None:
            results[target.name].peak_rss_mib = tree_memory_mib(target.pid)[1]
    return results, rounds, per_round


# --- the report ---


def summarise(results: dict[str, TargetResult], size_mib: int, concurrency: int) -> dict[str, Any]:
    """Figures of one cell; a target with errors gets no latency (None)."""
    cell: dict[str, Any] = {"size_mib": size_mib, "concurrency": concurrency, "targets": {}}
    for name, r in results.items():
        clean = r.errors == 0 and r.ok > 0
        forwarded = r.upstream_requests == r.ok + r.errors and (
            r.upstream_bytes >= r.upstream_requests * size_mib * MIB
        )
        cell["targets"][name] = {
            "ok": r.ok,
            "errors": r.errors,
            "error_samples": r.error_samples,
            "p50_ms": pct(r.latencies, 0.5) if clean else None,
            "p99_ms": pct(r.latencies, 0.99) if clean else None,
            "req_per_s": r.ok / r.seconds if clean else None,
            "cpu_ms_per_req": 1000 * r.cpu_seconds / max(1, r.ok + r.errors),
            "db_cpu_ms_per_req": 1000 * r.db_cpu_seconds / max(1, r.ok + r.errors),
            "peak_rss_mib": r.peak_rss_mib,
            "upstream_requests": r.upstream_requests,
            "upstream_saw_every_file": forwarded,
        }
    direct = cell["targets"]["direct"]
    for name in GATEWAYS:
        t = cell["targets"][name]
        for q in ("p50", "p99"):
            mine, base = t[f"{q}_ms"], direct[f"{q}_ms"]
            t[f"added_{q}_ms"] = mine - base if mine is not None and base is not None else None
    ours, theirs = cell["targets"]["ours"], cell["targets"]["litellm"]

    def ratio(key: str, mine: dict[str, Any] = ours) -> float | None:
        a, b = mine[key], theirs[key]
        return a / b if a is not None and b else None

    cell["ratios_ours_over_litellm"] = {
        "added_p50": ratio("added_p50_ms"),
        "added_p99": ratio("added_p99_ms"),
        "req_per_s": ratio("req_per_s"),
        "cpu_per_req": ratio("cpu_ms_per_req"),
        "peak_rss": ratio("peak_rss_mib"),
    }
    floor = cell["targets"]["relay"]
    cell["ratios_relay_over_litellm"] = {
        "added_p50": ratio("added_p50_ms", floor),
        "added_p99": ratio("added_p99_ms", floor),
    }
    return cell


def _f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _cpu(t: dict[str, Any]) -> str:
    own = f"{t['cpu_ms_per_req']:.1f}"
    return f"{own} + {t['db_cpu_ms_per_req']:.1f} PostgreSQL" if t["db_cpu_ms_per_req"] else own


def print_cell(cell: dict[str, Any]) -> None:
    print(f"\n{cell['size_mib']} MiB WAV, {cell['concurrency']} concurrent client(s), "
          f"{cell['requests']} requests per target in {cell['rounds']} rounds\n")  # fmt: skip
    print(table_head(["target", "ok", "errors", "p50 ms", "p99 ms", "added p50 ms",
                      "added p99 ms", "req/s", "CPU ms/req", "peak RSS MiB"]))  # fmt: skip
    labels = {
        "direct": "upstream direct",
        "relay": "bare relay (the floor)",
        "litellm": "LiteLLM proxy",
        "ours": "stt-gateway",
    }
    for name, t in cell["targets"].items():
        print(
            f"| {labels[name]} | {t['ok']} | {t['errors']} | {_f(t['p50_ms'])} "
            f"| {_f(t['p99_ms'])} | {_f(t.get('added_p50_ms'))} | {_f(t.get('added_p99_ms'))} "
            f"| {_f(t['req_per_s'])} | {_cpu(t)} | {_f(t['peak_rss_mib'], 0)} |"
        )
    r = cell["ratios_ours_over_litellm"]
    print(
        f"\nours/LiteLLM: added p50 {_f(r['added_p50'], 2)}, added p99 {_f(r['added_p99'], 2)} "
        f"(goal < {GOAL_LATENCY_RATIO}); throughput {_f(r['req_per_s'], 2)}; "
        f"CPU per request {_f(r['cpu_per_req'], 2)} (without PostgreSQL's); "
        f"peak RSS {_f(r['peak_rss'], 2)} (goal < {GOAL_MEMORY_RATIO})"
    )
    f = cell["ratios_relay_over_litellm"]
    print(f"the floor (bare relay)/LiteLLM: added p50 {_f(f['added_p50'], 2)}, "
          f"added p99 {_f(f['added_p99'], 2)}")  # fmt: skip
    for name, t in cell["targets"].items():
        for sample in t["error_samples"]:
            print(f"  {name} error: {sample}")
        if not t["upstream_saw_every_file"]:
            print(f"  {name}: the upstream did not get one whole file per request "
                  f"({t['upstream_requests']} requests)")  # fmt: skip


# --- main ---


def parse_args() -> argparse.Namespace:
    parser = script_parser(__doc__)
    parser.add_argument("--requests", type=int, default=256,
                        help="requests per target per cell with the 1 MiB file")  # fmt: skip
    parser.add_argument("--big-requests", type=int, default=64,
                        help="requests per target per cell with the 20 MiB file")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds per cell, each running every target in turn")  # fmt: skip
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES_MIB), metavar="MIB")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON")
    parser.add_argument("--py-spy", metavar="DIR",
                        help="profile both gateways in each cell (collapsed stacks)")  # fmt: skip
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for our gateway (e.g. WORKER_CONCURRENCY=32)")  # fmt: skip
    return parser.parse_args()


def start_targets(
    server: Any, litellm: Path, work: Path, extra: dict[str, str], procs: list[Any]
) -> tuple[list[Target], str]:
    """The upstream, LiteLLM and ours started (added to ``procs``); the targets and
    the upstream's URL."""
    admin(server.admin_dsn, "CREATE DATABASE gateway")
    database_url = sqlalchemy_url(server.admin_dsn, "gateway")
    up_port, relay_port, ll_port, our_port = free_port(), free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    procs.append(serve_upstream(up_port, work))
    procs.append(serve_relay(relay_port, upstream, work))
    procs.append(serve_litellm(litellm, ll_port, f"{upstream}/v1", work))
    procs.append(serve_ours(database_url, our_port, f"{upstream}/v1", work, extra))
    key = create_key(database_url, "bench")
    postmaster = postmaster_pid(server)
    path = "/v1/audio/transcriptions"
    up, relay, ll, ours = (proc.pid for proc in procs)
    targets = [
        Target("direct", f"{upstream}{path}", {"Authorization": "Bearer dummy"}, None, up),
        Target("relay", f"http://127.0.0.1:{relay_port}{path}",
               {"Authorization": "Bearer dummy"}, relay, relay),
        Target("litellm", f"http://127.0.0.1:{ll_port}{path}",
               {"Authorization": f"Bearer {LITELLM_KEY}"}, ll, ll),
        Target("ours", f"http://127.0.0.1:{our_port}{path}",
               {"Authorization": f"Bearer {key}"}, ours, ours, postmaster),
    ]  # fmt: skip
    return targets, upstream


def run(args: argparse.Namespace, litellm: Path, work: Path) -> dict[str, Any]:
    extra = dict(item.split("=", 1) for item in args.gateway_env)
    spy_dir = Path(args.py_spy) if args.py_spy else None
    if spy_dir:
        spy_dir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    procs: list[subprocess.Popen[bytes]] = []
    with postgres() as server:
        try:
            targets, upstream = start_targets(server, litellm, work, extra, procs)
            idle = {t.name: tree_memory_mib(t.pid)[0] for t in targets if t.pid is not None}
            host = machine()
            print(f"machine: {host}")
            print(f"LiteLLM {litellm_version()}; RSS after start: bare relay "
                  f"{idle['relay']:.0f} MiB, LiteLLM {idle['litellm']:.0f} MiB, "
                  f"ours {idle['ours']:.0f} MiB")  # fmt: skip
            cells = []
            for size_mib in args.sizes:
                requests = args.requests if size_mib < 10 else args.big_requests
                for concurrency in args.concurrency:
                    started = time.perf_counter()
                    results, rounds, per_round = run_cell(
                        targets, upstream, size_mib, concurrency, requests, args.rounds, spy_dir
                    )
                    cell = summarise(results, size_mib, concurrency)
                    cell["requests"], cell["rounds"] = rounds * per_round, rounds
                    cell["seconds"] = round(time.perf_counter() - started, 1)
                    print_cell(cell)
                    cells.append(cell)
        finally:
            stop_all(procs)
    load_end = os.getloadavg()[0]
    print(f"\nload average (1 min): {load_start:.1f} at start, {load_end:.1f} at end")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/vs_litellm.py", *sys.argv[1:]]),
        "machine": host,
        "platform": platform.platform(),
        "litellm_version": litellm_version(),
        "gateway_settings": {"LOG_LEVEL": "WARNING", "LOCAL_PROVIDER": "false", **extra},
        "rss_after_start_mib": idle,
        "load_average_1min": {"start": load_start, "end": load_end},
        "cells": cells,
    }


def main() -> None:
    args = parse_args()
    litellm = litellm_venv()
    work = Path(tempfile.mkdtemp(prefix="stt-vs-litellm-"))
    try:
        report = run(args, litellm, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
