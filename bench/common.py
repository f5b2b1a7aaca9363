"""Helpers shared by the benchmarks in bench/: audio, processes, memory, percentiles."""

from __future__ import annotations

import argparse
import math
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.gateway import create_key  # noqa: E402
from tests.support.postgres import PostgresServer, admin, free_port, sqlalchemy_url  # noqa: E402


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line, its ``--help`` the script's docstring as written."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def table_row(cells: list[str]) -> str:
    """One line of a Markdown table."""
    return "| " + " | ".join(cells) + " |"


def table_head(columns: list[str], text_columns: int = 1) -> str:
    """A Markdown table's first two lines: the column names, then the alignment row
    (the first ``text_columns`` left-aligned, the numbers after them right-aligned)."""
    alignment = "|" + "---|" * text_columns + "---:|" * (len(columns) - text_columns)
    return table_row(columns) + "\n" + alignment


def multipart_frame(
    fields: dict[str, str], filename: str, boundary: str
) -> tuple[bytes, bytes, str]:
    """What goes around a WAV file in a multipart/form-data body: the head (``fields``
    in order, then the file part's headers), the tail, and the body's Content-Type.
    Apart from the file, for a body streamed from disk."""
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    )
    tail = f"\r\n--{boundary}--\r\n"
    return head.encode(), tail.encode(), f"multipart/form-data; boundary={boundary}"


def multipart_body(
    audio: bytes, fields: dict[str, str], filename: str, boundary: str
) -> tuple[bytes, str]:
    """A whole multipart/form-data body, ``fields`` then the WAV ``audio``, and its
    Content-Type."""
    head, tail, content_type = multipart_frame(fields, filename, boundary)
    return head + audio + tail, content_type


