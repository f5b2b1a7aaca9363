"""Per-client limits of the gateway itself: 429 problem+json (or OpenAI's error) with Retry-After.

The token bucket is tested alone with a clock of our own; the limits as a
client meets them, over real HTTP against a started gateway.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.limits import TokenBuckets, request_buckets
from tests.api.helpers import assert_problem, upload
from tests.conftest import SPEECH_WAV
from tests.support.gateway import ThreadedGateway, create_key

StartGateway = Callable[..., ThreadedGateway]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the token bucket ----------------------------------------------------------


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2, burst=3, clock=clock)
    taken = [buckets.take("alice") for _ in range(3)]
    assert [d.allowed for d in taken] == [True, True, True]
    assert [d.remaining for d in taken] == [2, 1, 0]
    refused = buckets.take("alice")
    assert (refused.allowed, refused.retry_after) == (False, 1)  # one token at 2/s: 0.5 s
    clock.now += 0.5
    assert buckets.take("alice").allowed
    assert not buckets.take("alice").allowed
    clock.now += 3600  # idle for long: full again, never more than the burst
    assert [buckets.take("alice").allowed for _ in range(4)] == [True, True, True, False]


def test_retry_after_is_whole_seconds_rounded_up_and_waiting_it_is_enough() -> None:
    clock = Clock()
    slow = TokenBuckets(rate=0.25, burst=1, clock=clock)  # one request every 4 s
    assert slow.take("alice").allowed
    assert slow.take("alice").retry_after == 4
    clock.now += 1
    assert slow.take("alice").retry_after == 3
    clock.now += 2.5  # 0.5 s left: still a whole second
    decision = slow.take("alice")
    assert not decision.allowed and decision.retry_after == 1
    clock.now += decision.retry_after
    assert slow.take("alice").allowed

    fast = TokenBuckets(rate=50, burst=1, clock=clock)  # 20 ms to wait: at least 1 s
    assert fast.take("bob").allowed
    assert fast.take("bob").retry_after == 1


def test_a_refused_request_takes_nothing_and_clients_have_their_own_buckets() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=1, clock=clock)
    assert buckets.take("alice").allowed
    assert not any(buckets.take("alice").allowed for _ in range(10))
    assert buckets.take("bob").allowed
    clock.now += 1  # ten refusals did not push alice's next token further away
    assert buckets.take("alice").allowed


def test_the_clients_remembered_are_bounded_least_recently_seen_forgotten_first() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=1, max_keys=3, clock=clock)
    for n in range(1000):
        buckets.take(f"client-{n}")
        assert len(buckets) <= 3
    assert len(buckets) == 3

    buckets = TokenBuckets(rate=1, burst=1, max_keys=3, clock=clock)
    for name in ("alice", "bob", "carol"):
        assert buckets.take(name).allowed
    assert not buckets.take("alice").allowed  # alice is now the most recently seen
    assert buckets.take("dave").allowed  # forgets bob, the least recently seen
    assert not buckets.take("alice").allowed  # still remembered, still empty
    assert buckets.take("bob").allowed  # forgotten: starts afresh


@pytest.mark.parametrize(
    ("per_second", "burst", "expected_burst"),
    [(2.5, 0, 3), (0.2, 0, 1), (10, 0, 10), (1, 25, 25)],
)
def test_the_burst_defaults_to_the_rate_rounded_up(
    per_second: float, burst: int, expected_burst: int
) -> None:
    settings = Settings(_env_file=None, rate_limit_per_second=per_second, rate_limit_burst=burst)  # type: ignore[call-arg]
    buckets = request_buckets(settings)
    assert buckets is not None
    assert (buckets.rate, buckets.burst) == (per_second, expected_burst)


def test_no_rate_limit_unless_set() -> None:
    assert request_buckets(Settings(_env_file=None)) is None  # type: ignore[call-arg]


# --- requests per second, over HTTP -------------------------------------------


def _until_refused(
    client: httpx.Client, path: str = "/jobs", at_most: int = 30
) -> tuple[list[int], httpx.Response]:
    """Requests as fast as one client makes them, until one is refused."""
    statuses = []
    for _ in range(at_most):
        answer = client.get(path)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            return statuses, answer
    raise AssertionError(f"never refused: {statuses}")


def test_a_burst_over_the_limit_is_refused_until_retry_after_has_passed(
    postgres_url: str, make_settings: Callable[..., Settings], start_gateway: StartGateway
) -> None:
    gateway = start_gateway(
        make_settings(postgres_url, run_worker=False, rate_limit_per_second=1, rate_limit_burst=3)
    )
    alice, bob = create_key(postgres_url, "alice"), create_key(postgres_url, "bob")
    with gateway.client(alice) as client, gateway.client(bob) as other:
        statuses, refused = _until_refused(client)
        assert statuses[:3] == [200, 200, 200]  # the burst
        assert_problem(refused, 429, "1 requests per second", "bursts of 3")
        assert refused.json()["type"].endswith("/rate-limited")
        retry_after = int(refused.headers["retry-after"])
        assert retry_after == 1  # one token at 1/s, rounded up
        assert refused.headers["ratelimit-limit"] == "3"
        assert refused.headers["ratelimit-remaining"] == "0"

        # Another client is not affected; neither are the health checks and the
        # metrics, even with the exhausted key.
        assert other.get("/jobs").status_code == 200
        for path in ("/healthz", "/readyz", "/metrics", "/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200, path
        assert client.get("/providers").status_code == 429  # every other endpoint counts

        time.sleep(retry_after)
        assert client.get("/jobs").status_code == 200


def test_a_refused_upload_stores_nothing(
    postgres_url: str, make_settings: Callable[..., Settings], start_gateway: StartGateway
) -> None:
    settings = make_settings(
        postgres_url, run_worker=False, rate_limit_per_second=0.2, rate_limit_burst=1
    )
    gateway = start_gateway(settings)
    with gateway.client(create_key(postgres_url, "alice")) as client:
        assert upload(client).status_code == 202
        stored = _stored_files(settings.storage_dir)
        refused = upload(client)
        assert_problem(refused, 429, "0.2 requests per second")
        # One token at 0.2/s is 5 s away, less the moment since the first upload.
        assert 4 <= int(refused.headers["retry-after"]) <= math.ceil(1 / 0.2)
        assert _stored_files(settings.storage_dir) == stored


def test_without_settings_nothing_is_limited(
    postgres_url: str, make_settings: Callable[..., Settings], start_gateway: StartGateway
) -> None:
    gateway = start_gateway(make_settings(postgres_url, run_worker=False))
    with gateway.client(create_key(postgres_url, "alice")) as client:
        assert {client.get("/jobs").status_code for _ in range(40)} == {200}


# --- jobs in flight ---------------------------------------------------------------


def _stored_files(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*") if path.is_file()}


def _refusals(client: httpx.Client, reason: str) -> float:
    """``stt_rate_limited_total{reason}`` as this gateway's /metrics shows it."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "stt_rate_limited_total" and sample.labels == {"reason": reason}:
                return sample.value
    return 0.0


