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
