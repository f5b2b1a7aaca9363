"""Bad job requests get a clear problem+json answer and leave nothing stored."""

from __future__ import annotations

import io
import socket

import httpx
import pytest

from tests.api.helpers import WAV_HEADER_ONLY, assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import create_key


@pytest.fixture
def env(database_url, make_settings, start_gateway):
    settings = make_settings(database_url, run_worker=False, max_upload_bytes=200_000)
    gateway = start_gateway(settings)
    key = create_key(database_url, "acme")
    with gateway.client(key) as client:
        yield gateway, client, settings.storage_dir


def _stored_files(storage_dir) -> list:
    jobs = storage_dir / "jobs"
    return [p for p in jobs.rglob("*") if p.is_file()] if jobs.exists() else []


def _no_jobs(client: httpx.Client) -> bool:
    return client.get("/jobs").json()["data"] == []


def test_a_file_over_the_limit_is_413_and_not_kept(env):
    _, client, storage = env
    big = SPEECH_WAV.read_bytes() * 3  # 310 kB, over the 200 kB limit
    response = client.post("/jobs", files={"file": ("big.wav", big, "audio/wav")})
    assert_problem(response, 413, "200000 bytes")
    assert _stored_files(storage) == [] and _no_jobs(client)


def test_a_declared_length_over_the_limit_is_413(env):
    gateway, client, storage = env
    key = client.headers["authorization"]
    host, port = gateway.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: " + key.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10000000000\r\n\r\n"
        )
        head = sock.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413"), head
    assert _stored_files(storage) == []


def test_a_pdf_named_wav_is_415(env):
    _, client, storage = env
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + b"0" * 1000
    response = client.post("/jobs", files={"file": ("speech.wav", pdf, "audio/wav")})
    assert_problem(response, 415, "not audio", "content was checked")
    assert _stored_files(storage) == [] and _no_jobs(client)


def test_mp3_without_ffmpeg_is_415_naming_ffmpeg(env, monkeypatch):
    _, client, _ = env
    providers = client.get("/providers").json()["data"]
    if "mp3" in providers[0]["capabilities"]["formats"]:
        pytest.skip("ffmpeg is installed here, so the local engine takes mp3")
    mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 2000
    response = client.post("/jobs", files={"file": ("a.mp3", mp3, "audio/mpeg")})
    assert_problem(response, 415, "mp3", "ffmpeg")


def test_wrong_content_type_is_415(env):
    _, client, _ = env
    response = client.post("/jobs", content=b"hello", headers={"Content-Type": "text/plain"})
    assert_problem(response, 415, "multipart/form-data")


def test_multipart_without_boundary_is_415(env):
    _, client, _ = env
    response = client.post(
        "/jobs", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )
    assert_problem(response, 415, "boundary")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"provider": "nope"}, ["unknown provider 'nope'", "local"]),
        ({"provider": "daglo"}, ["daglo", "set DAGLO_API_KEY"]),
        ({"provider": "infomaniak"}, ["INFOMANIAK_API_KEY and INFOMANIAK_PRODUCT_ID"]),
        ({"options": '{"beam": 3}'}, ["options.beam"]),
        ({"options": "{not json"}, ["options must be a JSON object"]),
        ({"options": "[1, 2]"}, ["options must be a JSON object"]),
        ({"metadata": '"text"'}, ["metadata must be a JSON object"]),
        ({"language": "english please"}, ["language"]),
        ({"callback_url": "ftp://example.com/hook"}, ["callback_url", "http"]),
        ({"surprise": "field"}, ["unknown form field 'surprise'"]),
        # Lone surrogate escapes: no UTF-8 holds them, so no answer could show the job.
        ({"metadata": '{"a": "\\ud800"}'}, ["metadata", "lone surrogate"]),
        ({"metadata": '{"\\udfff": 1}'}, ["metadata", "lone surrogate"]),
        ({"options": '{"x": ["\\udc00"]}'}, ["options", "lone surrogate"]),
        ({"fallback_providers": '["\\ud800"]'}, ["fallback_providers", "not valid JSON"]),
    ],
)
def test_invalid_fields_are_422_and_nothing_is_kept(env, fields, words):
    _, client, storage = env
    body = assert_problem(upload(client, **fields), 422, *words)
    assert body["detail"]
    assert _stored_files(storage) == [] and _no_jobs(client)


def test_no_file_and_no_source_url_is_422(env):
    _, client, _ = env
    response = client.post("/jobs", files={"provider": (None, "local")})
    assert_problem(response, 422, "file", "source_url")


def test_urlencoded_form_is_415(env):
    _, client, _ = env
    response = client.post("/jobs", data={"source_url": "https://example.com/a.wav"})
    assert_problem(response, 415, "multipart/form-data", "application/json")


