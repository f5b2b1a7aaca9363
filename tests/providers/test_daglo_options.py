"""Daglo languages and options, and the request fields built from them."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from app.providers.base import PermanentProviderError, SubmitRequest
from app.providers.daglo import DagloProvider, request_fields
from app.providers.daglo_options import LANGUAGES, DagloOptions, daglo_language, resolve_language
from tests.providers.daglo_support import submit_request


def options_of(request: SubmitRequest) -> DagloOptions:
    assert isinstance(request.options, DagloOptions)
    return request.options


# --- languages and options --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "daglo"),
    [
        ("ko", "ko-KR"),
        ("en", "en-US"),
        ("ja", "ja-JP"),
        ("zh", "cmn-Hans-CN"),
        ("cmn", "cmn-Hans-CN"),
        ("de", "de-DE"),
        ("fr", "fr-FR"),
        ("es", "es-ES"),
        ("it", "it-IT"),
        ("nl", "nl-NL"),
        ("sv", "sv-SE"),
        ("hi", "hi-IN"),
        ("ru", "ru-RU"),
        ("vi", "vi-VN"),
        ("th", "th-TH"),
        ("id", "id-ID"),
        ("fa", "fa-IR"),
        ("cs", "cs-CZ"),
        ("ko-KR", "ko-KR"),
        ("cmn-Hans-CN", "cmn-Hans-CN"),
        ("cmn-hans-cn", "cmn-Hans-CN"),  # BCP-47 is case-insensitive; Daglo is not
        ("EN-us", "en-US"),
        ("en-GB", "en-US"),  # Daglo has one English
        ("zh-Hans", "cmn-Hans-CN"),
        ("es_ES", "es-ES"),
    ],
)
def test_language_tags_map_to_daglos_enum(tag: str, daglo: str) -> None:
    assert daglo_language(tag) == daglo


def test_capabilities_list_the_mapped_primary_subtags() -> None:
    assert set(DagloProvider.capabilities.languages or ()) == set(LANGUAGES)
    assert "mixed" not in (DagloProvider.capabilities.languages or ())


def test_an_unmapped_language_is_refused() -> None:
    with pytest.raises(PermanentProviderError) as caught:
        daglo_language("pt-BR")
    assert caught.value.code == "unsupported_language"


@pytest.mark.parametrize(
    ("job", "option", "sent"),
    [
        (None, None, None),
        ("ko", None, "ko-KR"),
        (None, "mixed", "mixed"),
        ("ko", "mixed", "mixed"),
        ("en", "mixed", "mixed"),
        ("ja", "ja-JP", "ja-JP"),
    ],
)
def test_the_language_sent(job: str | None, option: str | None, sent: str | None) -> None:
    assert resolve_language(job, option) == sent


@pytest.mark.parametrize(("job", "option"), [("ja", "mixed"), ("en", "ko-KR")])
def test_a_language_option_that_contradicts_the_job_is_refused(job: str, option: str) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        resolve_language(job, option)
    assert caught.value.code == "invalid_options"


def test_options_take_daglos_documented_fields() -> None:
    options = DagloOptions.model_validate(
        {
            "sttConfig": {
                "model": "general",
                "language": "mixed",
                "keywordBoost": {"enable": True, "keywords": ["Daglo"], "boost": 15},
                "multiChannel": {"channelCount": 2},
                "speakerDiarization": {"enable": True, "speakerCountHint": 3},
            },
            "nlpConfig": {
                "keywordExtraction": {"enable": True, "maxCount": 5},
                "sentimentAnalysis": {"enable": True},
            },
        }
    )
    assert options.sttConfig is not None and options.sttConfig.multiChannel is not None
    assert options.sttConfig.multiChannel.channelCount == 2
    schema = DagloOptions.model_json_schema()
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "options",
    [
        {"diarize": True},
        {"sttConfig": {"punctuate": True}},
        {"sttConfig": {"speakerDiarization": {"enable": True, "maxSpeakers": 2}}},
        {"nlpConfig": {"summary": {"enable": True}}},
        {"sttConfig": {"language": "ko-kr"}},  # Daglo's enum is case-sensitive
        {"sttConfig": {"language": "pt-BR"}},
        {"sttConfig": {"model": "whisper"}},
        {"sttConfig": {"keywordBoost": {"enable": True, "boost": 16}}},
        {"sttConfig": {"multiChannel": {"channelCount": 3}}},
        {"sttConfig": {"speakerDiarization": {"enable": True, "speakerCountHint": 1}}},
        {"nlpConfig": {"keywordExtraction": {"enable": True, "maxCount": 0}}},
        {"callbackUrl": "https://example.com"},
    ],
)
def test_options_refuse_unknown_keys_and_bad_values(options: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        DagloOptions.model_validate(options)


# --- request building -----------------------------------------------------------------


def test_request_fields_carry_config_callback_and_our_custom() -> None:
    request = submit_request(
        language="en",
        options={
            "sttConfig": {
                "multiChannel": {"channelCount": 2},
                "speakerDiarization": {"enable": True},
            },
            "nlpConfig": {"sentimentAnalysis": {"enable": False}},
        },
        callback_url="https://gw.example/callbacks/daglo/job_1?expires=1&sig=x",
    )
    assert request_fields(request, options_of(request)) == {
        "sttConfig": {
            "language": "en-US",
            "multiChannel": {"channelCount": 2},
            "speakerDiarization": {"enable": True},
        },
        "nlpConfig": {"sentimentAnalysis": {"enable": False}},
        "callback": {"url": "https://gw.example/callbacks/daglo/job_1?expires=1&sig=x"},
        "custom": {"gateway_job_id": "job_1", "language": "en-US", "channel_count": 2},
    }


def test_request_fields_without_anything_asked() -> None:
    request = submit_request()
    assert request_fields(request, options_of(request)) == {"custom": {"gateway_job_id": "job_1"}}
