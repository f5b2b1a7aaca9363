"""One 2 GiB upload into POST /jobs, against a minimal server, with curl.

    python bench/upload_2gib.py [--size-mib 2048] [--rounds 3] [--py-spy prof.txt]

Writes a 2 GiB WAV once (a valid header, then silence kept as a sparse hole),
next to the storage folders so both servers write to the same disk. Starts a
PostgreSQL server, the gateway (`stt-gateway serve --no-worker`) and the
baseline (bench/baseline_server.py: a bare endpoint that streams the raw body
to a file and inserts one row) under the same uvicorn, then uploads the file
with `curl -F file=@… -F provider=local` to each in turn, ``rounds`` times.
Prints MiB/s for each, the ratio, the CPU time each server spent, and the
gateway's peak memory (VmHWM, reset before each upload) while it receives.
Each stored upload is deleted after its round so the disk does not fill up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    machine,
    peak_rss_mib,
    postgres,
    profile,
    reset_peak_rss,
    script_parser,
    start_gateway_and_baseline,
    stop_all,
    table_head,
    write_sparse_wav,
)

GOAL_RATIO = 0.8
GOAL_PEAK_MIB = 150


@dataclass
class Upload:
    seconds: float
    cpu_seconds: float  # the server's user + system time during the upload, all threads
    loop_cpu_seconds: float  # of which its main thread's (the event loop's)
    rss_before_mib: float
    peak_mib: float  # VmHWM after a reset, or the highest RSS sampled


@dataclass
class Target:
    name: str
    url: str
    headers: list[str]
    proc: subprocess.Popen[bytes]
    storage: Path
    uploads: list[Upload]


def _ticks(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of the whole process and of its main thread (the event loop)."""
    main_thread = Path(f"/proc/{pid}/task/{pid}/stat")
    return _ticks(Path(f"/proc/{pid}/stat")), _ticks(main_thread)


