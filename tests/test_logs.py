"""Structured logs: the formatters, the request id middleware, and the ids
carried from a request through the worker's run of its tasks."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from app import logs
from app.config import Settings
from app.logs import ContextFilter, JsonFormatter, RequestId, TextFormatter, configure_logging
from tests.api.helpers import upload
from tests.support.gateway import create_key


def _logger_to(stream: io.StringIO, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"tests.logs.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_json_lines_carry_the_fields_the_context_and_the_exception() -> None:
    stream = io.StringIO()
    logger = _logger_to(stream, JsonFormatter())
    request_token = logs.request_id.set("req-42")
    job_token = logs.job_id.set("job_abc")
    try:
        logger.info("two\nlines", extra={"headers": {"authorization": "Bearer sk_secret"}})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("it failed")
    finally:
        logs.job_id.reset(job_token)
        logs.request_id.reset(request_token)
    logger.warning("outside any request")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, failed, outside = (json.loads(line) for line in lines)
    assert first["message"] == "two\nlines"
    assert first["level"] == "INFO" and first["logger"] == logger.name
    assert first["time"].endswith("+00:00")
    assert first["request_id"] == "req-42" and first["job_id"] == "job_abc"
    assert "exception" not in first
    assert "sk_secret" not in stream.getvalue()  # extras such as headers are never written
    assert failed["level"] == "ERROR"
    assert "ValueError: boom" in failed["exception"] and "Traceback" in failed["exception"]
    assert "request_id" not in outside and "job_id" not in outside


def test_text_lines_are_readable_and_tagged() -> None:
    stream = io.StringIO()
    logger = _logger_to(stream, TextFormatter())
    token = logs.job_id.set("job_abc")
    try:
        logger.warning("something happened")
    finally:
        logs.job_id.reset(token)
    line = stream.getvalue().strip()
    assert " WARNING " in line and line.endswith("something happened [job_id=job_abc]")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = saved[0], saved[1]


@pytest.mark.parametrize(
    ("setting", "terminal", "formatter"),
    [
        ("auto", False, JsonFormatter),
        ("auto", True, TextFormatter),
        ("json", True, JsonFormatter),
        ("text", False, TextFormatter),
    ],
)
def test_configure_logging_picks_the_format(
    restore_logging: None,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    terminal: bool,
    formatter: type[logging.Formatter],
) -> None:
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    settings = Settings(_env_file=None, log_format=setting, log_level="DEBUG")  # type: ignore[call-arg]
    configure_logging(settings)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, formatter)
    logging.getLogger("uvicorn.error").warning("through the root handler")
    assert "through the root handler" in stream.getvalue()


def _echo_app() -> RequestId:
    async def show(request: Request) -> PlainTextResponse:
        return PlainTextResponse(logs.request_id.get() or "")

    return RequestId(Starlette(routes=[Route("/", show)]))


@pytest.mark.parametrize("given", ["test-req-1", "A.b_c-9", "x" * 64])
def test_a_well_formed_request_id_is_kept_and_echoed(given: str) -> None:
    with TestClient(_echo_app()) as client:
        response = client.get("/", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given
    assert response.text == given  # the context variable held it during the request


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 65, "semi;colon", "new\\nline"])
def test_a_missing_or_malformed_request_id_is_replaced(given: str | None) -> None:
    headers = {"X-Request-ID": given} if given is not None else {}
    with TestClient(_echo_app()) as client:
        response = client.get("/", headers=headers)
    made = response.headers["x-request-id"]
    assert made != given and made.startswith("req_") and len(made) <= 64
    assert response.text == made
    assert logs.request_id.get() is None  # nothing leaks out of the request


def test_request_and_job_ids_follow_the_job_through_the_worker(
    database_url, make_settings, start_gateway, caplog
):
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(ContextFilter())  # as configure_logging's handler has
    gateway = start_gateway(make_settings(database_url))
    key = create_key(database_url, "acme")
    with gateway.client(key) as client:
        client.headers["X-Request-ID"] = "test-req-1"
        created = upload(client, language="en")
        assert created.status_code == 202, created.text
        assert created.headers["x-request-id"] == "test-req-1"
        job_id = created.json()["id"]
        done = client.get(f"/jobs/{job_id}", params={"wait": 60}).json()
        assert done["status"] == "completed", done

    def finished() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "app.queue.worker" and r.getMessage().endswith(f"of job {job_id} done")
        ]

    deadline = time.monotonic() + 10
    while not finished() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert finished(), [r.getMessage() for r in caplog.records]
    for record in finished():
        assert record.request_id == "test-req-1"  # type: ignore[attr-defined]
        assert record.job_id == job_id  # type: ignore[attr-defined]
    of_job = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert all(r.request_id == "test-req-1" for r in of_job)  # type: ignore[attr-defined]
