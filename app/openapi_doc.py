"""The OpenAPI document, as client generators read it (committed as ``openapi.json``).

FastAPI's own document, with what FastAPI generates globally put right:

* its 422 ``HTTPValidationError`` answers become the problem+json 422 the
  gateway really sends (app.errors), every operation declares the 400, 408
  and 431 answered before any route (app.middleware, app.http_protocol), and
  every upload the 408 of a stalled client;
* ``Problem`` and the request bodies the routes refer to by ``$ref`` (read by
  the gateway itself, not by FastAPI) are added to the components;
* uploads are ``type: string, format: binary``: FastAPI now writes
  ``contentMediaType``, from which openapi-python-client sends files as text;
* the tags are described.

Everything else (operation ids, error answers, examples) is declared at the
routes and models. The document depends on no setting: no server URL, no
list of the enabled providers.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.errors import Problem, problem_response_doc
from app.jobs.endpoints import CREATE_JOB_FORM
from app.jobs.schemas import CreateJobFromUrl

REF_PREFIX = "#/components/schemas/"
_FASTAPI_422_SCHEMAS = ("HTTPValidationError", "ValidationError")

# Models the routes refer to by $ref without FastAPI knowing them.
_REFERENCED_MODELS: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
    (Problem, "serialization"),
    (CreateJobFromUrl, "validation"),
)
_REFERENCED_SCHEMAS: dict[str, dict[str, Any]] = {"CreateJobForm": CREATE_JOB_FORM}

TAGS: list[dict[str, str]] = [
    {"name": "jobs", "description": "Transcription jobs: create, follow, fetch results"},
    {"name": "webhooks", "description": "The signed `job.*` webhooks sent for a job"},
    {"name": "providers", "description": "The enabled speech-to-text providers"},
    {
        "name": "openai-compatible",
        "description": "OpenAI's `/v1/audio/transcriptions`, answered by this gateway's providers",
    },
    {"name": "health", "description": "Liveness, readiness (no API key) and metrics"},
]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's document, built once and cached on the app (``app.openapi = …``)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            webhooks=app.webhooks.routes,
            separate_input_output_schemas=app.separate_input_output_schemas,
        )
        _add_referenced_schemas(doc)
        _webhook_answers(doc)
        _problem_422s(doc)
        _stalled_uploads(doc)
        _transport_errors(doc)
        _server_errors(doc)
        _binary_uploads(doc)
        _describe_tags(doc)
        app.openapi_schema = doc
    return app.openapi_schema


def render(doc: dict[str, Any]) -> str:
    """The committed form: pretty-printed, sorted keys, a trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in doc.get("paths", {}).values() for op in item.values()]


def _add_referenced_schemas(doc: dict[str, Any]) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(_REFERENCED_MODELS, ref_template=REF_PREFIX + "{model}")
    for name, schema in {**defs.get("$defs", {}), **_REFERENCED_SCHEMAS}.items():
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two different schemas are named {name!r} in the document")
    doc["components"]["schemas"] = dict(sorted(schemas.items()))


def _webhook_answers(doc: dict[str, Any]) -> None:
    """A webhook's answer is the receiver's: any 2xx, not FastAPI's 422 for a bad body."""
    for item in doc.get("webhooks", {}).values():
        for op in item.values():
            op["responses"] = {
                "2XX": {"description": "Received; anything else is retried with backoff"}
            }


def _problem_422s(doc: dict[str, Any]) -> None:
    """FastAPI's 422 (declared for any route with parameters) as the gateway answers it."""
    fastapi_422 = {"$ref": REF_PREFIX + "HTTPValidationError"}
    for op in _operations(doc):
        answer = op.get("responses", {}).get("422")
        if answer and answer.get("content", {}).get("application/json", {}).get("schema") == (
            fastapi_422
        ):
            op["responses"]["422"] = problem_response_doc("Invalid parameters")
    schemas = doc["components"]["schemas"]
    removed = {name: schemas.pop(name) for name in _FASTAPI_422_SCHEMAS if name in schemas}
    text = json.dumps(doc)
    if any(f'"{REF_PREFIX}{name}"' in text for name in removed):  # still used: keep them
        schemas.update(removed)
        doc["components"]["schemas"] = dict(sorted(schemas.items()))


def _transport_errors(doc: dict[str, Any]) -> None:
    """What is answered before any route: app.middleware's 400 for a URL with a NUL
    character, app.http_protocol's for a request that is not HTTP, headers too
    slow (408) or too large (431)."""
    for op in _operations(doc):
        answers = op.setdefault("responses", {})
        answers.setdefault(
            "400",
            problem_response_doc("The URL contains a NUL character, or the request is not HTTP"),
        )
        answers.setdefault(
            "408", problem_response_doc("The request's headers did not arrive in time")
        )
        answers.setdefault(
            "431", problem_response_doc("The request's URL and headers are over 64 KiB")
        )


def _server_errors(doc: dict[str, Any]) -> None:
    """app/errors.py's 500 (a bug) and 503 (the database unreachable), which any
    route that reads the database can answer; /v1 declares its own, in OpenAI's shape."""
    retry_after = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    for path, item in doc.get("paths", {}).items():
        if path == "/healthz" or path.startswith("/v1/"):
            continue
        for op in item.values():
            answers = op.setdefault("responses", {})
            answers.setdefault("500", problem_response_doc("An unexpected error (a bug)"))
            answers.setdefault(
                "503",
                problem_response_doc("The database is unavailable", headers=retry_after),
            )


def _stalled_uploads(doc: dict[str, Any]) -> None:
    """An upload that stalls is answered 408 (app.jobs.form), in the shape of the route's 413."""
    for op in _operations(doc):
        too_large = op.get("responses", {}).get("413")
        if too_large and "multipart/form-data" in op.get("requestBody", {}).get("content", {}):
            description = "The upload stalled: nothing arrived for UPLOAD_IDLE_TIMEOUT_SECONDS"
            op["responses"].setdefault("408", {**too_large, "description": description})


def _binary_uploads(node: Any) -> None:
    """``contentMediaType: application/octet-stream`` (an UploadFile) as ``format: binary``."""
    if isinstance(node, dict):
        if node.get("type") == "string" and (
            node.get("contentMediaType") == "application/octet-stream"
        ):
            del node["contentMediaType"]
            node["format"] = "binary"
        for value in node.values():
            _binary_uploads(value)
    elif isinstance(node, list):
        for value in node:
            _binary_uploads(value)


def _describe_tags(doc: dict[str, Any]) -> None:
    used = {tag for op in _operations(doc) for tag in op.get("tags", [])}
    described = {tag["name"] for tag in TAGS}
    doc["tags"] = [tag for tag in TAGS if tag["name"] in used] + [
        {"name": name} for name in sorted(used - described)
    ]
