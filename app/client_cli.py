"""``stt-gateway transcribe``: a small client of a running gateway's HTTP API."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import httpx

TERMINAL = {"completed", "failed", "canceled"}


class _Progress:
    """A file wrapper that draws an upload progress bar on stderr as httpx reads it."""

    def __init__(self, file: BinaryIO, total: int, enabled: bool) -> None:
        self._file, self._total, self._enabled = file, total, enabled
        self._sent = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._sent += len(chunk)
        if self._enabled:
            done = self._sent / self._total if self._total else 1.0
            bar = "#" * int(done * 30)
            sys.stderr.write(f"\ruploading [{bar:<30}] {done:6.1%} of {self._total / 1e6:.1f} MB")
            if self._sent >= self._total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        return chunk

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _problem_text(resp: httpx.Response) -> str:
    try:
        body: Any = resp.json()
        return f"{resp.status_code} {body.get('title', '')}: {body.get('detail', '')}"
    except ValueError:
        return f"{resp.status_code} {resp.text[:200]}"


def _create(client: httpx.Client, args: argparse.Namespace) -> httpx.Response:
    fields = {"provider": args.provider}
    if args.language:
        fields["language"] = args.language
    if args.url:
        return client.post("/jobs", json={**fields, "source_url": args.url})
    path = Path(args.file)
    with path.open("rb") as file:
        progress = _Progress(file, path.stat().st_size, enabled=sys.stderr.isatty())
        files = {"file": (path.name, progress, "application/octet-stream")}
        return client.post("/jobs", data=fields, files=files)  # type: ignore[arg-type]


def transcribe(args: argparse.Namespace) -> int:
    if bool(args.file) == bool(args.url):
        return _fail("give a FILE or --url, one of the two")
    if args.file and not Path(args.file).is_file():
        return _fail(f"no such file: {args.file}")
    base = args.gateway or os.environ.get("STT_GATEWAY_URL", "http://127.0.0.1:8000")
    api_key = args.api_key or os.environ.get("STT_API_KEY")
    if not api_key:
        return _fail(
            "give --api-key or set STT_API_KEY (create one: stt-gateway keys create --name me)"
        )
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(120.0)) as client:
        try:
            created = _create(client, args)
            if created.status_code != 202:
                return _fail(f"the gateway refused the job: {_problem_text(created)}")
            job = created.json()
            print(f"job {job['id']} {job['status']}", file=sys.stderr)
            deadline = time.monotonic() + args.timeout
            while job["status"] not in TERMINAL and time.monotonic() < deadline:
                wait = max(1, min(30, int(deadline - time.monotonic())))
                polled = client.get(f"/jobs/{job['id']}", params={"wait": wait}, timeout=wait + 30)
                if polled.status_code != 200:
                    return _fail(_problem_text(polled))
                job = polled.json()
            if job["status"] != "completed":
                error = job.get("error") or {}
                detail = f": {error.get('code')}: {error.get('message')}" if error else ""
                return _fail(f"job {job['id']} is {job['status']}{detail}")
            transcript = client.get(f"/jobs/{job['id']}/transcript", params={"format": args.format})
            if transcript.status_code != 200:
                return _fail(_problem_text(transcript))
            sys.stdout.write(
                transcript.text if transcript.text.endswith("\n") else transcript.text + "\n"
            )
            return 0
        except httpx.HTTPError as exc:
            return _fail(f"could not reach the gateway at {base}: {type(exc).__name__}")
