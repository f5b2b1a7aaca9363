"""A problem+json body goes out whatever a client's input it echoes."""

from __future__ import annotations

import json

from app.errors import problem_response


def test_a_lone_surrogate_echoed_in_a_detail_is_replaced_not_a_crash() -> None:
    errors = [{"field": "metadata.\udfff", "message": "bad \ud800", "type": "x"}]
    response = problem_response(422, "Invalid request", "unknown '\ud800'", slug="x", errors=errors)
    body = json.loads(response.body)
    assert body["detail"] == "unknown '?'"
    assert body["errors"] == [{"field": "metadata.?", "message": "bad ?", "type": "x"}]