def wav_bytes(size: int) -> bytes:
    """A valid 16 kHz mono 16-bit WAV of about ``size`` bytes (a quiet tone)."""
    samples = (size - 44) // 2
    tone = struct.pack("<32h", *(int(800 * math.sin(i / 32 * 2 * math.pi)) for i in range(32)))
    data = (tone * (samples // 32 + 1))[: samples * 2]
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


def start(
    cmd: list[str], env: dict[str, str], port: int, log: Path, cwd: Path = REPO
) -> subprocess.Popen[bytes]:
    """Start a server and wait until it answers on ``port`` (any status will do)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start: {log.read_text()[-2000:]}")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of latencies in seconds, in milliseconds (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def profile(
    pid: int, out: str, seconds: float | None = None, *, nonblocking: bool = False
) -> subprocess.Popen[bytes]:
    """py-spy on ``pid``: raw collapsed stacks for .txt, speedscope for .json, else SVG.

    Without ``seconds`` it records until sent SIGINT, then writes ``out``.
    ``nonblocking``: sample without pausing the process (pausing it 100 times a
    second slows a busy server down, which profiles another workload)."""
    fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(out).suffix, "flamegraph")
    cmd = [py_spy_command(), "record", "-p", str(pid), "-o", out, "-f", fmt]
    if seconds is not None:
        cmd += ["-d", str(int(seconds))]
    if nonblocking:
        cmd.append("--nonblocking")
    return subprocess.Popen(cmd)


# --- used by create_jobs.py, upload_2gib.py and growth.py ---------------------------

WAV_HEADER_BYTES = 44


def wav_header(data_bytes: int) -> bytes:
    """The 44-byte header of a 16 kHz mono 16-bit PCM WAV with ``data_bytes`` of samples.

    RIFF sizes are unsigned 32-bit: exact up to 4 GiB; past that they say
    0xFFFFFFFF ("unknown: read to the end"), as streamed WAVs do.
    """
    riff = 36 + data_bytes
    header = b"RIFF" + struct.pack("<I", min(riff, 0xFFFFFFFF)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    return header + b"data" + struct.pack("<I", min(data_bytes, 0xFFFFFFFF))


def write_sparse_wav(path: Path, size: int) -> None:
    """A WAV of exactly ``size`` bytes, written in milliseconds: a valid header,
    then silence the filesystem keeps as a hole (reads return zeros)."""
    with path.open("wb") as file:
        file.write(wav_header(size - WAV_HEADER_BYTES))
        file.truncate(size)


def database_dsn(admin_dsn: str, database: str) -> str:
    """The plain postgresql:// DSN (asyncpg's) of ``database`` on ``admin_dsn``'s server."""
    return admin_dsn.rsplit("/", 1)[0] + f"/{database}"


def gateway_env(database_url: str, storage: Path, **settings: str) -> dict[str, str]:
    """The environment of a gateway process: ours, its database and storage folder,
    WARNING logs, and ``settings``."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "STORAGE_DIR": str(storage),
        "LOG_LEVEL": "WARNING",
        **settings,
    }


def serve_gateway(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``stt-gateway serve --no-worker`` (it migrates the database first)."""
    cmd = [sys.executable, "-m", "app.cli", "serve", "--no-worker", "--port", str(port)]
    return start(cmd, env, port, log)


def serve_baseline(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """bench/baseline_server.py; ``env`` needs BASELINE_DSN and BASELINE_STORAGE."""
    cmd = [sys.executable, "-m", "uvicorn", "bench.baseline_server:app", "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    return start(cmd, env, port, log)


@dataclass
class GatewayAndBaseline:
    """The gateway and the baseline, started side by side."""

    gateway_port: int
    baseline_port: int
    gateway_env: dict[str, str]  # to start the gateway again
    api_key: str  # a client's key for the gateway

    @property
    def jobs_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}/jobs"

    @property
    def upload_url(self) -> str:
        return f"http://127.0.0.1:{self.baseline_port}/upload"


def start_gateway_and_baseline(
    server: PostgresServer, work: Path, procs: list[subprocess.Popen[bytes]], **settings: str
) -> GatewayAndBaseline:
    """``serve_gateway`` (with ``settings``) and ``serve_baseline`` under the same uvicorn,
    each with its own database on ``server`` and storage folder in ``work``. Each
    process goes into ``procs`` as it starts, the gateway first, for the caller to stop."""
    admin(server.admin_dsn, "CREATE DATABASE gateway", "CREATE DATABASE baseline")
    gateway_db = sqlalchemy_url(server.admin_dsn, "gateway")
    env = gateway_env(gateway_db, work / "gateway", **settings)
    baseline_env = {
        **os.environ,
        "BASELINE_STORAGE": str(work / "baseline"),
        "BASELINE_DSN": database_dsn(server.admin_dsn, "baseline"),
    }
    gport, bport = free_port(), free_port()
    procs.append(serve_gateway(env, gport, work / "gateway.log"))
    procs.append(serve_baseline(baseline_env, bport, work / "baseline.log"))
    return GatewayAndBaseline(gport, bport, env, create_key(gateway_db, "bench"))


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server (tests/support/postgres.py), removed afterwards."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        server.remove()


def peak_rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB: its memory now, and its peak so far."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")
    }
    return int(values["VmRSS"]) / 1024, int(values["VmHWM"]) / 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset ``pid``'s VmHWM to its current RSS (Linux ``clear_refs`` 5), so the next
    reading is the peak of what follows; False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def py_spy_command() -> str:
    """py-spy from this venv if it is there (the venv's bin is often not on PATH)."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else "py-spy"


def machine() -> str:
    """This machine in one line, for a report."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} cores {cpu}, {mem_kib / 2**20:.0f} GiB, "
        f"Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f} at start"
    )


# --- used by lifecycle.py -----------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (PostgreSQL's backends are the postmaster's children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of these processes and of their children
    that have exited (and been waited for: PostgreSQL's backends, reaped by the
    postmaster). Give a whole tree (``process_tree``): a process already gone
    is skipped, and its time shows in its parent's."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (fields 14 to 17 of proc(5))
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / _TICKS


def postmaster_pid(server: PostgresServer) -> int:
    """The PID of a PostgresServer's postmaster (its backends are its children)."""
    return int((server.dir / "data" / "postmaster.pid").read_text().split()[0])


def summarise_profile(path: Path, top: int = 25, under: str = "(app/") -> str:
    """A py-spy raw (collapsed) profile as text: the share of samples in each of
    the ``top`` frames by own time, and by total time (frames from ``under``)."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            if under in frame:
                total[frame] = total.get(frame, 0) + count
    if not samples:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {samples} samples", "  own time:"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * count / samples:5.1f}%  {frame}")
    lines.append(f"  total time (frames under {under}):")
    for frame, count in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {100 * count / samples:5.1f}%  {frame}")
    return "\n".join(lines)
