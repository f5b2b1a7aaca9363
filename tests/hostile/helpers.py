"""Helpers shared by the hostile-input tests: small WAVs, raw HTTP exchanges for
requests httpx will not make, and what a refused request left behind."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.db import create_engine


def wav(seconds: float = 0.25, rate: int = 16000) -> bytes:
    """A complete 16-bit mono WAV of silence: audio the local engine finishes in a moment."""
    data = b"\x00\x00" * int(seconds * rate)
    return wav_header(len(data), riff_size=36 + len(data), rate=rate) + data


def wav_header(data_size: int, *, riff_size: int, rate: int = 16000) -> bytes:
    """The 44-byte header of a 16-bit mono PCM WAV announcing these sizes."""
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_size)
    )


def stored_files(storage_dir: Path) -> list[Path]:
    """Every blob the gateway keeps for jobs (uploads, results, partial ``.part`` writes)."""
    jobs = storage_dir / "jobs"
    return [p for p in jobs.rglob("*") if p.is_file()] if jobs.exists() else []


def count_rows(database_url: str, *tables: str) -> dict[str, int]:
    """How many rows each table holds, read straight from the database."""

    async def count() -> dict[str, int]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return {
                    table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
                    for table in tables
                }
        finally:
            await engine.dispose()

    return asyncio.run(count())


def multipart(boundary: str, *parts: tuple[str, bytes], filename: str = "a.wav") -> bytes:
    """A multipart body; the part named ``file`` is sent as a file called ``filename``."""
    body = b""
    for name, value in parts:
        disposition = f'form-data; name="{name}"'
        if name == "file":
            disposition += f'; filename="{filename}"'
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the end of what was sent to the end of the answer

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """One HTTP/1.1 connection on a plain socket, for requests httpx will not make:
    a lying Content-Length, a body that stops half-way, absurd headers."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._buffer = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request_head(self, method: str, path: str, **headers: str) -> None:
        """Send a request line and headers (names with ``_`` written as ``-``)."""
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def response(self) -> RawResponse:
        started = time.monotonic()
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return RawResponse(int(status_line.split()[1]), headers, body, time.monotonic() - started)

    def closed_by_server(self) -> bool:
        """True when the server closes the connection (within the socket's timeout)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection before answering")
        self._buffer += data
