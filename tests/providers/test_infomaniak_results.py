"""Infomaniak status answers and where the transcript is, with httpx.MockTransport as the vendor."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from app.providers.base import PermanentProviderError, ProviderError, RetryableProviderError
from app.providers.infomaniak import STATUS_MAP, InfomaniakOptions
from tests.providers import infomaniak_support
from tests.providers.infomaniak_support import (
    BASE,
    BATCH,
    TOKEN,
    Make,
    assert_no_secret,
    payload,
    routes,
)

vendor = infomaniak_support.vendor  # the shared fixture, under the name the tests ask for
STATUS_URL = f"{BASE}/1/ai/24250/results/{BATCH}"
OFFICIAL_PATH = f"/1/ai/results/{BATCH}/download"
PRODUCT_PATH = f"/1/ai/24250/results/{BATCH}/download"


# --- status ----------------------------------------------------------------------


def results(status: str, data: Any = None, url: str | None = None) -> dict[str, Any]:
    body = payload("results_pending.json")
    body.update(status=status, data=data)
    if url is not None:
        body["url"] = url
    return body


def test_every_documented_status_word_maps() -> None:
    documented = {"cancelled", "failed", "pending", "processing", "success"}
    assert documented <= STATUS_MAP.keys()
    assert STATUS_MAP["pending"] == STATUS_MAP["processing"] == "processing"
    assert STATUS_MAP["success"] == "completed"
    assert STATUS_MAP["failed"] == STATUS_MAP["cancelled"] == "failed"


@pytest.mark.parametrize("word", ["pending", "processing", "Processing", "queued_on_gpu"])
async def test_unfinished_and_unknown_words_keep_polling(
    vendor: Make, caplog: pytest.LogCaptureFixture, word: str
) -> None:
    provider, sent = vendor(
        routes({f"/1/ai/24250/results/{BATCH}": httpx.Response(200, json=results(word))})
    )
    with caplog.at_level(logging.WARNING, logger="app.providers.infomaniak"):
        update = await provider.fetch(BATCH, InfomaniakOptions())
    assert (update.status, update.provider_status, update.result) == ("processing", word, None)
    assert str(sent[0].url) == STATUS_URL
    assert sent[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert ("unknown status" in caplog.text) == (word == "queued_on_gpu")


async def test_a_vendor_failure_fails_the_job_with_its_detail(vendor: Make) -> None:
    body = payload("results_failed.json")
    provider, _ = vendor(lambda _: httpx.Response(200, json=body))
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert (update.status, update.provider_status) == ("failed", "failed")
    assert update.error is not None and update.error.code == "provider_failed"
    assert "Unable to decode the audio file" in update.error.message
    assert update.error.provider_detail == body


async def test_a_cancel_the_client_never_asked_for_is_a_failure(vendor: Make) -> None:
    provider, _ = vendor(lambda _: httpx.Response(200, json=payload("results_cancelled.json")))
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert (update.status, update.provider_status) == ("failed", "cancelled")
    assert update.error is not None and update.error.code == "provider_canceled"


async def test_the_status_in_infomaniaks_envelope_is_read(vendor: Make) -> None:
    wrapped = {"result": "success", "data": results("success", data=payload("json.json"))}
    provider, _ = vendor(lambda _: httpx.Response(200, json=wrapped))
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert update.status == "completed" and update.result is not None
    assert update.result.transcript.text == "Hello world, this is a test."


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="{not json"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"url": "x"}),  # no status word
        httpx.Response(502, text="bad gateway"),
    ],
)
async def test_unusable_status_answers_are_retryable(vendor: Make, answer: httpx.Response) -> None:
    provider, _ = vendor(lambda _: answer)
    with pytest.raises(RetryableProviderError) as caught:
        await provider.fetch(BATCH, InfomaniakOptions())
    assert_no_secret(caught.value)


async def test_an_unknown_batch_fails_permanently(vendor: Make) -> None:
    body = {"result": "error", "error": {"code": "object_not_found", "description": "nope"}}
    provider, _ = vendor(lambda _: httpx.Response(404, json=body))
    with pytest.raises(PermanentProviderError) as caught:
        await provider.fetch(BATCH, InfomaniakOptions())
    assert caught.value.code == "provider_not_found"
    assert caught.value.provider_detail["body"] == body


# --- where the transcript is ------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        payload("verbose_json.json"),
        json.dumps(payload("verbose_json.json")),
    ],
    ids=["object", "json-string"],
)
async def test_an_inline_transcript_needs_no_download(vendor: Make, data: Any) -> None:
    provider, sent = vendor(
        routes({f"/1/ai/24250/results/{BATCH}": httpx.Response(200, json=results("success", data))})
    )
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert update.status == "completed" and update.result is not None
    assert update.result.transcript.text == "Hello world, this is a test."
    assert len(update.result.transcript.segments) == 2
    assert len(sent) == 1


async def test_inline_plain_text(vendor: Make) -> None:
    provider, sent = vendor(
        lambda _: httpx.Response(200, json=payload("results_success_text.json"))
    )
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert update.result is not None
    assert update.result.transcript.text == "Hello world, this is a test."
    assert update.result.transcript.segments == []
    assert len(sent) == 1


async def test_the_documented_url_is_fetched_on_the_configured_host(vendor: Make) -> None:
    provider, sent = vendor(
        routes(
            {
                f"/1/ai/24250/results/{BATCH}": httpx.Response(
                    200, json=payload("results_success_link.json")
                ),
                OFFICIAL_PATH: httpx.Response(200, json=payload("verbose_json.json")),
            }
        )
    )
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert update.result is not None and update.result.transcript.language == "en"
    download = sent[1]
    # The example says https://api.infomaniak.com/...: moved onto our base URL.
    assert str(download.url) == f"{BASE}{OFFICIAL_PATH}"
    assert download.headers["authorization"] == f"Bearer {TOKEN}"
    assert update.result.raw["download"] == payload("verbose_json.json")


async def test_a_404_at_the_documented_url_falls_back_to_the_product_path(vendor: Make) -> None:
    provider, sent = vendor(
        routes(
            {
                f"/1/ai/24250/results/{BATCH}": httpx.Response(
                    200, json=payload("results_success_link.json")
                ),
                OFFICIAL_PATH: httpx.Response(404, json={"result": "error"}),
                PRODUCT_PATH: httpx.Response(
                    200, text=payload("subtitles.vtt"), headers={"content-type": "text/vtt"}
                ),
            }
        )
    )
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert [r.url.path for r in sent] == [
        f"/1/ai/24250/results/{BATCH}",
        OFFICIAL_PATH,
        PRODUCT_PATH,
    ]
    assert update.result is not None
    assert [s.text for s in update.result.transcript.segments] == [
        "Hello world,",
        "this is a test.",
    ]
    assert [a.name for a in update.result.artifacts] == ["vtt"]


async def test_without_a_url_the_product_path_is_used(vendor: Make) -> None:
    body = results("success")
    body["url"] = None
    provider, sent = vendor(
        routes(
            {
                f"/1/ai/24250/results/{BATCH}": httpx.Response(200, json=body),
                PRODUCT_PATH: httpx.Response(200, text="plain words\n"),
            }
        )
    )
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert update.result is not None and update.result.transcript.text == "plain words"
    assert [r.url.path for r in sent][1:] == [PRODUCT_PATH]


async def test_a_base_url_with_a_path_prefix_keeps_it_for_the_link(vendor: Make) -> None:
    base = "http://proxy.test/infomaniak"
    provider, sent = vendor(
        lambda r: (
            httpx.Response(200, json=payload("results_success_link.json"))
            if r.url.path.endswith(BATCH)
            else httpx.Response(200, json=payload("json.json"))
        ),
        base=base,
    )
    await provider.fetch(BATCH, InfomaniakOptions())
    assert [str(r.url) for r in sent] == [
        f"{base}/1/ai/24250/results/{BATCH}",
        f"{base}{OFFICIAL_PATH}",
    ]


async def test_a_redirected_download_does_not_carry_the_token_away(vendor: Make) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.test":
            return httpx.Response(200, json=payload("json.json"))
        if request.url.path == OFFICIAL_PATH:
            return httpx.Response(302, headers={"location": "https://storage.test/blob?sig=abc"})
        return httpx.Response(200, json=payload("results_success_link.json"))

    provider, sent = vendor(handle)
    update = await provider.fetch(BATCH, InfomaniakOptions())
    assert update.result is not None and update.result.transcript.text.startswith("Hello")
    assert sent[-1].url.host == "storage.test"
    assert "authorization" not in sent[-1].headers


@pytest.mark.parametrize(
    ("official", "product", "kind"),
    [
        (httpx.Response(500), None, RetryableProviderError),  # no fallback on a 5xx
        (httpx.Response(404), httpx.Response(404), PermanentProviderError),
        (httpx.Response(200, text='{"text": "cut'), None, RetryableProviderError),
        (httpx.Response(200, json={"file_name": "x"}), None, RetryableProviderError),
    ],
)
async def test_download_errors(
    vendor: Make,
    official: httpx.Response,
    product: httpx.Response | None,
    kind: type[ProviderError],
) -> None:
    table = {
        f"/1/ai/24250/results/{BATCH}": httpx.Response(
            200, json=payload("results_success_link.json")
        ),
        OFFICIAL_PATH: official,
    }
    if product is not None:
        table[PRODUCT_PATH] = product
    provider, _ = vendor(routes(table))
    with pytest.raises(kind) as caught:
        await provider.fetch(BATCH, InfomaniakOptions())
    assert_no_secret(caught.value)
