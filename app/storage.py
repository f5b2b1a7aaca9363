"""Blob storage in a local directory: uploads, downloaded sources, artifacts.

Blobs are written to a temporary name and renamed into place, so a reader never
sees half a file and a crash leaves only a ``.part`` file behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO


class BlobWriter:
    """Writes one blob in chunks, counting its size and SHA-256 as it goes."""

    def __init__(self, final_path: Path) -> None:
        self._final = final_path
        self._part = final_path.with_name(f"{final_path.name}.{uuid.uuid4().hex}.part")
        final_path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self._part, "wb")  # noqa: SIM115 (closed in commit/abort)
        self._sha256 = hashlib.sha256()
        self.size = 0
        self.head = b""  # the first bytes, for sniffing the format

    def write(self, chunk: bytes) -> None:
        if len(self.head) < 64:
            self.head += chunk[: 64 - len(self.head)]
        self._file.write(chunk)
        self._sha256.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def commit(self) -> None:
        self._file.close()
        os.replace(self._part, self._final)

    def abort(self) -> None:
        self._file.close()
        self._part.unlink(missing_ok=True)


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("blob key leaves the storage root")
        return path

    def writer(self, key: str) -> BlobWriter:
        return BlobWriter(self.path(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        writer = self.writer(key)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

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