def _headers_only(gateway: ThreadedGateway, key: str, path: str) -> bytes:
    """The answer to a POST that announces 100 MB of upload and sends none of it."""
    url = urlsplit(gateway.base_url)
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {url.netloc}",
        f"Authorization: Bearer {key}",
        "Content-Type: multipart/form-data; boundary=x",
        "Content-Length: 100000000",
    ]
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)  # a socket.timeout here: the gateway waited for the body
            if not chunk:
                break
            answer += chunk
    return answer


def test_jobs_in_flight_are_capped_before_the_upload_is_read(
    postgres_url: str, make_settings: Callable[..., Settings], start_gateway: StartGateway
) -> None:
    settings = make_settings(postgres_url, run_worker=False, max_jobs_in_flight=2)
    gateway = start_gateway(settings)
    alice = create_key(postgres_url, "alice")
    with gateway.client(alice) as client:
        first, second = upload(client), upload(client)
        assert (first.status_code, second.status_code) == (202, 202)
        stored = _stored_files(settings.storage_dir)
        counted = _refusals(client, "jobs_in_flight")

        refused = upload(client)
        assert_problem(refused, 429, "2 of your jobs are queued or processing", "limit is 2")
        assert refused.headers["retry-after"] == "5"
        assert_problem(client.post("/jobs", json={"source_url": "http://127.0.0.1/a.wav"}), 429)
        assert _headers_only(gateway, alice, "/jobs").startswith(b"HTTP/1.1 429 ")
        # Nothing of the refused jobs was kept: no row, no blob.
        listed = {job["id"] for job in client.get("/jobs").json()["data"]}
        assert listed == {first.json()["id"], second.json()["id"]}
        assert _stored_files(settings.storage_dir) == stored
        assert _refusals(client, "jobs_in_flight") == counted + 3

        # Another client has its own count.
        with gateway.client(create_key(postgres_url, "bob")) as bob:
            assert upload(bob).status_code == 202

        # A job that ends makes room for one more.
        assert client.post(f"/jobs/{first.json()['id']}/cancel").status_code == 200
        assert upload(client).status_code == 202
        assert upload(client).status_code == 429


