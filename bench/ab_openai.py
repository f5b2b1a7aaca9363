"""Two versions of the gateway's OpenAI route side by side: a change's ratio, in one run.

    python bench/ab_openai.py --base REV [--mib 1] [--requests 200] [--rounds 8]

Checks ``REV`` out into a temporary git worktree (A) beside this checkout (B),
starts both as ``stt-gateway serve`` on one PostgreSQL in front of one fake
OpenAI-compatible upstream (bench/fake_openai_upstream.py), and posts the same
multipart body to the upstream directly, to A and to B from one client, in
rounds whose order alternates. Prints, per side, the medians over the rounds
of the latency added over the direct call (p50, p99) and of the CPU time per
request of the gateway process, and the ratios B/A. The machine's noise moves
both sides alike; read the ratios. Needs PostgreSQL's server binaries and git.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    REPO,
    cpu_seconds,
    machine,
    pct,
    postgres,
    script_parser,
    stop_all,
    table_head,
    table_row,
    wav_bytes,
)
from bench.servers import serve_ours, serve_upstream
from bench.vs_litellm import Target, drive, multipart
from tests.support.gateway import create_key
from tests.support.postgres import admin, free_port, sqlalchemy_url


def run(base: str, mib: float, requests: int, rounds: int, clients: int, work: Path) -> None:
    checkout = work / "base"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(checkout), base],
        check=True,
        capture_output=True,
    )
    procs: list[Any] = []
    try:
        with postgres() as server:
            admin(server.admin_dsn, "CREATE DATABASE gateway")
            database_url = sqlalchemy_url(server.admin_dsn, "gateway")
            up_port = free_port()
            procs.append(serve_upstream(up_port, work))
            upstream = f"http://127.0.0.1:{up_port}"
            a_port, b_port = free_port(), free_port()
            for side in ("A", "B"):
                (work / side).mkdir()
            a = serve_ours(database_url, a_port, f"{upstream}/v1", work / "A", {}, checkout)
            b = serve_ours(database_url, b_port, f"{upstream}/v1", work / "B", {})
            procs += [a, b]
            key = create_key(database_url, "bench")
            body, content_type = multipart(wav_bytes(int(mib * 1024 * 1024)))
            path = "/v1/audio/transcriptions"
            ours = {"Authorization": f"Bearer {key}", "content-type": content_type}
            targets = {
                "direct": Target("direct", f"{upstream}{path}",
                                 {"Authorization": "Bearer dummy", "content-type": content_type},
                                 None, procs[0].pid),
                "A": Target("A", f"http://127.0.0.1:{a_port}{path}", ours, a.pid, a.pid),
                "B": Target("B", f"http://127.0.0.1:{b_port}{path}", ours, b.pid, b.pid),
            }  # fmt: skip
            for target in targets.values():  # warm-up: connections, caches, prepared statements
                asyncio.run(drive(target, body, 20, clients))
            p50: dict[str, list[float]] = {name: [] for name in targets}
            p99: dict[str, list[float]] = {name: [] for name in targets}
            cpu: dict[str, list[float]] = {name: [] for name in targets}
            for round_no in range(rounds):
                order = list(targets) if round_no % 2 == 0 else list(reversed(targets))
                for name in order:
                    target = targets[name]
                    before = cpu_seconds([target.cpu_pid])
                    batch = asyncio.run(drive(target, body, requests, clients))
                    if batch.errors:
                        raise SystemExit(f"{name}: {batch.errors} errors: {batch.error_samples}")
                    cpu[name].append((cpu_seconds([target.cpu_pid]) - before) / requests * 1000)
                    p50[name].append(pct(batch.latencies, 0.5))
                    p99[name].append(pct(batch.latencies, 0.99))
    finally:
        stop_all(procs)
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(checkout)],
            capture_output=True,
        )

    def added(values: dict[str, list[float]], side: str) -> float:
        return statistics.median(x - d for x, d in zip(values[side], values["direct"], strict=True))

    result = {
        side: (added(p50, side), added(p99, side), statistics.median(cpu[side]))
        for side in ("A", "B")
    }
    print(f"{machine()}\nA = {base}, B = this checkout; {mib:g} MiB, {clients} client(s), "
          f"{rounds} rounds of {requests} requests\n")  # fmt: skip
    print(table_head(["side", "added p50 ms", "added p99 ms", "CPU ms/request"]))
    for side, (a50, a99, c) in result.items():
        print(table_row([side, f"{a50:.2f}", f"{a99:.2f}", f"{c:.2f}"]))
    (a50, a99, ac), (b50, b99, bc) = result["A"], result["B"]
    print(f"\nB/A: added p50 {b50 / a50:.2f}, added p99 {b99 / a99:.2f}, CPU {bc / ac:.2f}")


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--mib", type=float, default=1.0, help="size of the WAV")
    parser.add_argument("--requests", type=int, default=200, help="requests per side per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=1, help="concurrent requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stt-ab-") as work:
        run(args.base, args.mib, args.requests, args.rounds, args.clients, Path(work))


if __name__ == "__main__":
    main()
