"""AIML API's recorded payloads and status answers, converted to transcripts and job updates."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from app.providers.aimlapi import STATUS_MAP, interpret
from app.providers.aimlapi_transcripts import (
    assemblyai_transcript,
    deepgram_transcript,
    openai_transcript,
    to_transcript,
)
from app.providers.base import RetryableProviderError
from app.transcripts import Segment, Word
from tests.providers.aimlapi_support import load

SAMPLE = (
    "He doesn't belong to you, and I don't see how you have anything to do with what is be "
    "his power, if he possess only that from this stage to you."
)


def payload(name: str) -> dict[str, Any]:
    answer = load(name)
    inner: dict[str, Any] = answer.get("result") or answer["output"]
    return inner


# --- converters on the recorded payloads ------------------------------------------------


def test_deepgram_with_channels_as_an_array_the_docs_example():
    t = deepgram_transcript(payload("status_completed_deepgram_nova3"))
    assert t.text == SAMPLE
    assert t.duration == 11.4
    assert t.language is None  # the payload names none: nothing is guessed
    assert t.provider == "aimlapi"
    assert t.segments == [
        Segment(
            start=0.32,
            end=0.4,
            text=SAMPLE,  # one speaker on one channel: the vendor's own text
            channel=0,
            speaker="0",
            words=[Word(start=0.32, end=0.4, text="He", confidence=0.9941406)],
        )
    ]


def test_deepgram_with_channels_as_one_object_and_paragraphs_the_spec():
    t = deepgram_transcript(payload("status_completed_deepgram_spec"))
    assert t.text == "He doesn't belong to you, and I don't see."
    assert t.duration == 2.9
    assert [(s.start, s.end, s.text, s.channel, s.speaker) for s in t.segments] == [
        (0.32, 1.68, "He doesn't belong to you,", 0, None),
        (1.92, 2.64, "and I don't see.", 0, None),
    ]
    assert [w.text for w in t.segments[0].words] == ["He", "doesn't", "belong", "to", "you,"]
    assert [w.text for w in t.segments[1].words] == ["and", "I", "don't", "see."]
    assert all(w.confidence == 0.9 for s in t.segments for w in s.words)


def test_deepgram_paragraphs_in_deepgrams_own_form():
    raw = {
        "metadata": {"duration": 3.0},
        "results": {
            "channels": [
                {
                    "alternatives": [
                        {
                            "transcript": "Hi. Bye.",
                            "words": [
                                {"word": "hi", "start": 0.1, "end": 0.4, "punctuated_word": "Hi."},
                                {"word": "bye", "start": 2.0, "end": 2.3},
                            ],
                            "paragraphs": {
                                "transcript": "\nHi.\n\nBye.",
                                "paragraphs": [
                                    {"sentences": [{"text": "Hi."}], "start": 0.1, "end": 0.4},
                                    {"sentences": [], "start": 2.0, "end": 2.3, "speaker": 1},
                                ],
                            },
                        }
                    ]
                }
            ]
        },
    }
    t = deepgram_transcript(raw)
    assert [(s.text, s.speaker, [w.text for w in s.words]) for s in t.segments] == [
        ("Hi.", None, ["Hi."]),
        ("bye", "1", ["bye"]),  # no sentences given: the words' text
    ]


def test_deepgram_multichannel_diarized_gives_each_channel_its_turns():
    t = deepgram_transcript(payload("status_completed_deepgram_multichannel"))
    assert t.text == "Hello there. How are you?\nFine thanks."
    assert t.language == "en"  # detected_language of the channel
    assert t.duration == 4.2
    assert [(s.channel, s.speaker, s.start, s.end, s.text) for s in t.segments] == [
        (0, "0", 0.1, 0.9, "Hello there."),
        (0, "1", 2.0, 2.7, "How are you?"),
        (1, "0", 1.0, 1.8, "Fine thanks."),
    ]


def test_deepgram_utterances_are_the_segments_when_given():
    t = deepgram_transcript(payload("status_completed_deepgram_utterances"))
    assert [(s.start, s.end, s.text, s.channel, s.speaker) for s in t.segments] == [
        (0.1, 0.9, "Hello there.", 0, "0"),
        (2.0, 2.7, "How are you?", 0, "1"),
    ]
    assert [w.text for w in t.segments[1].words] == ["How", "are", "you?"]


def test_deepgram_without_results_is_an_empty_transcript():
    t = deepgram_transcript({"metadata": {"duration": 1.5}, "results": None})
    assert (t.text, t.segments, t.duration) == ("", [], 1.5)


def test_assemblyai_the_docs_example_in_milliseconds():
    t = assemblyai_transcript(payload("status_completed_assemblyai_slam1"))
    assert t.text == SAMPLE
    assert t.language == "en-US"  # AssemblyAI's en_us
    assert t.duration == 11.0  # audio_duration is in seconds
    (segment,) = t.segments
    assert (segment.start, segment.end, segment.text, segment.speaker) == (0.32, 8.16, SAMPLE, None)
    assert len(segment.words) == 31
    assert segment.words[0] == Word(start=0.32, end=0.4, text="He", confidence=0.8894227)
    assert segment.words[-1] == Word(start=8.08, end=8.16, text="you.", confidence=0.7715247)


def test_assemblyai_utterances_carry_the_speakers():
    t = assemblyai_transcript(payload("status_completed_assemblyai_utterances"))
    assert t.text == "Guten Tag. Hallo."
    assert t.language == "de"
    assert [(s.start, s.end, s.text, s.speaker, s.channel) for s in t.segments] == [
        (0.1, 0.9, "Guten Tag.", "A", None),
        (1.5, 2.0, "Hallo.", "B", None),
    ]
    assert t.segments[0].words[1] == Word(start=0.4, end=0.9, text="Tag.", confidence=0.9)


def test_assemblyai_multichannel_words_count_channels_from_zero():
    raw = {
        "text": "a b",
        "words": [
            {"text": "a", "start": 0, "end": 100, "confidence": 1, "channel": "1"},
            {"text": "b", "start": 50, "end": 200, "confidence": 1, "channel": "2"},
        ],
        "audio_duration": 1,
    }
    t = assemblyai_transcript(raw)
    assert [(s.channel, s.text) for s in t.segments] == [(0, "a"), (1, "b")]


def test_openai_text_only_gets_no_invented_times():
    t = openai_transcript(payload("status_completed_openai_gpt4o"))
    assert t.text.startswith("He doesn't belong to you")
    assert (t.segments, t.duration, t.language) == ([], None, None)


@pytest.mark.parametrize(
    ("name", "converter"),
    [
        ("status_completed_deepgram_nova3", deepgram_transcript),
        ("status_completed_deepgram_spec", deepgram_transcript),
        ("status_completed_deepgram_multichannel", deepgram_transcript),
        ("status_completed_assemblyai_slam1", assemblyai_transcript),
        ("status_completed_assemblyai_utterances", assemblyai_transcript),
        ("status_completed_openai_gpt4o", openai_transcript),
    ],
)
def test_the_shape_is_recognised(name: str, converter: Callable[..., Any]):
    assert to_transcript(payload(name)) == converter(payload(name))


def test_an_unknown_shape_is_retryable():
    with pytest.raises(RetryableProviderError, match="shape"):
        to_transcript({"transcription": "hi"})


# --- status answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "ours"),
    [
        ("waiting", "processing"),  # aimlapi.txt
        ("active", "processing"),
        ("queued", "processing"),  # universal-stt-fetch.json
        ("generating", "processing"),
        ("completed", "completed"),
        ("error", "failed"),
        ("failed", "failed"),
    ],
)
def test_every_documented_status_word_maps(word: str, ours: str):
    assert STATUS_MAP[word] == ours
    body: dict[str, Any] = {"status": word, "error": {"name": "E", "message": "m"}}
    if ours == "completed":
        body["result"] = {"text": "hi"}
    update = interpret(body)
    assert update.status == ours
    assert update.provider_status == word


@pytest.mark.parametrize("word", ["paused", "COMPLETED-ISH", None, 7])
def test_an_unknown_status_keeps_processing_and_warns(word: Any, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="app.providers.aimlapi"):
        update = interpret({"status": word, "result": {"text": "hi"}})
    assert update.status == "processing"
    assert update.provider_status == (word if isinstance(word, str) else None)
    assert "unknown status" in caplog.text


@pytest.mark.parametrize(
    "name",
    [
        "status_completed_deepgram_nova3",
        "status_completed_deepgram_spec",
        "status_completed_assemblyai_slam1",
        "status_completed_assemblyai_utterances",
        "status_completed_openai_gpt4o",
    ],
)
@pytest.mark.parametrize("key", ["result", "output"])
def test_the_payload_is_read_from_result_or_output(name: str, key: str):
    body: dict[str, Any] = {"status": "completed", key: payload(name)}
    if key == "output":
        body["result"] = None  # a spec-style answer may name both, one null
    update = interpret(body)
    assert update.status == "completed"
    assert update.result is not None
    assert update.result.transcript == to_transcript(payload(name))
    assert update.result.raw == body  # the vendor's answer is kept as it came


def test_completed_without_a_payload_is_retryable():
    with pytest.raises(RetryableProviderError, match="without a result"):
        interpret({"status": "completed", "output": None, "error": None})


def test_a_vendor_side_error_fails_with_its_name_and_message():
    update = interpret(load("status_error"))
    assert update.status == "failed"
    assert update.provider_status == "error"
    assert update.error is not None
    assert update.error.code == "provider_failed"
    assert update.error.message == (
        "aimlapi could not transcribe the audio: "
        "TranscriptionError: File does not appear to contain audio."
    )
    assert update.error.provider_detail == {
        "status": "error",
        "error": {
            "name": "TranscriptionError",
            "message": "File does not appear to contain audio.",
        },
    }


def test_a_failure_without_a_reason_still_says_what_happened():
    update = interpret({"status": "failed"})
    assert update.error is not None
    assert "status 'failed'" in update.error.message


def test_an_assemblyai_transcript_that_failed_inside_fails_the_job():
    update = interpret(
        {"status": "completed", "result": {"id": "x", "status": "error", "error": "Bad audio"}}
    )
    assert update.status == "failed"
    assert update.error is not None and "Bad audio" in update.error.message