def _upload_with_key(client: httpx.Client, key: str) -> httpx.Response:
    audio = SPEECH_WAV.read_bytes()
    return client.post(
        "/jobs", files={"file": ("a.wav", audio, "audio/wav")}, headers={"Idempotency-Key": key}
    )


def test_a_replay_is_served_at_the_limit_and_a_refused_key_stays_free(
    postgres_url: str, make_settings: Callable[..., Settings], start_gateway: StartGateway
) -> None:
    gateway = start_gateway(make_settings(postgres_url, run_worker=False, max_jobs_in_flight=1))
    with gateway.client(create_key(postgres_url, "alice")) as client:
        first = _upload_with_key(client, "order-1")
        assert first.status_code == 202
        # The replay makes no new job: the limit does not apply to it.
        again = _upload_with_key(client, "order-1")
        assert again.status_code == 202
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        # A new job is refused, and its key is not used up by the refusal.
        assert_problem(_upload_with_key(client, "order-2"), 429)
        assert client.post(f"/jobs/{first.json()['id']}/cancel").status_code == 200
        later = _upload_with_key(client, "order-2")
        assert later.status_code == 202
        assert "idempotent-replayed" not in later.headers


# --- the OpenAI-compatible route ------------------------------------------------


def test_openai_route_answers_429_in_openais_shape(
    postgres_url: str, make_settings: Callable[..., Settings], start_gateway: StartGateway
) -> None:
    gateway = start_gateway(make_settings(postgres_url, run_worker=False, max_jobs_in_flight=1))
    key = create_key(postgres_url, "alice")
    with gateway.client(key) as client:
        assert upload(client).status_code == 202
    sdk = OpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=0, timeout=30)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.audio.transcriptions.create(model="local", file=SPEECH_WAV)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "5"
    assert caught.value.response.headers["content-type"].startswith("application/json")
    error = caught.value.response.json()["error"]
    assert error == {
        "message": error["message"],
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert "limit is 1" in error["message"]
    assert _headers_only(gateway, key, "/v1/audio/transcriptions").startswith(b"HTTP/1.1 429 ")


def test_the_openai_sdk_waits_retry_after_and_is_then_served(
    postgres_url: str, make_settings: Callable[..., Settings], start_gateway: StartGateway
) -> None:
    gateway = start_gateway(
        make_settings(postgres_url, rate_limit_per_second=1, rate_limit_burst=1)
    )
    key = create_key(postgres_url, "alice")
    with gateway.client(key) as client:
        assert client.get("/providers").status_code == 200  # the bucket's only token
    sdk = OpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=2, timeout=60)
    started = time.monotonic()
    raw = sdk.audio.transcriptions.with_raw_response.create(model="local", file=SPEECH_WAV)
    assert raw.retries_taken == 1  # refused once with Retry-After: 1, then served
    assert time.monotonic() - started >= 1
    assert "hello" in raw.parse().text
