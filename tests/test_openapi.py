"""The OpenAPI document: committed as openapi.json, and clean enough to generate clients from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.openapi_doc import render
from tests.support.gateway import REPO

COMMITTED = REPO / "openapi.json"
REGENERATE = "run `stt-gateway openapi --output openapi.json` and commit the result"
PROBLEM = {"$ref": "#/components/schemas/Problem"}
OPENAI_TAG = "openai-compatible"  # POST /v1/audio/transcriptions answers as OpenAI's API does


def served(**settings: Any) -> dict[str, Any]:
    """GET /openapi.json of an app built with these settings (no lifespan: no database)."""
    app = create_app(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    answer = TestClient(app).get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return served()


def operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]


def test_committed_openapi_json_is_what_the_app_serves(doc):
    assert COMMITTED.is_file(), f"openapi.json is missing: {REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == render(doc), (
        f"openapi.json differs from the document the app serves: {REGENERATE}"
    )


def test_the_command_writes_the_committed_form(tmp_path: Path, doc):
    out = tmp_path / "openapi.json"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "openapi", "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PUBLIC_BASE_URL": "https://stt.example.com"},
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == render(doc)
    assert out.read_text(encoding="utf-8").endswith("}\n")


def test_the_document_depends_on_no_setting(doc):
    other = served(
        public_base_url="https://stt.example.com",
        local_provider=False,
        daglo_api_key="k",
        klangio_api_key="k",
        phonexia_base_url="http://phonexia.internal:8600",
        openai_api_key="k",
    )
    assert other == doc
    assert "servers" not in doc


def test_every_operation_has_a_unique_operation_id_and_a_declared_tag(doc):
    ids = []
    declared = {tag["name"] for tag in doc["tags"]}
    for name, op in operations(doc):
        assert op.get("operationId"), f"{name} has no operationId"
        assert op.get("tags"), f"{name} has no tag"
        assert set(op["tags"]) <= declared, name
        ids.append(op["operationId"])
    assert len(ids) == len(set(ids))
    assert {"healthz", "readyz", "create_job", "get_job", "get_transcript"} <= set(ids)


def test_every_error_answer_is_problem_json_with_a_schema(doc):
    for name, op in operations(doc):
        for status, answer in op["responses"].items():
            if status.startswith("2"):
                continue
            assert answer.get("description"), f"{name} {status}"
            # OpenAI's error envelope, as its SDK expects, but for the 431 that the HTTP
            # layer answers before any route is known.
            if OPENAI_TAG in op["tags"] and status != "431":
                content = answer.get("content", {})
                assert content.get("application/json", {}).get("schema"), f"{name} {status}"
                continue
            assert answer.get("content") == {"application/problem+json": {"schema": PROBLEM}}, (
                f"{name} answers {status} without the problem+json schema"
            )
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert problem["examples"]


def test_every_authenticated_operation_declares_401(doc):
    public = set()
    for name, op in operations(doc):
        if op.get("security"):
            assert "401" in op["responses"], f"{name} needs an API key but declares no 401"
        else:
            assert "401" not in op["responses"], name
            public.add(name)
    assert public == {"GET /healthz", "GET /readyz"}


def test_routes_declare_the_errors_they_answer(doc):
    paths = doc["paths"]
    assert {"401", "413", "415", "422"} <= set(paths["/jobs"]["post"]["responses"])
    assert "409" in paths["/jobs/{job_id}/cancel"]["post"]["responses"]
    assert "409" in paths["/jobs/{job_id}/transcript"]["get"]["responses"]
    for path, item in paths.items():
        if "{job_id}" in path:
            for method, op in item.items():
                assert "404" in op["responses"], f"{method.upper()} {path}"
    assert "503" in paths["/readyz"]["get"]["responses"]


def test_every_operation_that_reads_the_database_declares_500_and_503(doc):
    # app/errors.py answers an unexpected error with 500 and an unreachable
    # database with 503 and Retry-After, on every route but the liveness check.
    for name, op in operations(doc):
        if name == "GET /healthz":
            assert "503" not in op["responses"]
            continue
        assert {"500", "503"} <= set(op["responses"]), name
    unavailable = doc["paths"]["/jobs"]["get"]["responses"]["503"]
    assert "Retry-After" in unavailable["headers"]


def test_every_operation_declares_what_the_http_layer_answers(doc):
    # app.http_protocol answers before any route: not HTTP, headers too slow, too large.
    for name, op in operations(doc):
        assert {"400", "408", "431"} <= set(op["responses"]), name


def test_the_client_webhooks_are_described(doc):
    assert set(doc["webhooks"]) == {"job.completed", "job.failed", "job.canceled"}
    for event, item in doc["webhooks"].items():
        op = item["post"]
        headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}, event
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/WebhookPayload"}
        assert "HMAC-SHA256" in op["description"]
    payload = doc["components"]["schemas"]["WebhookPayload"]
    assert set(payload["required"]) == {"type", "timestamp", "data"}
    assert payload["properties"]["type"]["enum"] == ["job.completed", "job.failed", "job.canceled"]


def test_fastapi_validation_error_is_replaced_everywhere(doc):
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text
    assert "#/components/schemas/ValidationError" not in text
    for name, op in operations(doc):
        if "422" in op["responses"] and OPENAI_TAG not in op["tags"]:
            assert op["responses"]["422"]["content"] == {
                "application/problem+json": {"schema": PROBLEM}
            }, name


def test_internal_routes_are_not_in_the_document(doc):
    for path in doc["paths"]:
        assert not path.startswith(("/callbacks", "/media")), path


def test_create_job_body_is_described_with_a_binary_file(doc):
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/jobs"]["post"]["requestBody"]
    assert "A body is required" in body["description"]  # see _CREATE_BODY on `required`
    multipart = body["content"]["multipart/form-data"]
    assert multipart["schema"] == {"$ref": "#/components/schemas/CreateJobForm"}
    form = schemas["CreateJobForm"]
    assert form["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": form["properties"]["file"]["description"],
    }
    assert {"source_url", "provider", "language", "options", "metadata", "callback_url"} <= set(
        form["properties"]
    )
    assert form["examples"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateJobFromUrl"
    }
    assert schemas["CreateJobFromUrl"]["required"] == ["source_url"]
    assert schemas["CreateJobFromUrl"]["examples"]
    # FastAPI describes uploads this way; openapi-python-client then sends files as text.
    assert "contentMediaType" not in json.dumps(doc)


def test_enums_and_examples(doc):
    schemas = doc["components"]["schemas"]
    assert schemas["JobStatus"]["enum"] == [
        "queued",
        "processing",
        "completed",
        "failed",
        "canceled",
    ]
    assert schemas["JobOut"]["properties"]["status"] == {"$ref": "#/components/schemas/JobStatus"}
    assert schemas["TranscriptFormat"]["enum"] == ["json", "text", "srt", "vtt"]
    assert schemas["DeliveryStatus"]["enum"] == ["pending", "succeeded", "failed"]
    assert schemas["WebhookEvent"]["enum"] == ["job.completed", "job.failed", "job.canceled"]
    assert schemas["JobOut"]["examples"][0]["status"] == "completed"
    transcript = doc["paths"]["/jobs/{job_id}/transcript"]["get"]["responses"]["200"]
    json_answer = transcript["content"]["application/json"]
    assert json_answer["schema"] == {"$ref": "#/components/schemas/Transcript"}
    assert json_answer["example"]["segments"][0]["words"]


def test_every_reference_resolves(doc):
    schemas = doc["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(doc):
        prefix = "#/components/schemas/"
        assert ref.startswith(prefix), ref
        assert ref.removeprefix(prefix) in schemas, ref
