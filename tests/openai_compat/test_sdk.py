"""The official ``openai`` SDK, unchanged, against a real gateway on loopback."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from app.config import Settings
from app.openai_compat import endpoints
from tests.conftest import SPEECH_WAV
from tests.fakes.openai import API_KEY, REFUSED_FILE, SEGMENTS, TEXT, FakeOpenAI
from tests.support.gateway import ThreadedGateway, create_key

Gateway = tuple[ThreadedGateway, str]


def sdk(gateway: ThreadedGateway, key: str, **kwargs: object) -> OpenAI:
    return OpenAI(base_url=gateway.base_url + "/v1", api_key=key, timeout=120, **kwargs)


def listed_jobs(gateway: ThreadedGateway, key: str) -> list[dict]:
    with gateway.client(key) as client:
        data: list[dict] = client.get("/jobs").json()["data"]
    return data


@pytest.fixture
def local_gateway(
    postgres_url: str,
    make_settings: Callable[..., Settings],
    start_gateway: Callable[..., ThreadedGateway],
) -> Gateway:
    gateway = start_gateway(make_settings(postgres_url))
    return gateway, create_key(postgres_url, "acme")


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_local_model_answers_in_every_response_format(local_gateway: Gateway) -> None:
    gateway, key = local_gateway
    client = sdk(gateway, key)
    plain = client.audio.transcriptions.create(model="local", file=SPEECH_WAV, language="en")
    assert "hello" in plain.text

    def create(**kwargs: object) -> object:
        return client.audio.transcriptions.create(model="local", file=SPEECH_WAV, **kwargs)

    text = create(response_format="text", prompt="ignored: local takes no prompt", temperature=0)
    assert isinstance(text, str) and "hello" in text and text.endswith("\n")
    srt = create(response_format="srt")
    assert isinstance(srt, str)
    assert re.match(r"1\n00:00:0\d,\d{3} --> 00:00:0\d,\d{3}\n.*hello", srt), srt
    vtt = create(response_format="vtt")
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT\n\n") and "hello" in vtt

    verbose = create(response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert isinstance(verbose, openai.types.audio.TranscriptionVerbose)
    assert verbose.language == "english" and 2.0 < verbose.duration < 4.0
    assert "hello" in verbose.text
    assert verbose.words and {"hello", "world"} <= {w.word for w in verbose.words}
    assert all(0 <= w.start <= w.end for w in verbose.words)
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts)
    assert verbose.segments and verbose.segments[0].id == 0
    assert verbose.segments[0].start is not None and verbose.segments[0].tokens == []

    words_only = create(response_format="verbose_json", timestamp_granularities=["word"])
    assert words_only.words and words_only.segments is None
    default = create(response_format="verbose_json")
    assert default.segments and default.words is None

    # Every request was an ordinary job of this client's.
    jobs = listed_jobs(gateway, key)
    assert len(jobs) == 7
    assert {(j["provider"], j["status"]) for j in jobs} == {("local", "completed")}
    assert {j["source"]["filename"] for j in jobs} == {SPEECH_WAV.name}


def test_the_answer_names_its_job_which_only_its_client_sees(
    local_gateway: Gateway, postgres_url: str
) -> None:
    gateway, key = local_gateway
    raw = sdk(gateway, key).audio.transcriptions.with_raw_response.create(
        model="local", file=SPEECH_WAV
    )
    assert raw.headers["content-type"].startswith("application/json")
    job_id = raw.headers["x-job-id"]
    assert "hello" in raw.parse().text
    with gateway.client(key) as client:
        assert client.get(f"/jobs/{job_id}").json()["status"] == "completed"
    with gateway.client(create_key(postgres_url, "other")) as other:
        assert other.get(f"/jobs/{job_id}").status_code == 404


def assert_openai_error(exc: openai.APIStatusError, status: int, param: str | None) -> dict:
    assert exc.status_code == status
    assert exc.response.headers["content-type"].startswith("application/json")
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    assert body["error"]["param"] == param
    return dict(body["error"])


def test_refusals_come_in_openais_error_shape(local_gateway: Gateway, tmp_path: Path) -> None:
    gateway, key = local_gateway
    with pytest.raises(openai.AuthenticationError) as wrong_key:
        sdk(gateway, "sk_not_a_key").audio.transcriptions.create(model="local", file=SPEECH_WAV)
    error = assert_openai_error(wrong_key.value, 401, None)
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")

    client = sdk(gateway, key)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.audio.transcriptions.create(model="whisper-9", file=SPEECH_WAV)
    error = assert_openai_error(unknown.value, 404, "model")
    assert error["code"] == "model_not_found" and "whisper-9" in error["message"]

    with pytest.raises(openai.NotFoundError) as unconfigured:
        client.audio.transcriptions.create(model="openai/whisper-1", file=SPEECH_WAV)
    assert "OPENAI_API_KEY" in assert_openai_error(unconfigured.value, 404, "model")["message"]

    with pytest.raises(openai.BadRequestError) as no_models:
        client.audio.transcriptions.create(model="local/large", file=SPEECH_WAV)
    assert_openai_error(no_models.value, 400, "model")

    not_audio = tmp_path / "notes.wav"
    not_audio.write_bytes(b"these are my meeting notes, not a recording\n" * 10)
    with pytest.raises(openai.BadRequestError) as bad_file:
        client.audio.transcriptions.create(model="local", file=not_audio)
    error = assert_openai_error(bad_file.value, 400, "file")
    assert error["type"] == "invalid_request_error" and "not audio" in error["message"]

    with pytest.raises(openai.BadRequestError) as bad_format:
        client.audio.transcriptions.create(
            model="local",
            file=SPEECH_WAV,
            response_format="diarized_json",  # OpenAI has it; this gateway does not
        )
    assert_openai_error(bad_format.value, 400, "response_format")

    with pytest.raises(openai.BadRequestError) as bad_language:
        client.audio.transcriptions.create(model="local", file=SPEECH_WAV, language="fr")
    assert_openai_error(bad_language.value, 400, "language")

    with pytest.raises(openai.BadRequestError) as unknown_field:
        client.audio.transcriptions.create(
            model="local", file=SPEECH_WAV, extra_body={"surprise": "field"}
        )
    assert_openai_error(unknown_field.value, 400, "surprise")

    # Nothing refused was kept.
    assert listed_jobs(gateway, key) == []
    assert not [p for p in (gateway.settings.storage_dir / "jobs").rglob("*") if p.is_file()]


def test_openais_include_and_chunking_strategy_are_taken(local_gateway: Gateway) -> None:
    gateway, key = local_gateway
    answer = sdk(gateway, key).audio.transcriptions.create(
        model="local", file=SPEECH_WAV, include=["logprobs"], chunking_strategy="auto"
    )
    assert "hello" in answer.text


def test_other_refusals_without_the_sdk(local_gateway: Gateway) -> None:
    gateway, key = local_gateway
    url = gateway.base_url + "/v1/audio/transcriptions"
    audio = {"file": ("hello.wav", SPEECH_WAV.read_bytes(), "audio/wav")}
    no_key = httpx.post(url, files=audio, data={"model": "local"})
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    assert no_key.headers["www-authenticate"] == "Bearer"
    auth = {"Authorization": f"Bearer {key}"}
    no_model = httpx.post(url, files=audio, headers=auth)
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    no_file = httpx.post(url, files={"model": (None, "local")}, headers=auth)
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    as_json = httpx.post(url, json={"model": "local"}, headers=auth)
    assert as_json.status_code == 400 and as_json.json()["error"]["param"] == "file"
    hot = httpx.post(url, files=audio, data={"model": "local", "temperature": "1.5"}, headers=auth)
    assert hot.status_code == 400 and hot.json()["error"]["param"] == "temperature"
    stream = httpx.post(url, files=audio, data={"model": "local", "stream": "true"}, headers=auth)
    assert stream.status_code == 400 and stream.json()["error"]["param"] == "stream"
    bad_include = httpx.post(
        url, files=audio, data={"model": "local", "include[]": "x"}, headers=auth
    )
    assert bad_include.status_code == 400 and bad_include.json()["error"]["param"] == "include"
    # The rest of the API keeps its problem+json.
    problem = httpx.get(gateway.base_url + "/jobs/job_nope", headers=auth)
    assert problem.headers["content-type"].startswith("application/problem+json")


def test_too_large_a_file_is_413(
    postgres_url: str,
    make_settings: Callable[..., Settings],
    start_gateway: Callable[..., ThreadedGateway],
) -> None:
    gateway = start_gateway(make_settings(postgres_url, max_upload_bytes=4096))
    key = create_key(postgres_url, "acme")
    with pytest.raises(openai.APIStatusError) as too_large:
        sdk(gateway, key).audio.transcriptions.create(model="local", file=SPEECH_WAV)
    assert assert_openai_error(too_large.value, 413, "file")["type"] == "invalid_request_error"


@pytest.fixture
def idle_gateway(
    postgres_url: str,
    make_settings: Callable[..., Settings],
    start_gateway: Callable[..., ThreadedGateway],
) -> Gateway:
    """No worker: a job stays queued until something else ends it."""
    gateway = start_gateway(make_settings(postgres_url, run_worker=False))
    return gateway, create_key(postgres_url, "acme")


def test_a_job_still_running_at_the_longest_wait_is_a_504_naming_it(
    idle_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoints, "MAX_WAIT_SECONDS", 1.0)
    gateway, key = idle_gateway
    with pytest.raises(openai.InternalServerError) as timed_out:
        sdk(gateway, key).audio.transcriptions.create(model="local", file=SPEECH_WAV)
    error = assert_openai_error(timed_out.value, 504, None)
    assert (error["type"], error["code"]) == ("server_error", "timeout")
    assert timed_out.value.response.headers["x-should-retry"] == "false"
    [job] = listed_jobs(gateway, key)  # not sent again: one job, to be followed at /jobs
    assert job["status"] == "queued" and f"/jobs/{job['id']}" in error["message"]


def test_a_job_canceled_while_waiting_answers_at_once(idle_gateway: Gateway) -> None:
    gateway, key = idle_gateway
    outcome: list[BaseException] = []

    def transcribe() -> None:
        try:
            sdk(gateway, key).audio.transcriptions.create(model="local", file=SPEECH_WAV)
        except BaseException as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=transcribe)
    waiting.start()
    deadline = time.monotonic() + 30
    while not (jobs := listed_jobs(gateway, key)) and time.monotonic() < deadline:
        time.sleep(0.05)
    [job] = jobs
    with gateway.client(key) as client:
        assert client.post(f"/jobs/{job['id']}/cancel").status_code == 200
    canceled_at = time.monotonic()
    waiting.join(timeout=30)
    assert time.monotonic() - canceled_at < 2  # woken by the change, not by a re-check
    [exc] = outcome
    assert isinstance(exc, openai.ConflictError)
    assert assert_openai_error(exc, 409, None)["code"] == "job_canceled"


@pytest.fixture
def openai_gateway(fake: FakeOpenAI, vendor_gateway: Callable[..., Gateway]) -> Gateway:
    return vendor_gateway(
        public=False, OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake.base_url + "/v1"
    )


def test_openai_model_goes_to_the_upstream_with_its_own_name(
    fake: FakeOpenAI, openai_gateway: Gateway
) -> None:
    gateway, key = openai_gateway
    verbose = sdk(gateway, key).audio.transcriptions.create(
        model="openai/whisper-1",
        file=SPEECH_WAV,
        language="en",
        prompt="A greeting.",
        temperature=0.2,
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    [call] = fake.received
    assert call.value("model") == "whisper-1"
    assert call.value("prompt") == "A greeting."
    assert call.value("temperature") == "0.2"
    assert call.value("language") == "en"
    assert call.audio == SPEECH_WAV.read_bytes()
    # Rendered by the gateway from its transcript, not passed through.
    assert verbose.text == TEXT and verbose.language == "english"
    assert verbose.segments is None
    assert [(w.word, w.start, w.end) for w in verbose.words or []] == [
        (text, start, end) for *_, words in SEGMENTS for start, end, text in words
    ]


def test_a_failed_job_answers_its_code_and_message_once(
    fake: FakeOpenAI, vendor_gateway: Callable[..., Gateway]
) -> None:
    gateway, key = vendor_gateway(
        public=False, OPENAI_API_KEY="sk-wrong-secret", OPENAI_BASE_URL=fake.base_url + "/v1"
    )
    with pytest.raises(openai.APIStatusError) as failed:
        sdk(gateway, key, max_retries=2).audio.transcriptions.create(
            model="openai/whisper-1", file=SPEECH_WAV
        )
    error = assert_openai_error(failed.value, 502, None)
    assert (error["type"], error["code"]) == ("server_error", "provider_auth")
    assert "sk-wrong-secret" not in failed.value.response.text
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert len(fake.received) == 1  # the SDK did not send it again
    [job] = listed_jobs(gateway, key)
    assert job["status"] == "failed" and job["id"] in error["message"]
    assert job["provider_status"] is None  # the upstream has no status word; none is made up


def test_a_file_the_upstream_refuses_is_a_bad_request(
    fake: FakeOpenAI, openai_gateway: Gateway
) -> None:
    fake.fail("transcribe", 400, body=REFUSED_FILE)
    gateway, key = openai_gateway
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(gateway, key).audio.transcriptions.create(model="openai/whisper-1", file=SPEECH_WAV)
    error = assert_openai_error(refused.value, 400, "file")
    assert error["code"] == "unsupported_media" and "corrupted" in error["message"]
