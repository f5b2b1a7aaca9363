"""The text of a job form's fields turned into values: JSON objects and name lists.

A form carries everything as text; these give the same values, and the same
refusals (422 naming the field), that a JSON body's parser would.
"""

from __future__ import annotations

import json
from typing import Any

from app.errors import InvalidRequest


def name_list(text: str) -> Any:
    """A form field holding a JSON array, or names separated by commas."""
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except (ValueError, RecursionError):
            names = None
        if names is None or not _is_utf8_text(names):
            raise InvalidRequest(
                "'fallback_providers' is not valid JSON",
                errors=[{"field": "fallback_providers", "message": "invalid JSON", "type": "json"}],
            ) from None
        return names
    return [name.strip() for name in text.split(",") if name.strip()]


def json_object(name: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{name} must be a JSON object: {exc.msg} at position {exc.pos}",
            errors=[{"field": name, "message": "invalid JSON", "type": "json_invalid"}],
        ) from None
    except RecursionError:
        raise InvalidRequest(
            f"{name} is nested too deeply",
            errors=[{"field": name, "message": "nested too deeply", "type": "json_invalid"}],
        ) from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise InvalidRequest(
            f"{name} holds a number too long to read",
            errors=[{"field": name, "message": "number too long", "type": "json_invalid"}],
        ) from None
    if value is None:  # ``null``: not given, as in a JSON body
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"{name} must be a JSON object",
            errors=[{"field": name, "message": "not an object", "type": "dict_type"}],
        )
    if "\\u" in text and not _is_utf8_text(value):
        # json.loads takes a "\ud800" escape that no UTF-8 can hold: the job could
        # then never be rendered (every page listing it would fail), so refuse it
        # here, as the JSON body's parser does.
        raise InvalidRequest(
            f"{name} holds a lone surrogate escape (such as \\ud800), which is not text",
            errors=[{"field": name, "message": "lone surrogate", "type": "json_invalid"}],
        )
    return value


def _is_utf8_text(value: Any) -> bool:
    """Whether ``value`` can be written as UTF-8 (a lone surrogate cannot)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
