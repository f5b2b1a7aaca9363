"""Blob storage in a local directory: uploads, downloaded sources, artifacts.

Blobs are written to a temporary name and renamed into place, so a reader never
sees half a file and a crash leaves only a ``.part`` file behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO


class BlobWriter:
    """Writes one blob, counting its size and SHA-256 as it goes.

    ``write`` only buffers (up to ``FLUSH_BYTES``); ``flush`` hands the buffer
    to a thread that hashes and writes it (both release the GIL) and returns
    at once, so the event loop goes on receiving while the disk works. At most
    one buffer is in the thread at a time, which keeps the writes in order and
    the memory per upload under two buffers.
    """

    FLUSH_BYTES = 1024 * 1024

    def __init__(self, final_path: Path) -> None:
        self._final = final_path
        self._part = final_path.with_name(f"{final_path.name}.{uuid.uuid4().hex}.part")
        self._file: BinaryIO | None = None
        self._in_thread: asyncio.Future[None] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._sha256 = hashlib.sha256()
        self.size = 0
        self.head = b""  # the first bytes, for sniffing the format

    def write(self, chunk: bytes) -> None:
        if len(self.head) < 64:
            self.head += chunk[: 64 - len(self.head)]
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self.size += len(chunk)

    @property
    def needs_flush(self) -> bool:
        return self._pending_size >= self.FLUSH_BYTES

    async def flush(self) -> None:
        if not self._pending:
            return
        # The chunks go to the thread as they are: joining them here would copy
        # every byte once more on the event loop.
        chunks, self._pending, self._pending_size = self._pending, [], 0
        await self._wait_for_thread()
        self._in_thread = asyncio.get_running_loop().run_in_executor(None, self._write_out, chunks)

    async def _wait_for_thread(self) -> None:
        if self._in_thread is not None:
            in_thread, self._in_thread = self._in_thread, None
            await in_thread

    def _write_out(self, chunks: list[bytes]) -> None:
        if self._file is None:
            self._final.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._part, "wb")  # noqa: SIM115 (closed in commit/abort)
        for chunk in chunks:
            self._file.write(chunk)
            self._sha256.update(chunk)

    @property
    def sha256(self) -> str:
        """The digest of what was flushed: read it after ``commit``."""
        return self._sha256.hexdigest()

    async def commit(self) -> None:
        await self.flush()
        await self._wait_for_thread()
        await asyncio.to_thread(self._close_and_rename)

    def _close_and_rename(self) -> None:
        if self._file is None:
            self._write_out([])
        assert self._file is not None
        self._file.close()
        os.replace(self._part, self._final)

    def abort(self) -> None:
        self._pending = []
        if self._in_thread is not None and not self._in_thread.done():
            # The thread still holds the file: let it finish, then clean up.
            self._in_thread.add_done_callback(lambda _: self.abort())
            return
        if self._file is not None:
            self._file.close()
            self._part.unlink(missing_ok=True)


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        # Keys are made by the gateway, but a name in one (an artifact's) may come
        # from a vendor: refuse anything that could climb out of the root.
        parts = key.split("/")
        if key.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError("invalid blob key")
        return self.root.joinpath(*parts)

    def writer(self, key: str) -> BlobWriter:
        return BlobWriter(self.path(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
        part.write_bytes(data)
        os.replace(part, path)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        """Delete a folder of blobs (all of one job's files)."""
        shutil.rmtree(self.path(prefix), ignore_errors=True)


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def audio_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}/audio"


def artifact_key(job_id: str, name: str) -> str:
    return f"{job_prefix(job_id)}/artifacts/{name}"
