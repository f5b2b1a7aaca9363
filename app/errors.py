"""The error tree of the API and its rendering as problem+json (RFC 9457).

ApiError                   any error a client caused or may see
├── NotFound               404 (also another client's job)
├── Conflict               409 (the job's state forbids it)
├── RequestTimeout         408 (an upload that stalled)
├── PayloadTooLarge        413
├── UnsupportedMediaType   415
├── InvalidRequest         422, with ``errors`` pointing at the fields
├── Unauthorized           401
├── RateLimited            429, with Retry-After (app.limits)
└── ServiceUnavailable     503, with Retry-After
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from app.db import database_unreachable

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_BASE = "https://stt-gateway.dev/problems/"


def problem_type(slug: str) -> str:
    """The ``type`` URI of a kind of problem."""
    return _TYPE_BASE + slug


class ApiError(Exception):
    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class Unauthorized(ApiError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class NotFound(ApiError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(ApiError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(ApiError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class RequestTimeout(ApiError):
    """The client stopped sending its body; the connection is closed after the answer."""

    status, title, slug = 408, "Request timeout", "request-timeout"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class UnsupportedMediaType(ApiError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class InvalidRequest(ApiError):
    status, title, slug = 422, "Invalid request", "invalid-request"


class RateLimited(ApiError):
    status, title, slug = 429, "Too many requests", "rate-limited"

    def __init__(
        self, detail: str, *, retry_after: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after), **(headers or {})})
        self.retry_after = retry_after


class ServiceUnavailable(ApiError):
    status, title, slug = 503, "Service unavailable", "service-unavailable"


class FieldError(BaseModel):
    """One invalid field of a 422 problem."""

    field: str = Field(description="The field's dotted path; empty for the request as a whole")
    message: str
    type: str | None = Field(default=None, description="A short code, e.g. `missing`")


class Problem(BaseModel):
    """The problem+json body (RFC 9457) of every 4xx and 5xx answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": _TYPE_BASE + "invalid-request",
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "language: must be a language tag such as 'en' or 'en-US'",
                    "errors": [
                        {
                            "field": "language",
                            "message": "must be a language tag such as 'en' or 'en-US'",
                            "type": "value_error",
                        }
                    ],
                }
            ]
        }
    )

    type: str = Field(description="A URI naming the kind of problem")
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="For 422: the invalid fields")


PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"  # app.openapi_doc adds the schema


def problem_response_doc(description: str, **extra: Any) -> dict[str, Any]:
    """A ``responses=`` entry of a route: a problem+json answer with this description."""
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        **extra,
    }


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=problem_type(slug), title=title, status=status, detail=detail, errors=errors
    )
    return JSONResponse(
        _as_utf8(body.model_dump(exclude_none=True)),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _as_utf8(value: Any) -> Any:
    """``value`` with any lone surrogate (a client's "\\ud800" echoed in a detail)
    replaced: JSON cannot carry one, and the refusal must still go out."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_as_utf8(k): _as_utf8(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_utf8(v) for v in value]
    return value


def field_errors(loc_errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors as ``{"field", "message", "type"}`` objects."""
    result = []
    for error in loc_errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        result.append(
            {"field": ".".join(loc), "message": error.get("msg", ""), "type": error.get("type")}
        )
    return result


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem_response(
        exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(list(exc.errors()))
    detail = "; ".join(f"{e['field'] or 'request'}: {e['message']}" for e in errors)
    return problem_response(
        422, InvalidRequest.title, detail, slug=InvalidRequest.slug, errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
    headers = dict(exc.headers or {})
    path = request.url.path if len(request.url.path) <= 100 else request.url.path[:100] + "…"
    where = f"{request.method} {path}"
    if exc.status_code == 404:  # only routing raises these: no route matched
        detail = f"there is no {where} in this API (see /docs for its routes)"
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        detail = f"{where} is not allowed; {path} takes {headers['Allow']}"
    return problem_response(
        exc.status_code, title, detail, slug=f"http-{exc.status_code}", headers=headers
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method the path takes (Starlette's 405 names only those of the first route)."""
    routes = request.app.router.routes

    def taken(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] is Match.FULL for route in routes)

    return ", ".join(method for method in _METHODS if taken(method))


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """503 when the database could not be reached; any other database error is a bug."""
    if not database_unreachable(exc):
        return await _unexpected(request, exc)
    # The message may name hosts, so it is not echoed.
    log.warning("database unavailable: %s", type(exc).__name__)
    return problem_response(
        503,
        ServiceUnavailable.title,
        "the database is unavailable; try again shortly",
        slug=ServiceUnavailable.slug,
        headers={"Retry-After": "5"},
    )


# nginx's "client closed request": what metrics count for a request whose client
# left before it was read (the answer reaches no one).
CLIENT_CLOSED_REQUEST = 499


async def _client_gone(_request: Request, _exc: Exception) -> Response:
    log.info("the client closed the connection before its request was read")
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(
        500, "Internal server error", "an unexpected error occurred", slug="internal"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Refused, reset, timed out, the server shutting down: see database_unreachable.
    for unavailable in (DBAPIError, PoolTimeout, ConnectionError, TimeoutError):
        app.add_exception_handler(unavailable, _database_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
