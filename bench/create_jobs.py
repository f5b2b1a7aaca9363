"""POST /jobs against a minimal baseline, side by side, in one run.

    python bench/create_jobs.py [--seconds 15] [--concurrency 32] [--big-mib 1024]

Starts a PostgreSQL server, the gateway (`stt-gateway serve --no-worker`) and
the baseline (bench/baseline_server.py) under the same uvicorn, then drives
both with the same client: `concurrency` workers uploading the same 1 MiB WAV
in multipart, in alternating rounds. Prints throughput, p50/p99 and the
ratios, then the gateway's peak memory (VmHWM) while it receives one big
upload. Needs PostgreSQL's server binaries (as scripts/test.sh installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    multipart_body,
    multipart_frame,
    pct,
    peak_rss_mib,
    postgres,
    profile,
    script_parser,
    serve_gateway,
    start_gateway_and_baseline,
    stop_all,
    table_head,
    wav_bytes,
)
from tests.support.postgres import PostgresServer


@dataclass
class Round:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0


async def drive(
    url: str, headers: dict[str, str], body: bytes, concurrency: int, seconds: float
) -> Round:
    result = Round()
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one_worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                if response.status_code == 202:
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def big_upload(url: str, headers: dict[str, str], path: Path) -> tuple[int, float]:
    head, tail, content_type = multipart_frame({}, "big.wav", "bigboundary91c2")
    size = path.stat().st_size

    def body():  # type: ignore[no-untyped-def]
        yield head
        with path.open("rb") as file:
            while chunk := file.read(1024 * 1024):
                yield chunk
        yield tail

    all_headers = {
        **headers,
        "Content-Type": content_type,
        "Content-Length": str(len(head) + size + len(tail)),
    }
    started = time.perf_counter()
    response = httpx.post(url, content=body(), headers=all_headers, timeout=600)
    return response.status_code, time.perf_counter() - started


def write_big_wav(path: Path, mib: int) -> None:
    """A WAV of ``mib`` MiB (its size field says "unknown", as streamed WAVs do)."""
    block = wav_bytes(64 * 1024 * 1024)
    with path.open("wb") as file:
        file.write(block[:4] + struct.pack("<I", 0xFFFFFFFF) + block[8:])
        for _ in range(mib // 64 - 1):
            file.write(block[44:])


def report(rounds: dict[str, list[Round]], args: argparse.Namespace) -> None:
    print(f"\n{args.concurrency} concurrent clients, 1 MiB WAV uploads, {args.rounds} "
          f"alternating rounds of {args.seconds:.0f} s each, worker off\n")  # fmt: skip
    print(table_head(["target", "uploads/s", "p50 ms", "p99 ms", "errors"]))
    summary = []
    for name, results in rounds.items():
        latencies = [x for r in results for x in r.latencies]
        rate = sum(len(r.latencies) for r in results) / sum(r.seconds for r in results)
        p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
        summary.append((rate, p50, p99))
        errors = sum(r.errors for r in results)
        print(f"| {name} | {rate:.1f} | {p50:.0f} | {p99:.0f} | {errors} |")
    (g_rate, g50, g99), (b_rate, b50, b99) = summary
    print(f"\nthroughput ratio gateway/baseline: {g_rate / b_rate:.2f} (goal >= 0.70)")
    print(f"latency ratio gateway/baseline: p50 {g50 / b50:.2f}, p99 {g99 / b99:.2f}")


def compare(
    args: argparse.Namespace,
    server: PostgresServer,
    work: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """The rounds of uploads side by side, then one big upload into each server."""
    servers = start_gateway_and_baseline(server, work, procs)
    auth = {"Authorization": f"Bearer {servers.api_key}"}

    body, content_type = multipart_body(
        wav_bytes(1024 * 1024), {"provider": "local"}, "a.wav", "benchboundary7f3a"
    )
    targets = {
        "gateway POST /jobs": (servers.jobs_url, {**auth, "Content-Type": content_type}),
        "baseline (stream to disk + 1 row)": (servers.upload_url, {"Content-Type": content_type}),
    }
    for url, headers in targets.values():  # warm both up
        asyncio.run(drive(url, headers, body, 4, 2))
    rounds: dict[str, list[Round]] = {name: [] for name in targets}
    for _ in range(args.rounds):
        for (name, (url, headers)), proc in zip(targets.items(), procs, strict=True):
            spy = None
            if args.py_spy and proc is procs[0] and not rounds[name]:
                spy = profile(proc.pid, args.py_spy, args.seconds)
            result = asyncio.run(drive(url, headers, body, args.concurrency, args.seconds))
            rounds[name].append(result)
            if spy:
                spy.wait()
    report(rounds, args)

    # One big upload into a freshly started gateway, for its peak memory.
    procs[0].terminate()
    procs[0].wait()
    procs[0] = serve_gateway(servers.gateway_env, servers.gateway_port, work / "gateway2.log")
    big = work / "big.wav"
    write_big_wav(big, args.big_mib)
    rss_before, _ = peak_rss_mib(procs[0].pid)
    status, seconds = big_upload(servers.jobs_url, auth, big)
    _, peak = peak_rss_mib(procs[0].pid)
    b_status, b_seconds = big_upload(servers.upload_url, {}, big)
    mib = big.stat().st_size / 2**20
    print(
        f"\none {mib:.0f} MiB upload: gateway {status} in {seconds:.1f} s "
        f"({mib / seconds:.0f} MiB/s), baseline {b_status} in {b_seconds:.1f} s "
        f"({mib / b_seconds:.0f} MiB/s); throughput ratio {b_seconds / seconds:.2f}"
    )
    print(f"gateway memory: {rss_before:.0f} MiB RSS before the upload, "
          f"peak (VmHWM) {peak:.0f} MiB (goal < 150 MiB)")  # fmt: skip


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--py-spy", metavar="OUT", help="profile the gateway's first round")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stt-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with postgres() as server:
            try:
                compare(args, server, work, procs)
            finally:
                stop_all(procs)  # before PostgreSQL stops under them
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
