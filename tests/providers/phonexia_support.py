"""What the Phonexia adapter tests share: the task id and payloads/phonexia/'s recorded bodies."""

from __future__ import annotations

from typing import Any

from tests.providers.helpers import recorded

TASK = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def load(name: str) -> dict[str, Any]:
    body: dict[str, Any] = recorded("phonexia", name)
    return body
