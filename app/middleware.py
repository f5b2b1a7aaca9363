"""Refuses request lines no handler should ever see, before any routing.

PostgreSQL cannot store a NUL character in text; rather than let one reach a
query (a 500), a URL that carries one, raw or percent-encoded, is a 400.
No endpoint takes a query parameter more than once, so one given twice
(``status=completed&status=queued``) is a 422 rather than the last one
silently winning.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import problem_response
from app.openai_compat.errors import OpenAIError, error_response

_DETAIL = "the URL contains a NUL character"


class RefuseBadUrls:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            if scope["path"].startswith("/v1/"):  # OpenAI's error shape on its routes
                response = error_response(OpenAIError(400, _DETAIL))
            else:
                response = problem_response(400, "Bad request", _DETAIL, slug="bad-request")
            await response(scope, receive, send)
            return
        repeated = _repeated_parameters(scope) if scope["type"] == "http" else []
        if repeated:
            detail = "query parameters given more than once: " + ", ".join(repeated)
            if scope["path"].startswith("/v1/"):
                response = error_response(OpenAIError(400, detail, param=repeated[0]))
            else:
                response = problem_response(
                    422,
                    "Invalid request",
                    detail,
                    slug="invalid-request",
                    errors=[
                        {"field": name, "message": "given more than once", "type": "repeated"}
                        for name in repeated
                    ],
                )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return any(b"\x00" in part or b"\x00" in unquote_to_bytes(part) for part in (raw_path, query))


def _repeated_parameters(scope: Scope) -> list[str]:
    query: bytes = scope.get("query_string", b"")
    if b"&" not in query:
        return []
    seen: set[str] = set()
    repeated: list[str] = []
    for name, _value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated
