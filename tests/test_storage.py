"""Blob storage: streamed writes hash and count right, and never leave half a file."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from app.storage import LocalStorage


async def test_streamed_blob_is_whole_and_hashed(tmp_path):
    storage = LocalStorage(tmp_path)
    writer = storage.writer("jobs/job_1/audio")
    data = os.urandom(3 * 1024 * 1024 + 123)
    for start in range(0, len(data), 65536):
        writer.write(data[start : start + 65536])
        if writer.needs_flush:
            await writer.flush()
    assert not storage.exists("jobs/job_1/audio")  # not visible before the commit
    await writer.commit()
    assert storage.read_bytes("jobs/job_1/audio") == data
    assert writer.size == len(data)
    assert writer.sha256 == hashlib.sha256(data).hexdigest()
    assert writer.head == data[:64]
    assert [p.name for p in (tmp_path / "jobs/job_1").iterdir()] == ["audio"]


async def test_aborted_blob_leaves_nothing(tmp_path):
    storage = LocalStorage(tmp_path)
    writer = storage.writer("jobs/job_2/audio")
    writer.write(b"x" * (2 * 1024 * 1024))
    await writer.flush()  # a write may still be in its thread
    writer.abort()
    await asyncio.sleep(0.2)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_keys_cannot_leave_the_root(tmp_path):
    storage = LocalStorage(tmp_path)
    for key in ("../etc/passwd", "/etc/passwd", "jobs/../../x", "jobs//x", "jobs/./x"):
        with pytest.raises(ValueError):
            storage.path(key)
    assert storage.path("jobs/job_1/artifacts/midi") == tmp_path / "jobs/job_1/artifacts/midi"


async def test_small_uploads_go_to_the_thread_before_their_last_byte(tmp_path):
    # The first buffer is 128 KiB and each next one twice the last, up to 1 MiB:
    # a 1 MiB upload is mostly written while it arrives, a large one in 1 MiB writes.
    writer = LocalStorage(tmp_path).writer("jobs/job_3/audio")
    flushed_at: list[int] = []
    chunk = b"y" * 65536
    for _ in range(96):  # 6 MiB
        writer.write(chunk)
        if writer.needs_flush:
            flushed_at.append(writer.size // 65536)
            await writer.flush()
    await writer.commit()
    assert flushed_at == [2, 6, 14, 30, 46, 62, 78, 94]  # 128 K, 256 K, 512 K, then 1 MiB
    assert (tmp_path / "jobs/job_3/audio").stat().st_size == 96 * 65536


async def test_discard_waits_for_the_write_in_the_thread(tmp_path):
    storage = LocalStorage(tmp_path)
    writer = storage.writer("jobs/job_5/audio")
    writer.write(os.urandom(16 * 1024 * 1024))  # a write that takes a while in the thread
    await writer.flush()
    assert not writer._in_thread.done()  # still writing: abort() would leave the .part for now
    await writer.discard()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


async def test_discard_after_a_commit_cancelled_in_its_thread_leaves_nothing(tmp_path):
    writer = LocalStorage(tmp_path).writer("jobs/job_6/audio")
    writer.write(os.urandom(8 * 1024 * 1024))
    commit = asyncio.create_task(writer.commit())
    await asyncio.sleep(0.001)
    commit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await commit
    await writer.discard()  # the thread goes on to its rename: discard waits, then removes
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


async def test_a_commit_cancelled_in_its_thread_leaves_nothing(tmp_path):
    storage = LocalStorage(tmp_path)
    writer = storage.writer("jobs/job_4/audio")
    writer.write(os.urandom(8 * 1024 * 1024))  # long enough to be cut off in the thread
    commit = asyncio.create_task(writer.commit())
    await asyncio.sleep(0.001)
    commit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await commit
    writer.abort()  # as the request's cleanup does; the thread may still be writing
    storage.delete_prefix("jobs/job_4")
    await asyncio.sleep(0.5)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []
