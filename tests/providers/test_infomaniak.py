"""The Infomaniak adapter on recorded payloads, with httpx.MockTransport as the vendor."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, cast

import httpx
import pydantic
import pytest

from app.config import Settings
from app.providers.base import (
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.infomaniak import (
    LANGUAGES,
    MAX_UPLOAD_BYTES,
    STATUS_MAP,
    InfomaniakOptions,
    InfomaniakProvider,
    batch_id_of,
    build,
    form_fields,
    unwrap_results,
    whisper_language,
)
from app.providers.infomaniak_transcript import (
    UnexpectedPayload,
    inline_payload,
    parse_body,
    result_from_payload,
    segments_from_subtitles,
    transcript_from_json,
)
from tests.providers.helpers import recorded, submit_request_for

SPEECH = Path(__file__).parents[1] / "data" / "hello-16k-mono.wav"
TOKEN = "ik-secret-token-123"
BASE = "https://infomaniak.test"
BATCH = "9b9fec49-cc95-44d5-8d3a-be56a6e05970"
STATUS_URL = f"{BASE}/1/ai/24250/results/{BATCH}"
OFFICIAL_PATH = f"/1/ai/results/{BATCH}/download"
PRODUCT_PATH = f"/1/ai/24250/results/{BATCH}/download"

Handler = Callable[[httpx.Request], httpx.Response]


def payload(name: str) -> Any:
    return recorded("infomaniak", name)


Make = Callable[..., tuple[InfomaniakProvider, list[httpx.Request]]]


@pytest.fixture
async def vendor() -> AsyncIterator[Make]:
    """make(handler, base=...) -> (adapter, the requests it sent)."""
    clients: list[httpx.AsyncClient] = []

    def make(handler: Handler, base: str = BASE) -> tuple[InfomaniakProvider, list[httpx.Request]]:
        sent: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return handler(request)

        http = httpx.AsyncClient(transport=httpx.MockTransport(record))
        clients.append(http)
        return InfomaniakProvider(api_key=TOKEN, product_id="24250", base_url=base, http=http), sent

    yield make
    for client in clients:
        await client.aclose()


def routes(table: Mapping[str, httpx.Response | Callable[[], httpx.Response]]) -> Handler:
    """Answer by path; anything else is a test failure."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = table.get(request.url.path)
        assert answer is not None, f"unexpected call to {request.url}"
        return answer() if callable(answer) else answer

    return handle


def submit_request(
    path: Path | None = SPEECH,
    options: InfomaniakOptions | None = None,
    language: str | None = None,
    filename: str | None = "speech.wav",
) -> SubmitRequest:
    return submit_request_for(
        path, filename=filename, language=language, options=options or InfomaniakOptions()
    )


def multipart(request: httpx.Request) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The form fields (repeats kept) and the file part of a multipart request."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + request.content)
    fields: list[tuple[str, str]] = []
    file: dict[str, Any] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        data = cast(bytes, part.get_payload(decode=True))
        if part.get_filename():
            file = {"name": name, "filename": part.get_filename(), "data": data}
            file["content_type"] = part.get_content_type()
        else:
            fields.append((name, data.decode()))
    return fields, file


def assert_no_secret(error: ProviderError) -> None:
    assert TOKEN not in error.message
    assert TOKEN not in repr(error.provider_detail)


# --- converters on the documents' payloads --------------------------------------


def test_verbose_json_with_top_level_words_is_normalised() -> None:
    transcript = transcript_from_json(payload("verbose_json.json"))
    assert transcript.text == "Hello world, this is a test."
    assert transcript.language == "en"  # Whisper says "english"
    assert transcript.duration == 4.2
    assert transcript.provider == "infomaniak"
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [
        (0.0, 1.52, "Hello world,"),
        (1.52, 3.9, "this is a test."),
    ]
    assert [w.text for w in transcript.segments[0].words] == ["Hello", "world,"]
    assert [w.text for w in transcript.segments[1].words] == ["this", "is", "a", "test."]
    words = [w for s in transcript.segments for w in s.words]
    assert (words[0].start, words[0].end, words[0].confidence) == (0.0, 0.62, None)
    assert all(s.speaker is None and s.channel is None for s in transcript.segments)


