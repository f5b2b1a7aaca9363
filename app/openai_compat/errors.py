"""Errors on the OpenAI-compatible routes, in OpenAI's shape rather than problem+json.

``{"error": {"message", "type", "param", "code"}}`` with the status OpenAI
would use. :class:`OpenAIRoute` converts whatever a route (or one of its
dependencies, such as the API key check) raises; every other route keeps the
gateway's problem+json handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.requests import ClientDisconnect

from app.errors import (
    ApiError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    field_errors,
)

log = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
# OpenAI's 429 for too many requests; the SDK waits `Retry-After` and sends it again.
RATE_LIMIT_TYPE, RATE_LIMIT_CODE = "requests", "rate_limit_exceeded"
# The OpenAI SDK obeys this header: a refusal or a failed job is not sent again.
NO_RETRY = {"x-should-retry": "false"}


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error envelope, as the OpenAPI document declares it."""

    error: OpenAIErrorDetail


def error_response(exc: OpenAIError) -> JSONResponse:
    body = {
        "error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
    }
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _param(errors: list[dict[str, Any]] | None) -> str | None:
    """The request field an error names: "options.prompt" was the form's "prompt"."""
    if not errors:
        return None
    field = str(errors[0].get("field") or "")
    return field.removeprefix("options.") or None


def from_api_error(exc: ApiError) -> OpenAIError:
    if isinstance(exc, Unauthorized):
        return OpenAIError(401, exc.detail, code="invalid_api_key", headers=exc.headers)
    if isinstance(exc, PayloadTooLarge):
        return OpenAIError(413, exc.detail, param="file", headers=NO_RETRY)
    if isinstance(exc, UnsupportedMediaType):
        # OpenAI answers a file it cannot take with a 400 about the file.
        return OpenAIError(400, exc.detail, param="file", code="invalid_value")
    if isinstance(exc, InvalidRequest):
        return OpenAIError(400, exc.detail, param=_param(exc.errors))
    if isinstance(exc, NotFound):
        return OpenAIError(404, exc.detail)
    if isinstance(exc, RateLimited):
        return OpenAIError(
            429, exc.detail, type=RATE_LIMIT_TYPE, code=RATE_LIMIT_CODE, headers=exc.headers
        )
    if isinstance(exc, ServiceUnavailable):
        return OpenAIError(503, exc.detail, type=SERVER_ERROR, headers=exc.headers)
    kind = INVALID_REQUEST if exc.status < 500 else SERVER_ERROR
    return OpenAIError(exc.status, exc.detail, type=kind, headers=exc.headers)


def convert(exc: Exception) -> OpenAIError:
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, ApiError):
        return from_api_error(exc)
    if isinstance(exc, RequestValidationError):
        errors = field_errors(list(exc.errors()))
        detail = "; ".join(f"{e['field'] or 'request'}: {e['message']}" for e in errors)
        return OpenAIError(400, detail, param=_param(errors))
    if isinstance(exc, (OperationalError, InterfaceError, ConnectionError)):
        # Connection-level failures only; the message may name hosts, so it is not echoed.
        log.warning("database unavailable: %s", type(exc).__name__)
        return OpenAIError(
            503,
            "the database is unavailable; try again shortly",
            type=SERVER_ERROR,
            headers={"Retry-After": "5"},
        )
    log.exception("unhandled error", exc_info=exc)
    return OpenAIError(500, "an unexpected error occurred", type=SERVER_ERROR)


class OpenAIRoute(APIRoute):
    """A route whose errors, its dependencies' included, come in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientDisconnect:
                raise  # no one to answer: app/errors.py counts it and moves on
            except Exception as exc:
                return error_response(convert(exc))

        return handle
