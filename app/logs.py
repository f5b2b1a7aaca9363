"""Structured logs with the standard library: one line per event.

JSON (one object per line) when stderr is not a terminal, readable text when
it is; ``LOG_FORMAT`` forces either. Each line carries the ``request_id`` and
``job_id`` of the work it belongs to, when known: the request id is taken from
(or made for) each HTTP request, stored on the tasks it causes, and restored by
the worker while it runs them.

Only fixed fields are written: never a record's extras, headers or bodies.
Whatever a library puts in a message is scrubbed of credentials on the way
out: uvicorn's access log writes query strings (our signed links carry a
``sig``), httpx logs the URLs it calls, an exception may quote a header.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ids import new_id

if TYPE_CHECKING:
    from app.config import Settings

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_REDACTED = "[redacted]"
# A credential in a query string (also URL-encoded, as in a callback URL given as a parameter).
_SECRET_PARAMETER = re.compile(
    r"((?:\b|%26|%3F)(?:sig|signature|token|api_?key|secret)(?:=|%3D))[^&\s\"'%]+", re.IGNORECASE
)
_BEARER = re.compile(r"(\bBearer\s+)[^\s\"',;]+", re.IGNORECASE)
# The gateway's own API keys and webhook secrets (app.ids), wherever they turn up.
_OWN_KEYS = re.compile(r"\b(?:sk_[A-Za-z0-9_-]{20,}|whsec_[A-Za-z0-9+/=]{20,})")


class Redactor:
    """Cuts credentials out of a log line: known secrets (the settings' keys), link
    signatures and tokens in query strings, client keys, ``Bearer`` credentials."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        # Longest first; short values would mangle ordinary words.
        self._secrets = sorted({s for s in secrets or [] if len(s) >= 8}, key=len, reverse=True)

    @classmethod
    def of(cls, settings: Settings) -> Redactor:
        values = (getattr(settings, name) for name in type(settings).model_fields)
        return cls([v.get_secret_value() for v in values if isinstance(v, SecretStr)])

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        text = _SECRET_PARAMETER.sub(r"\1" + _REDACTED, text)
        text = _OWN_KEYS.sub(_REDACTED, text)
        return _BEARER.sub(r"\1" + _REDACTED, text)


class ContextFilter(logging.Filter):
    """Copies the current request_id and job_id onto each record (None when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id.get()
        return True


def _context(record: logging.LogRecord) -> dict[str, str]:
    values = {
        "request_id": getattr(record, "request_id", None),
        "job_id": getattr(record, "job_id", None),
    }
    return {k: v for k, v in values.items() if v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context, exception."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self._redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
            **_context(record),
        }
        if record.exc_info:
            entry["exception"] = self._redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = self._redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [request_id=… job_id=…]`` for a terminal."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        line = self._redact(super().format(record))
        context = _context(record)
        if not context:
            return line
        first, newline, rest = line.partition("\n")
        tags = " ".join(f"{k}={v}" for k, v in context.items())
        return f"{first} [{tags}]{newline}{rest}"


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger, writing to stderr; uvicorn's loggers go through it."""
    stream = sys.stderr
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    redact = Redactor.of(settings)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


class RequestId:
    """Pure ASGI: take a well-formed ``X-Request-ID`` or make one, keep it in the
    ``request_id`` context variable for the request, and send it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = _given(scope) or new_id("req")
        header = (REQUEST_ID_HEADER.lower().encode(), value.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != REQUEST_ID_HEADER.lower().encode()
                ]
                message["headers"] = [*headers, header]
            await send(message)

        token = request_id.set(value)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def _given(scope: Scope) -> str | None:
    name = REQUEST_ID_HEADER.lower().encode()
    for key, raw in scope.get("headers", []):
        if key.lower() == name:
            value = raw.decode("latin-1")
            return value if _WELL_FORMED.fullmatch(value) else None
    return None