def test_verbose_json_with_words_inside_segments_keeps_their_confidence() -> None:
    transcript = transcript_from_json(payload("verbose_json_segment_words.json"))
    assert transcript.text == "Bonjour tout le monde."
    assert transcript.language == "fr"
    assert transcript.duration is None  # not given: not invented
    (segment,) = transcript.segments
    assert [(w.text, w.confidence) for w in segment.words] == [
        ("Bonjour", 0.97),
        ("tout", 0.91),
        ("le", 0.99),
        ("monde.", 0.88),
    ]


def test_json_and_plain_text_give_text_only() -> None:
    for result in (
        result_from_payload(payload("json.json"), raw=None),
        result_from_payload(payload("text.txt"), raw=None),
    ):
        assert result.transcript.text == "Hello world, this is a test."
        assert result.transcript.segments == []
        assert result.transcript.language is None and result.transcript.duration is None
        assert result.artifacts == []


@pytest.mark.parametrize(("name", "fmt"), [("subtitles.srt", "srt"), ("subtitles.vtt", "vtt")])
def test_subtitles_become_segments_and_are_kept_as_an_artifact(name: str, fmt: str) -> None:
    text = payload(name)
    result = result_from_payload(text, raw=None)
    assert [(s.start, s.end, s.text) for s in result.transcript.segments] == [
        (0.0, 1.52, "Hello world,"),
        (1.52, 3.9, "this is a test."),
    ]
    assert result.transcript.text == "Hello world, this is a test."
    (artifact,) = result.artifacts
    assert artifact.name == fmt and artifact.data == text.encode()


def test_highlighted_words_do_not_repeat_segments() -> None:
    segments = segments_from_subtitles(payload("subtitles_highlight.srt"))
    assert [(s.start, s.end, s.text) for s in segments] == [
        (0.0, 1.4, "Hello world,"),
        (1.52, 3.9, "this is a test."),
    ]


def test_missing_times_stay_missing() -> None:
    transcript = transcript_from_json(
        {
            "text": "a b",
            "segments": [{"text": " a b"}],
            "words": [{"word": "a"}, {"word": "b", "start": 0.5}],
        }
    )
    (segment,) = transcript.segments
    assert (segment.start, segment.end) == (None, None)
    assert [(w.text, w.start, w.end) for w in segment.words] == [
        ("a", None, None),
        ("b", 0.5, None),
    ]


def test_words_without_segments_make_one_segment() -> None:
    transcript = transcript_from_json(
        {"text": "hi there", "words": [{"word": "hi", "start": 0.1, "end": 0.3}, {"word": "there"}]}
    )
    (segment,) = transcript.segments
    assert (segment.start, segment.end, segment.text) == (0.1, None, "hi there")
    assert len(segment.words) == 2


def test_an_object_that_is_no_transcript_is_refused() -> None:
    with pytest.raises(UnexpectedPayload):
        transcript_from_json({"file_name": "a.mp3"})


@pytest.mark.parametrize(
    ("spoken", "code"),
    [("english", "en"), ("English", "en"), ("haitian creole", "ht"), ("yue", "yue"), ("fr", "fr")],
)
def test_whisper_language_names_become_codes(spoken: str, code: str) -> None:
    assert transcript_from_json({"text": "", "language": spoken}).language == code


def test_an_unknown_language_name_is_not_guessed() -> None:
    assert transcript_from_json({"text": "", "language": "klingon"}).language is None


def test_parse_body_and_inline_payload() -> None:
    verbose = payload("verbose_json.json")
    assert parse_body(json.dumps(verbose)) == verbose
    assert parse_body(json.dumps("just text")) == "just text"
    assert parse_body('"Quoted," she said.') == '"Quoted," she said.'
    with pytest.raises(UnexpectedPayload):
        parse_body('{"text": "cut off')
    assert inline_payload(verbose) == verbose
    assert inline_payload(json.dumps(verbose)) == verbose
    assert inline_payload(" plain words ") == " plain words "
    for nothing in (None, "", "  ", {"file_name": "x"}, 42):
        assert inline_payload(nothing) is None