class RssSampler(threading.Thread):
    """The highest RSS seen every 20 ms: a check on VmHWM, and all there is where
    the kernel refuses to reset VmHWM."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.highest, self._done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.highest = max(self.highest, peak_rss_mib(self.pid)[0])

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.highest


def curl_upload(target: Target, path: Path) -> tuple[dict[str, object], float]:
    """``curl -F``, the way a client would send it; returns the JSON answer and seconds."""
    cmd = [
        "curl", "-sS", "--fail-with-body", "-o", "-", "-w", "\n%{time_total}",
        "-H", "Expect:",  # no 100-continue round trip: the same for both servers
        *target.headers,
        "-F", f"file=@{path};type=audio/wav", "-F", "provider=local", target.url,
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    body, seconds = out.rsplit("\n", 1)
    return json.loads(body), float(seconds)


def measure(target: Target, path: Path, spy_out: str | None) -> None:
    os.sync()  # the last round's dirty pages on disk first: each upload starts even
    pid = target.proc.pid
    rss_before, _ = peak_rss_mib(pid)
    hwm_reset = reset_peak_rss(pid)
    sampler = RssSampler(pid)
    sampler.start()
    spy = None
    if spy_out:
        spy = profile(pid, spy_out)  # until told to stop
        time.sleep(1)  # let py-spy attach
    cpu_before, loop_before = cpu_seconds(pid)
    answer, seconds = curl_upload(target, path)
    cpu_after, loop_after = cpu_seconds(pid)
    sampled = sampler.stop()
    if spy:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on ^C
        spy.wait(timeout=60)
    peak = peak_rss_mib(pid)[1] if hwm_reset else sampled
    target.uploads.append(
        Upload(seconds, cpu_after - cpu_before, loop_after - loop_before, rss_before,
               max(peak, sampled))
    )  # fmt: skip
    check_and_clean(target, answer, path.stat().st_size)


def check_and_clean(target: Target, answer: dict[str, object], size: int) -> None:
    """The upload must have arrived whole; then its file goes, to keep the disk free."""
    if target.name == "gateway":
        source = answer["source"]
        assert isinstance(source, dict) and source["size"] == size, answer
        shutil.rmtree(target.storage / "jobs" / str(answer["id"]))
    else:
        assert int(str(answer["size"])) > size, answer  # the raw body: file + multipart framing
        (target.storage / str(answer["id"])).unlink()


def report(targets: list[Target], size: int, rounds: int, host: str) -> None:
    mib = size / 2**20
    print(f"\none {mib:.0f} MiB WAV per upload, curl -F, {rounds} alternating rounds, worker off\n")
    runs = [f"run {i + 1}" for i in range(rounds)]
    columns = ["MiB/s (all runs)", "server CPU s / upload (event loop)", "peak RSS MiB"]
    print(table_head(["target", *runs, *columns]))
    rates = []
    for target in targets:
        each = [mib / u.seconds for u in target.uploads]
        overall = mib * len(each) / sum(u.seconds for u in target.uploads)
        rates.append(overall)
        cpu = statistics.mean(u.cpu_seconds for u in target.uploads)
        loop_cpu = statistics.mean(u.loop_cpu_seconds for u in target.uploads)
        peak = max(u.peak_mib for u in target.uploads)
        cells = " | ".join(f"{r:.0f}" for r in each)
        print(f"| {target.name} | {cells} | {overall:.0f} | {cpu:.2f} ({loop_cpu:.2f}) "
              f"| {peak:.0f} |")  # fmt: skip
    gateway = targets[0]
    ratio = rates[0] / rates[1]
    peak = max(u.peak_mib for u in gateway.uploads)
    before = max(u.rss_before_mib for u in gateway.uploads)
    cpu_ratio = statistics.mean(u.cpu_seconds for u in targets[1].uploads) / statistics.mean(
        u.cpu_seconds for u in gateway.uploads
    )
    print(f"\nthroughput ratio gateway/baseline: {ratio:.2f} (goal >= {GOAL_RATIO})")
    print(f"bytes per server CPU second, gateway/baseline: {cpu_ratio:.2f} "
          "(the ratio a CPU-bound machine would give)")  # fmt: skip
    print(f"gateway peak memory during an upload (VmHWM): {peak:.0f} MiB "
          f"({before:.0f} MiB RSS before it; goal < {GOAL_PEAK_MIB} MiB)")  # fmt: skip
    print(f"machine: {host}")


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--py-spy", metavar="OUT", help="profile the gateway's first upload")
    args = parser.parse_args()
    size = args.size_mib * 2**20
    host = machine()

    work = Path(tempfile.mkdtemp(prefix="stt-bench-upload-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with postgres() as server:
            servers = start_gateway_and_baseline(
                server, work, procs, MAX_UPLOAD_BYTES=str(size + 2**30)
            )
            targets = [
                Target("gateway", servers.jobs_url,
                       ["-H", f"Authorization: Bearer {servers.api_key}"], procs[0],
                       work / "gateway", []),
                Target("baseline", servers.upload_url, [], procs[1], work / "baseline", []),
            ]  # fmt: skip

            audio = work / "upload.wav"
            write_sparse_wav(audio, size)
            warm_up = work / "warm-up.wav"
            write_sparse_wav(warm_up, 2**20)
            for target in targets:  # first requests: connections, imports, caches
                check_and_clean(target, curl_upload(target, warm_up)[0], 2**20)
            # One full-size upload each, not counted: the first 2 GiB a server
            # writes ran at half speed in every run (whichever server went first).
            for target in targets:
                check_and_clean(target, curl_upload(target, audio)[0], size)
            for round_no in range(args.rounds):
                # Alternate who goes first, so neither always meets a busier disk.
                for target in targets if round_no % 2 == 0 else targets[::-1]:
                    spy = args.py_spy if target is targets[0] and round_no == 0 else None
                    measure(target, audio, spy)
                    print(f"round {round_no + 1}: {target.name} "
                          f"{size / 2**20 / target.uploads[-1].seconds:.0f} MiB/s",
                          file=sys.stderr)  # fmt: skip
            report(targets, size, args.rounds, host)
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