def test_file_and_source_url_together_is_422(env):
    _, client, _ = env
    response = upload(client, source_url="https://example.com/a.wav")
    body = assert_problem(response, 422, "not both")
    assert [e["field"] for e in body["errors"]] == ["file", "source_url"]


@pytest.mark.parametrize(
    ("fields", "words", "field"),
    [
        ([("provider", "local"), ("provider", "local")], "given twice", "provider"),
        ([("metadata", "{}" + " " * 70_000)], "over 64 KiB", "metadata"),
    ],
)
def test_a_bad_form_field_is_named_in_errors(env, fields, words, field):
    _, client, _ = env
    with SPEECH_WAV.open("rb") as audio:
        parts = [("file", ("a.wav", audio, "audio/wav"))]
        parts += [(name, (None, value)) for name, value in fields]
        response = client.post("/jobs", files=parts)
    body = assert_problem(response, 422, words)
    assert [e["field"] for e in body["errors"]] == [field]


def test_empty_and_truncated_files(env):
    _, client, _ = env
    assert_problem(client.post("/jobs", files={"file": ("e.wav", b"", "audio/wav")}), 422, "empty")
    # A WAV header with no samples is refused at once, as a truncated one is: no
    # job would ever get a transcript from it.
    response = client.post(
        "/jobs", files={"file": ("t.wav", io.BytesIO(WAV_HEADER_ONLY), "audio/wav")}
    )
    body = assert_problem(response, 422, "no audio samples")
    assert [e["field"] for e in body["errors"]] == ["file"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"provider": "local"}, ["source_url", "Field required"]),
        ({"source_url": "file:///etc/passwd"}, ["source_url", "http"]),
        ({"source_url": "http://example.com:0/a.wav"}, ["source_url", "port 0"]),
        (
            {"source_url": "https://example.com/a.wav", "callback_url": "https://example.com:0/"},
            ["callback_url", "port 0"],
        ),
        ({"source_url": "https://example.com/a.wav", "extra": 1}, ["extra"]),
        ({"source_url": "https://example.com/a.wav", "options": []}, ["options"]),
        # The form's 64 KiB per field holds for a JSON body too.
        (
            {"source_url": "https://example.com/a.wav", "metadata": {"a": "x" * 70_000}},
            ["metadata", "at most 64 KiB"],
        ),
        (
            {"source_url": "https://example.com/a.wav", "options": {"a": ["x" * 700] * 100}},
            ["options", "at most 64 KiB"],
        ),
    ],
)
def test_invalid_json_bodies_are_422(env, body, words):
    _, client, _ = env
    assert_problem(client.post("/jobs", json=body), 422, *words)
    assert _no_jobs(client)


def test_malformed_json_is_422(env):
    _, client, _ = env
    response = client.post("/jobs", content=b"{nope", headers={"Content-Type": "application/json"})
    assert_problem(response, 422, "JSON")


def test_private_addresses_are_refused_unless_allowed(database_url, make_settings, start_gateway):
    gateway = start_gateway(make_settings(database_url, run_worker=False, allow_private_urls=False))
    with gateway.client(create_key(database_url, "acme")) as client:
        for url in ("http://127.0.0.1/a.wav", "http://169.254.169.254/latest", "http://10.0.0.8/"):
            assert_problem(client.post("/jobs", json={"source_url": url}), 422, "source_url")
            assert_problem(upload(client, callback_url=url), 422, "callback_url")


def test_wait_out_of_range_is_422(env):
    _, client, _ = env
    job_id = upload(client).json()["id"]
    assert_problem(client.get(f"/jobs/{job_id}", params={"wait": 61}), 422, "wait")
    assert_problem(client.get(f"/jobs/{job_id}", params={"wait": -1}), 422, "wait")


def test_unknown_routes_and_methods_are_problems(env):
    _, client, _ = env
    assert_problem(client.get("/nope"), 404)
    assert_problem(client.put("/jobs"), 405)


def test_a_language_the_provider_does_not_take_is_422(env):
    _, client, _ = env
    assert_problem(upload(client, language="ko"), 422, "language 'ko'", "en")
    assert upload(client, language="en-GB").status_code == 202


def test_an_empty_form_field_is_one_not_given(env):
    _, client, _ = env
    empty = {name: "" for name in ("provider", "source_url", "language", "callback_url")}
    response = upload(client, **empty, options=" ", metadata="", fallback_providers="")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["provider"] == "local" and job["source"]["type"] == "upload"
    assert job["language"] is None and job["callback_url"] is None
    assert job["options"] == {} and job["metadata"] == {} and job["fallback_providers"] == []


def test_a_language_tag_is_kept_in_bcp47_case(env):
    _, client, _ = env
    for given, kept in (("EN", "en"), ("en-us", "en-US"), ("EN-latn-gb", "en-Latn-GB")):
        response = upload(client, language=given)
        assert response.status_code == 202, response.text
        assert response.json()["language"] == kept
