"""Odd and hostile input gets a clear 4xx, never a 5xx."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_problem, upload
from tests.support.gateway import create_key

NUL_CURSOR = "MjAyNi0xMS0yMVQwNjowMDowMHwA"  # base64 of "2026-11-21T06:00:00|\0"
URL = "https://example.com/a.wav"


@pytest.fixture
def client(database_url, make_settings, start_gateway):
    gateway = start_gateway(make_settings(database_url, run_worker=False))
    with gateway.client(create_key(database_url, "acme")) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/jobs/%00", 400, ["NUL"]),
        ("/jobs?provider=%00", 400, ["NUL"]),
        ("/jobs/job_x/artifacts/%00", 400, ["NUL"]),
        ("/jobs/" + "x" * 5000, 404, ["no job"]),
        ("/jobs/job_x/artifacts/..%2F..%2Fetc", 404, []),
        (f"/jobs?cursor={NUL_CURSOR}", 422, ["cursor"]),
        ("/jobs/job_x?wait=nan", 422, ["wait", "finite number"]),
        ("/jobs/job_x?wait=inf", 422, ["wait", "finite number"]),
        # Valid times whose UTC time is past the first or last datetime there is
        ("/jobs?created_after=9999-12-31T23:00:00-01:00", 422, ["created_after", "range"]),
        ("/jobs?created_before=0001-01-01T00:30:00%2B01:00", 422, ["created_before", "range"]),
        ("/jobs?created_after=2026-12-07T00:00:00", 422, ["created_after", "timezone"]),
        # No route: said so, with no redirect for a trailing slash
        ("/nope", 404, ["there is no GET /nope"]),
        ("/jobs/", 404, ["there is no GET /jobs/"]),
        ("/" + "y" * 5000, 404, ["there is no GET /yyy"]),
    ],
)
def test_odd_urls(client, path, status, words):
    response = client.get(path)
    body = assert_problem(response, status, *words)
    assert len(body["detail"]) < 300  # the input is not echoed back at length
    if "created_" in path:  # a validation error names its field
        assert [e["field"] for e in body["errors"]] == [words[0]]


def test_the_time_filters_take_any_offset_for_the_same_instant(client):
    created = upload(client)
    assert created.status_code == 202, created.text
    for after in ("2000-01-01T00:00:00Z", "2000-01-01T09:00:00%2B09:00"):
        assert [j["id"] for j in client.get(f"/jobs?created_after={after}").json()["data"]] == [
            created.json()["id"]
        ]
    assert client.get("/jobs?created_before=2000-01-01T09:00:00%2B09:00").json()["data"] == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"source_url": "https://example.com/a\\u0000.wav"}', ["control characters"]),
        (b'{"source_url": "https://[::1/a.wav"}', ["not a valid URL"]),
        (b'{"source_url": "http://a:99999/a.wav"}', ["not a valid URL"]),
        (b'{"source_url": "%s", "metadata": {"k": 1e400}}' % URL.encode(), ["finite"]),
        (b'{"source_url": "%s", "metadata": {"k": NaN}}' % URL.encode(), ["finite"]),
        (b'{"source_url": "%s", "options": {"k": ' % URL.encode() + b"[" * 5000, ["JSON"]),
        (b"\xff\xfe", ["JSON"]),
    ],
)
def test_odd_json_bodies(client, body, words):
    response = client.post("/jobs", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 422, *words)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"metadata": "[" * 5000 + "]" * 5000}, ["nested too deeply"]),
        ({"metadata": '{"k": NaN}'}, ["finite"]),
        ({"metadata": '{"k": ' + "[" * 40 + "]" * 40 + "}"}, ["nested deeper"]),
        # More digits than Python turns into an int (4300): a 422, not a 500
        ({"metadata": '{"k": ' + "9" * 5000 + "}"}, ["metadata", "number too long"]),
        ({"options": '{"k": ' + "9" * 5000 + "}"}, ["options", "number too long"]),
    ],
)
def test_odd_form_fields(client, fields, words):
    assert_problem(upload(client, **fields), 422, *words)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"garbage", ["malformed multipart"]),
        (b"", ["file", "source_url"]),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nRIFF',
            ["ended"],
        ),
        (
            b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
            ["no Content-Disposition name"],
        ),
    ],
)
def test_broken_multipart(client, body, words):
    response = client.post(
        "/jobs", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    body = assert_problem(response, 422, *words)
    if "ended" in words:  # cut short in the file: the field is named
        assert [e["field"] for e in body["errors"]] == ["file"]


def test_nul_in_metadata_and_filename_is_stored_and_returned(client):
    created = upload(client, metadata='{"k": "v\\u0000"}')
    assert created.status_code == 202, created.text
    assert created.json()["metadata"] == {"k": "v\x00"}
    again = client.get(f"/jobs/{created.json()['id']}").json()
    assert again["metadata"] == {"k": "v\x00"}


def test_a_method_a_path_does_not_take_is_a_405_saying_which_it_takes(client):
    body = assert_problem(client.put("/jobs"), 405, "PUT /jobs is not allowed", "GET, POST")
    assert body["type"].endswith("/http-405")
    assert_problem(client.post("/jobs/"), 404, "there is no POST /jobs/")
