"""The OpenAI answers, rendered from a normalised transcript (no server, no database)."""

from __future__ import annotations

from collections import Counter

import pytest

from app.openai_compat.render import (
    _ALIASES,
    LANGUAGE_NAMES,
    TEXT_MEDIA_TYPE,
    language_name,
    plain_text,
    render,
    verbose_json,
)
from app.providers.whisper_languages import LANGUAGE_CODES
from app.transcripts import Segment, Transcript, TranscriptHasNoTimings, Word, render_srt


def two_segments(**overrides: object) -> Transcript:
    values: dict = {
        "text": "Hello world. This is a test.",
        "language": "en",
        "duration": 2.9,
        "provider": "fake",
        "segments": [
            Segment(
                start=0.0,
                end=1.2,
                text="Hello world.",
                words=[
                    Word(start=0.12, end=0.5, text="Hello", confidence=0.9),
                    Word(start=0.56, end=1.02, text="world"),
                ],
            ),
            Segment(
                start=1.5,
                end=2.64,
                text=" This is  a test. ",
                words=[Word(start=1.5, end=1.72, text="This"), Word(text="is")],
            ),
        ],
    }
    values.update(overrides)
    return Transcript(**values)


def test_json_is_the_text_alone():
    body, media_type = render(two_segments(), "json")
    assert body == {"text": "Hello world. This is a test."}
    assert media_type == "application/json"


def test_text_comes_from_the_segments_when_the_vendor_gave_none():
    t = two_segments(text="  ")
    assert plain_text(t) == "Hello world. This is a test."
    assert render(t, "json")[0] == {"text": "Hello world. This is a test."}


@pytest.mark.parametrize("response_format", ["text", "srt", "vtt"])
def test_text_srt_and_vtt_are_plain_text_as_openai_sends_them(response_format):
    body, media_type = render(two_segments(), response_format)
    assert media_type == TEXT_MEDIA_TYPE
    assert isinstance(body, str) and body.endswith("\n")
    if response_format == "text":
        assert body == "Hello world. This is a test.\n"
    elif response_format == "srt":
        assert body == render_srt(two_segments())
        assert body.startswith("1\n00:00:00,000 --> 00:00:01,200\nHello world.\n")
    else:
        assert body.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.200\nHello world.\n")


@pytest.mark.parametrize("response_format", ["srt", "vtt"])
def test_subtitles_need_times(response_format):
    untimed = Transcript(text="hello", provider="fake", segments=[Segment(text="hello")])
    with pytest.raises(TranscriptHasNoTimings):
        render(untimed, response_format)


def test_verbose_json_without_granularities_has_segments_and_no_words():
    body = verbose_json(two_segments())
    assert body == {
        "task": "transcribe",
        "language": "english",
        "duration": 2.9,
        "text": "Hello world. This is a test.",
        "segments": [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": 1.2,
                "text": "Hello world.",
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": None,
                "compression_ratio": None,
                "no_speech_prob": None,
            },
            {
                "id": 1,
                "seek": 0,
                "start": 1.5,
                "end": 2.64,
                "text": "This is a test.",
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": None,
                "compression_ratio": None,
                "no_speech_prob": None,
            },
        ],
    }
    assert render(two_segments(), "verbose_json") == (body, "application/json")


def test_verbose_json_words_only_when_asked_for():
    words_only = verbose_json(two_segments(), ["word"])
    assert "segments" not in words_only
    assert words_only["words"] == [
        {"word": "Hello", "start": 0.12, "end": 0.5},
        {"word": "world", "start": 0.56, "end": 1.02},
        {"word": "This", "start": 1.5, "end": 1.72},
        {"word": "is", "start": None, "end": None},  # the vendor gave no times: none made up
    ]
    both = verbose_json(two_segments(), ("word", "segment"))
    assert len(both["words"]) == 4 and len(both["segments"]) == 2
    assert "words" not in verbose_json(two_segments(), ["segment"])


def test_verbose_json_leaves_unknowns_null():
    t = Transcript(text="hi", provider="fake")
    body = verbose_json(t, ["word", "segment"])
    assert body == {
        "task": "transcribe",
        "language": None,
        "duration": None,
        "text": "hi",
        "words": [],
        "segments": [],
    }
    # The language the job asked for, when the transcript does not say.
    assert verbose_json(t, language="fr-CA")["language"] == "french"


def test_verbose_json_is_in_time_order_across_channels():
    t = Transcript(
        text="a b",
        provider="fake",
        segments=[
            Segment(start=2.0, end=3.0, text="late", channel=0, words=[Word(text="late")]),
            Segment(start=0.5, end=1.0, text="early", channel=1, words=[Word(text="early")]),
        ],
    )
    body = verbose_json(t, ["word", "segment"])
    assert [s["text"] for s in body["segments"]] == ["early", "late"]
    assert [s["id"] for s in body["segments"]] == [0, 1]
    assert [w["word"] for w in body["words"]] == ["early", "late"]
    # Without a start everywhere there is no order to go by: kept as given.
    t.segments[1].start = None
    assert [s["text"] for s in verbose_json(t)["segments"]] == ["late", "early"]


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("en", "english"),
        ("en-US", "english"),
        ("es", "spanish"),  # not Whisper's alias "castilian"
        ("zh-Hant", "chinese"),
        ("nl", "dutch"),
        ("yue", "cantonese"),
        ("xx", "xx"),  # no name known: the tag as it is
        (None, None),
    ],
)
def test_language_is_named_as_openai_names_it(tag, name):
    assert language_name(tag) == name


def test_every_whisper_language_has_exactly_one_name():
    names = Counter(code for name, code in LANGUAGE_CODES.items() if name not in _ALIASES)
    assert all(count == 1 for count in names.values()), names
    assert set(LANGUAGE_NAMES) == set(LANGUAGE_CODES.values())
    assert set(LANGUAGE_CODES) >= _ALIASES
    for code, name in LANGUAGE_NAMES.items():
        assert LANGUAGE_CODES[name] == code
