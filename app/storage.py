"""Blob storage in a local directory: uploads, downloaded sources, artifacts.

Blobs are written to a temporary name and renamed into place, so a reader never
sees half a file and a crash leaves only a ``.part`` file behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO


class BlobWriter:
    """Writes one blob, counting its size and SHA-256 as it goes.

    ``write`` only buffers (up to ``FLUSH_BYTES``); ``flush`` hands the buffer
    to a thread that hashes and writes it (both release the GIL) and returns
    at once, so the event loop goes on receiving while the disk works. At most
    one buffer is in the thread at a time, which keeps the writes in order and
    the memory per upload under two buffers.

    The first buffers are smaller (``FIRST_FLUSH_BYTES``, doubling): with one
    1 MiB buffer a 1 MiB upload was hashed and written only after its last byte,
    all of it in the request's time; now most of it is done while the rest
    arrives, and a large upload still goes in 1 MiB buffers.
    """

    FIRST_FLUSH_BYTES = 128 * 1024
    FLUSH_BYTES = 1024 * 1024

    def __init__(self, final_path: Path) -> None:
        self._final = final_path
        self._part = final_path.with_name(f"{final_path.name}.{uuid.uuid4().hex}.part")
        self._file: BinaryIO | None = None
        self._renamed = False
        self._in_thread: asyncio.Future[None] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flush_at = self.FIRST_FLUSH_BYTES
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
        return self._pending_size >= self._flush_at

    async def flush(self) -> None:
        if not self._pending:
            return
        # The chunks go to the thread as they are: joining them here would copy
        # every byte once more on the event loop.
        chunks, self._pending, self._pending_size = self._pending, [], 0
        self._flush_at = min(2 * self._flush_at, self.FLUSH_BYTES)
        await self._wait_for_thread()
        self._in_thread = asyncio.get_running_loop().run_in_executor(None, self._write_out, chunks)

    async def _wait_for_thread(self) -> None:
        if self._in_thread is not None:
            # Shielded: a request cancelled here leaves the write running and
            # known, so ``abort`` waits for it before it closes the file.
            await asyncio.shield(self._in_thread)
            self._in_thread = None

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
        # The last buffer, the close and the rename in one trip to a thread.
        chunks, self._pending, self._pending_size = self._pending, [], 0
        await self._wait_for_thread()
        loop = asyncio.get_running_loop()
        self._in_thread = loop.run_in_executor(None, self._write_out_and_rename, chunks)
        await self._wait_for_thread()

    def _write_out_and_rename(self, chunks: list[bytes]) -> None:
        self._write_out(chunks)
        assert self._file is not None
        self._file.close()
        os.replace(self._part, self._final)
        self._renamed = True

    async def discard(self) -> None:
        """``abort``, once the write in the thread (if any) is over: when it
        returns nothing of the blob is left on disk, not even what a commit
        given up on renamed after all. Cancelled while it waits, it leaves the
        clean-up to ``abort``'s callback."""
        try:
            if self._in_thread is not None:
                with contextlib.suppress(Exception):  # a failed write: the blob is dropped
                    await asyncio.shield(self._in_thread)
        finally:
            if self._in_thread is None or self._in_thread.done():
                self._remove_all()
            else:  # cancelled while waiting: the thread's end cleans up
                self.abort()

    def abort(self) -> None:
        self._pending = []
        if self._in_thread is not None and not self._in_thread.done():
            # The thread still holds the file: let it finish, then clean up.
            self._in_thread.add_done_callback(self._abort_when_done)
            return
        if self._file is not None:
            self._file.close()
            self._part.unlink(missing_ok=True)

    def _abort_when_done(self, in_thread: asyncio.Future[None]) -> None:
        if not in_thread.cancelled():
            in_thread.exception()  # a failed write: nothing to report, the blob is dropped
        self._remove_all()

    def _remove_all(self) -> None:
        """With the thread done: the part file, and the blob itself if a commit
        given up on finished its rename after all."""
        self.abort()
        if self._renamed:
            self._final.unlink(missing_ok=True)


class WriteBacks:
    """Writes blobs to disk and drops them from the page cache, in one background thread.

    For a blob read once and kept only in case (an upload, once sent to its
    vendor): its pages would otherwise sit in the cache until memory runs out,
    and each new upload would take fresh pages. Fresh pages are costly on a VM
    that hands free memory back to its host (Firecracker's free page
    reporting): writing a 20 MiB upload took 52 ms of CPU into fresh pages
    against 6 ms into pages just freed. One thread, so a burst of uploads puts
    one flush at a time on the disk; past ``max_pending`` waiting, a blob is
    left to the kernel's own writeback, so a slow disk never makes a queue grow.
    """

    def __init__(self, max_pending: int = 16) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-back")

    def submit(self, path: Path) -> None:
        if not hasattr(os, "posix_fadvise"):  # not on macOS: nothing to drop
            return
        with self._lock:
            if self.pending >= self.max_pending:
                return
            self.pending += 1
        try:
            self._thread.submit(self._write_back, path)
        except RuntimeError:  # the interpreter is shutting down: the kernel will do
            with self._lock:
                self.pending -= 1

    def _write_back(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                # Dirty pages cannot be dropped: written back first, then let go.
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except OSError:
            pass  # deleted meanwhile, or a disk error: the blob stays as it is
        finally:
            with self._lock:
                self.pending -= 1


write_backs = WriteBacks()


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
