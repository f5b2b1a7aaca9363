"""What the AIML API adapter tests share: the recorded answers of payloads/aimlapi/."""

from __future__ import annotations

from typing import Any

from tests.providers.helpers import recorded


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = recorded("aimlapi", f"{name}.json")
    return data