def test_batch_id_at_the_top_or_in_the_envelope() -> None:
    assert batch_id_of(payload("create.json")) == BATCH
    assert batch_id_of(payload("create_envelope.json")) == BATCH
    assert batch_id_of({"result": "success"}) is None
    wrapped = {"result": "success", "data": payload("results_pending.json")}
    assert unwrap_results(wrapped)["status"] == "pending"
    assert unwrap_results(payload("results_success_text.json"))["status"] == "success"


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("zh-Hant-TW", "zh"),
        ("FR", "fr"),
        ("jv", "jw"),
        ("nb-NO", "no"),
        ("yue", "yue"),
        ("haw", "haw"),
    ],
)
def test_language_tags_become_whisper_codes(tag: str, code: str) -> None:
    assert whisper_language(tag) == code


# infomaniak.txt, `language`: "Possible values:" as the page prints them, run together.
DOCUMENTED_LANGUAGES = (
    "afamarasazbabebgbnbobrbscacscydadeeleneseteufafifofrglguhahawhehihrhthuhyidisitjajwka"
    "kkkmknkolalblnloltlvmgmimkmlmnmrmsmtmynenlnnnoocpaplpsptrorusasdsiskslsnsosqsrsusvsw"
    "tatetgthtktltrttukuruzviyiyoyuezh"
)


def test_the_documented_languages_are_the_ones_offered() -> None:
    assert "".join(LANGUAGES) == DOCUMENTED_LANGUAGES
    assert len(set(LANGUAGES)) == len(LANGUAGES) == 100
    assert {len(code) for code in LANGUAGES} == {2, 3}
    offered = InfomaniakProvider.capabilities.languages
    assert offered is not None and set(LANGUAGES) <= set(offered)
    # Whatever the gateway takes, it sends as one of the documented values...
    assert {whisper_language(tag) for tag in offered} == set(LANGUAGES)
    # ...and reads back when Whisper names the language it heard.
    for code in LANGUAGES:
        assert transcript_from_json({"text": "", "language": code}).language == code


# --- options -----------------------------------------------------------------------


def test_options_refuse_unknown_keys_and_bad_values() -> None:
    for bad in (
        {"temperature": 0.2},
        {"file": "x"},
        {"model": "whisper-1"},
        {"chunk_length": 31},
        {"response_format": "csv"},
        {"timestamp_granularities": ["char"]},
        {"max_line_width": 0},
    ):
        with pytest.raises(pydantic.ValidationError):
            InfomaniakOptions.model_validate(bad)
    schema = InfomaniakOptions.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "language" not in schema["properties"] and "file" not in schema["properties"]


def test_form_fields_spell_what_the_vendor_documents() -> None:
    options = InfomaniakOptions(
        model="whisperV2",
        timestamp_granularities=["word", "segment"],
        chunk_length=10,
        highlight_words=True,
        no_speech_threshold=0.6,
        prompt="Infomaniak, kDrive",
    )
    assert form_fields(options, "fr-CH") == {
        "model": "whisperV2",
        "response_format": "verbose_json",
        "timestamp_granularities[]": ["word", "segment"],
        "prompt": "Infomaniak, kDrive",
        "chunk_length": "10",
        "no_speech_threshold": "0.6",
        "highlight_words": "true",
        "language": "fr",
    }
    assert form_fields(InfomaniakOptions(), None) == {
        "model": "whisper",
        "response_format": "verbose_json",
    }


# --- submit ----------------------------------------------------------------------


async def test_submit_posts_multipart_with_the_bearer_token(vendor: Make) -> None:
    provider, sent = vendor(
        routes(
            {
                "/1/ai/24250/openai/audio/transcriptions": httpx.Response(
                    200, json={"batch_id": BATCH}
                )
            }
        )
    )
    options = InfomaniakOptions(timestamp_granularities=["segment", "word"], prompt="hello")
    update = await provider.submit(submit_request(options=options, language="en-US"))
    assert (update.status, update.provider_job_id) == ("processing", BATCH)
    (request,) = sent
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/1/ai/24250/openai/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    fields, file = multipart(request)
    assert ("language", "en") in fields and ("model", "whisper") in fields
    assert ("response_format", "verbose_json") in fields and ("prompt", "hello") in fields
    assert [v for k, v in fields if k == "timestamp_granularities[]"] == ["segment", "word"]
    assert file["name"] == "file" and file["filename"] == "speech.wav"
    assert file["content_type"] == "audio/wav"
    assert file["data"] == SPEECH.read_bytes()


