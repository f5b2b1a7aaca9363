"""Identifiers and secrets: time-ordered job ids, API keys, webhook secrets."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """``prefix_`` + a ULID-like id: 48 bits of milliseconds, 80 random bits, sortable."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_base32(millis, 10)}{_base32(secrets.randbits(80), 16)}"


_ID = re.compile(r"^[a-z]{2,5}_[0-9a-z]{26}$")


def looks_like_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id made by ``new_id`` (cheap, no lookup)."""
    return bool(_ID.match(value))


def new_api_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    # The key has 256 random bits: a fast hash is enough, a slow KDF would buy nothing.
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
