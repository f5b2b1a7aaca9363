"""AIML API options: model families, the language field each takes, and what is refused."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from app.providers.aimlapi_options import (
    DEFAULT_MODEL,
    AimlApiOptions,
    create_fields,
    model_family,
    vendor_language,
)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("#g1_nova-2-general", "deepgram"),
        ("nova-3", "deepgram"),
        ("#g1_whisper-large", "deepgram"),
        ("whisper-large", "deepgram"),
        ("aai/slam-1", "assemblyai"),
        ("slam-1", "assemblyai"),
        ("aai/universal", "assemblyai"),
        ("openai/gpt-4o-transcribe", "openai"),
        ("openai/gpt-4o-mini-transcribe", "openai"),
        ("microsoft/mai-transcribe-1.5", "mai"),
    ],
)
def test_model_families(model: str, family: str):
    assert model_family(model) == family


@pytest.mark.parametrize(
    ("model", "language", "expected"),
    [
        ("#g1_nova-2-general", "en-US", ("language", "en-US")),  # BCP-47 as it is
        ("nova-3", "pt-BR", ("language", "pt-BR")),
        ("#g1_whisper-large", "ko", ("language", "ko")),
        ("aai/slam-1", "en-US", ("language_code", "en_us")),
        ("aai/universal", "en-GB", ("language_code", "en_uk")),
        ("aai/universal", "en-AU", ("language_code", "en_au")),
        ("aai/universal", "en-IN", ("language_code", "en")),
        ("aai/universal", "de-DE", ("language_code", "de")),
        ("aai/universal", "fr", ("language_code", "fr")),
        ("openai/gpt-4o-transcribe", "en-US", ("language", "en")),  # ISO 639-1
        ("openai/gpt-4o-mini-transcribe", "zh-Hans-CN", ("language", "zh")),
    ],
)
def test_language_is_mapped_by_model_family(model: str, language: str, expected: tuple[str, str]):
    assert vendor_language(model_family(model), language) == expected
    fields = create_fields(AimlApiOptions(model=model), language)
    assert fields[expected[0]] == expected[1]


def test_options_default_to_a_documented_model_and_send_only_what_was_given():
    options = AimlApiOptions()
    assert options.model == DEFAULT_MODEL == "#g1_nova-2-general"
    assert create_fields(options, None) == {"model": "#g1_nova-2-general"}
    schema = AimlApiOptions.model_json_schema()
    assert schema["properties"]["model"]["default"] == "#g1_nova-2-general"
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("model", "given", "sent"),
    [
        ("#g1_nova-2-general", {"multichannel": True}, {"multi_channel": True}),
        ("#g1_nova-2-general", {"multi_channel": True}, {"multi_channel": True}),
        ("nova-3", {"multi_channel": True}, {"multichannel": True}),
        ("aai/universal", {"multichannel": False}, {"multichannel": False}),
    ],
)
def test_multichannel_is_spelled_as_the_model_wants(
    model: str, given: dict[str, bool], sent: dict[str, bool]
):
    assert create_fields(AimlApiOptions(model=model, **given), None) == {"model": model, **sent}


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"speaker_count": 2}, "speaker_count"),  # not an option at all
        ({"model": "#g1_nova-2-general", "prompt": "hi"}, "prompt"),
        ({"model": "openai/gpt-4o-transcribe", "diarize": True}, "diarize"),
        ({"model": "aai/slam-1", "smart_format": True}, "smart_format"),
        ({"model": "nova-3", "speaker_labels": True}, "speaker_labels"),
        ({"model": "#g1_nova-2-general", "keyterm": ["AIML"]}, "keyterm"),
        ({"model": "nova-3", "keywords": "AIML:2"}, "keywords"),
        ({"multichannel": True, "multi_channel": False}, "disagree"),
        ({"model": "openai/gpt-4o-transcribe", "temperature": 1.5}, "temperature"),
        ({"model": "microsoft/mai-transcribe-1.5", "diarize": True}, "diarize"),
        ({"model": "microsoft/mai-transcribe-1.5", "prompt": "hi"}, "prompt"),
        ({"model": "openai/gpt-4o-transcribe", "top_p": 0.5}, "top_p"),
        ({"model": "microsoft/mai-transcribe-1.5", "max_tokens": 0}, "max_tokens"),
        ({"model": "nova 3"}, "model"),
        ({"model": ""}, "model"),
    ],
)
def test_options_refuse_unknown_keys_and_other_families_options(
    options: dict[str, Any], words: str
):
    with pytest.raises(pydantic.ValidationError) as refused:
        AimlApiOptions.model_validate(options)
    assert words in str(refused.value)


def test_each_family_takes_its_own_options():
    AimlApiOptions(model="nova-3", keyterm=["AIML"], diarize=True, smart_format=True)
    AimlApiOptions(keywords=["AIML:2"], paragraphs=True, utterances=True, punctuate=True)
    AimlApiOptions(model="aai/universal", speaker_labels=True, punctuate=True, word_boost=["x"])
    AimlApiOptions(model="openai/gpt-4o-transcribe", prompt="Names: Ada.", temperature=0.2)
    # mai-transcribe's own spec: temperature, top_p, max_tokens, max_completion_tokens.
    AimlApiOptions(
        model="microsoft/mai-transcribe-1.5",
        temperature=0.2,
        top_p=0.9,
        max_tokens=500,
        max_completion_tokens=500,
    )