async def test_submit_names_the_file_by_its_format_when_the_name_does_not(vendor: Make) -> None:
    provider, sent = vendor(lambda _: httpx.Response(200, json=payload("create_envelope.json")))
    update = await provider.submit(submit_request(filename=None))
    assert update.provider_job_id == BATCH  # the {"result", "data"} envelope
    assert multipart(sent[0])[1]["filename"] == "audio.wav"
    await provider.submit(submit_request(filename="C:\\rec\\take.bin"))
    assert multipart(sent[1])[1]["filename"] == "audio.wav"


async def test_an_upload_over_50_mb_is_refused_before_calling(vendor: Make, tmp_path: Path) -> None:
    provider, sent = vendor(lambda _: httpx.Response(200, json={"batch_id": BATCH}))
    big = tmp_path / "big.wav"
    with big.open("wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)  # sparse: no 50 MB written
    with pytest.raises(PermanentProviderError) as caught:
        await provider.submit(submit_request(path=big))
    assert caught.value.code == "input_too_large"
    assert sent == []


ENVELOPE = payload("error_envelope.json")


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, ENVELOPE, "invalid_request"),
        (401, {"result": "error", "error": {"code": "not_authorized"}}, "provider_auth"),
        (413, {"result": "error", "error": {"code": "file_too_large"}}, "input_too_large"),
        (415, "bad type", "unsupported_media"),
        (422, ENVELOPE, "invalid_request"),
    ],
)
async def test_refusals_are_permanent_with_the_vendors_body(
    vendor: Make, status: int, body: Any, code: str
) -> None:
    answer = (
        httpx.Response(status, json=body)
        if isinstance(body, dict)
        else httpx.Response(status, text=body)
    )
    provider, _ = vendor(lambda _: answer)
    with pytest.raises(PermanentProviderError) as caught:
        await provider.submit(submit_request())
    assert caught.value.code == code
    assert caught.value.provider_detail == {"status_code": status, "body": body}
    assert_no_secret(caught.value)


async def test_an_error_envelope_on_a_2xx_is_a_refusal(vendor: Make) -> None:
    provider, _ = vendor(lambda _: httpx.Response(200, json=ENVELOPE))
    with pytest.raises(PermanentProviderError) as caught:
        await provider.submit(submit_request())
    assert caught.value.code == "provider_rejected"
    assert "validation_failed" in caught.value.message
    assert caught.value.provider_detail == ENVELOPE


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="oops"),
        httpx.Response(503, json={"result": "error"}),
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json={"result": "success"}),  # no batch id
    ],
)
async def test_vendor_trouble_at_submit_is_retryable(vendor: Make, answer: httpx.Response) -> None:
    provider, _ = vendor(lambda _: answer)
    with pytest.raises(RetryableProviderError) as caught:
        await provider.submit(submit_request())
    assert_no_secret(caught.value)


async def test_429_carries_retry_after(vendor: Make) -> None:
    provider, _ = vendor(lambda _: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(RetryableProviderError) as caught:
        await provider.fetch(BATCH, InfomaniakOptions())
    assert caught.value.retry_after == 7.0


async def test_timeouts_are_retryable(vendor: Make) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    provider, _ = vendor(slow)
    with pytest.raises(RetryableProviderError):
        await provider.fetch(BATCH, InfomaniakOptions())


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


# --- the rest --------------------------------------------------------------------


async def test_cancel_calls_nothing(vendor: Make) -> None:
    provider, sent = vendor(lambda _: httpx.Response(500))
    await provider.cancel(BATCH)
    assert sent == []


async def test_build_from_settings() -> None:
    settings = Settings(
        _env_file=None,
        infomaniak_api_key=TOKEN,
        infomaniak_product_id="24250",
        infomaniak_base_url="http://127.0.0.1:1/",
    )
    async with httpx.AsyncClient() as http:
        provider = build(settings, http)
        assert TOKEN not in repr(provider)
        assert provider.needs_local_audio is True
        assert provider.capabilities.languages == (*LANGUAGES, "jv", "nb", "iw")
        assert set(provider.capabilities.formats) == {"mp3", "mp4", "wav", "flac", "ogg"}
        assert not provider.capabilities.cancel and not provider.capabilities.callbacks
        with pytest.raises(ValueError, match="INFOMANIAK_PRODUCT_ID"):
            build(settings.model_copy(update={"infomaniak_product_id": None}), http)
