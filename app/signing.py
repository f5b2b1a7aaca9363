"""Signed, expiring links: where vendors call us back, and where they fetch uploads.

A link carries ``expires`` and ``sig`` = HMAC-SHA256(key, purpose|job_id|expires).
Nothing is stored per link; the key is shared by every process through the
``SIGNING_SECRET`` setting or, when unset, a key file kept in STORAGE_DIR
(created once, readable only by the gateway's user).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

_KEY_FILE = ".signing-key"


def load_or_create_key(secret: str | None, storage_dir: Path) -> bytes:
    if secret:
        return hashlib.sha256(secret.encode()).digest()
    path = storage_dir / _KEY_FILE
    storage_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when several processes start at once, exactly one creates it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as file:
        file.write(key.hex())
    return key


class LinkSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _signature(self, purpose: str, job_id: str, expires: int) -> str:
        message = f"{purpose}|{job_id}|{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def query(self, purpose: str, job_id: str, ttl_seconds: float) -> str:
        expires = int(time.time() + ttl_seconds)
        return urlencode({"expires": expires, "sig": self._signature(purpose, job_id, expires)})

    def verify(self, purpose: str, job_id: str, expires: str | None, sig: str | None) -> bool:
        """True for an unexpired link made by ``query``; compared in constant time."""
        if not expires or not sig or not expires.isdigit():
            return False
        expected = self._signature(purpose, job_id, int(expires))
        return hmac.compare_digest(expected, sig) and int(expires) >= time.time()
