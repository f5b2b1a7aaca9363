"""An upload once sent to its vendor is written back and dropped from the page cache."""

from __future__ import annotations

import asyncio
import ctypes
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.providers.upload import open_audio
from app.storage import LocalStorage, WriteBacks, write_backs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def disk_dir() -> Iterator[Path]:
    """A folder on the repository's disk: /tmp may be a tmpfs, whose pages never leave."""
    (REPO / "var").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="write-back-", dir=REPO / "var"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def resident_bytes(path: Path) -> int:
    """How much of ``path`` is in the page cache: mincore(2) on a mapping of it
    (mapping touches no page, so it reads the cache as it is)."""
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t] + [ctypes.c_int] * 3 + [ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vector = ctypes.create_string_buffer(pages)
            assert libc.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
            return min(size, sum(byte & 1 for byte in vector.raw) * mmap.PAGESIZE)
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


async def stored(folder: Path, data: bytes) -> Path:
    writer = LocalStorage(folder).writer("jobs/job_1/audio")
    writer.write(data)
    await writer.commit()
    return folder / "jobs/job_1/audio"


async def until_no_write_back_pending() -> None:
    for _ in range(200):
        if write_backs.pending == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{write_backs.pending} write-backs still pending after 10 s")


async def test_the_audio_leaves_the_cache_once_sent_and_stays_whole_on_disk(disk_dir):
    data = os.urandom(4 * 1024 * 1024)
    path = await stored(disk_dir, data)
    assert resident_bytes(path) == len(data)  # just written: all of it in the cache
    async with open_audio(path) as audio:
        assert audio.read() == data
    await until_no_write_back_pending()
    assert resident_bytes(path) == 0
    assert path.read_bytes() == data


async def test_audio_deleted_before_its_write_back_is_no_error(disk_dir):
    path = await stored(disk_dir, b"RIFF" + os.urandom(1024))
    path.unlink()
    write_backs.submit(path)
    await until_no_write_back_pending()
    assert not path.exists()


async def test_past_the_bound_a_blob_is_left_to_the_kernel(disk_dir, monkeypatch):
    # A disk slower than the uploads: the queue does not grow, the blob stays cached.
    monkeypatch.setattr(write_backs, "max_pending", 0)
    data = os.urandom(1024 * 1024)
    path = await stored(disk_dir, data)
    write_backs.submit(path)
    assert write_backs.pending == 0
    await asyncio.sleep(0.3)
    assert resident_bytes(path) == len(data)


async def test_after_shutdown_a_blob_is_left_to_the_kernel(disk_dir):
    # At the interpreter's exit the thread takes no more work: the send must not fail for it.
    late = WriteBacks()
    late._thread.shutdown()
    path = await stored(disk_dir, b"RIFF" + os.urandom(1024))
    late.submit(path)
    assert late.pending == 0
    assert path.read_bytes()[:4] == b"RIFF"
