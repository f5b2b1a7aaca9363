"""Daglo's recorded payloads and status words, converted to transcripts and job updates."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from app.providers.daglo import STATUSES, build_transcript, seconds, update_from_status
from app.providers.daglo_options import DagloOptions
from tests.providers.daglo_support import RID, answer, payload, provider

# --- converters on recorded payloads --------------------------------------------------


def test_the_documented_example_becomes_words_in_seconds_grouped_by_segment_id() -> None:
    body = payload("status_transcribed.json")
    update = update_from_status(RID, body)
    assert update.status == "completed" and update.provider_status == "transcribed"
    assert update.result is not None and update.result.raw == body
    transcript = update.result.transcript
    assert (
        transcript.text
        == "안녕하세요. 액션 파워입니다. 음성 인식의 선두주자 액션 파워의 기술을 만나보세요."
    )
    assert transcript.provider == "daglo"
    # Daglo gives no duration, detected language, confidence, speaker or channel.
    assert transcript.duration is None and transcript.language is None
    assert [s.text for s in transcript.segments] == [
        "안녕하세요.",
        "액션 파워입니다.",
        "음성 인식의 선두주자 액션 파워의 기술을 만나보세요.",
    ]
    first, second, _ = transcript.segments
    assert (first.start, first.end) == (0.06, 0.86)
    assert [(w.text, w.start, w.end) for w in second.words] == [
        ("액션", 0.82, 1.42),
        ("파워입니다.", 1.38, 2.02),
    ]
    words = [w for s in transcript.segments for w in s.words]
    assert len(words) == 10 and words[-1].end == 6.48
    assert all(w.confidence is None for w in words)
    assert all(s.speaker is None and s.channel is None for s in transcript.segments)


def test_speakers_split_segments_and_a_left_out_seconds_is_zero() -> None:
    update = update_from_status("r", payload("status_diarized.json"))
    assert update.result is not None
    transcript = update.result.transcript
    assert [(s.speaker, s.text, s.start, s.end) for s in transcript.segments] == [
        ("1", "여보세요.", 0.3, 1.1),
        ("2", "네 안녕하세요.", 1.5, 2.6),
    ]
    # The language we asked for, echoed back in `custom`: not a detection, not a guess.
    assert transcript.language == "ko-KR"


def test_multichannel_entries_are_channels_when_we_asked_for_them() -> None:
    body = payload("status_multichannel.json")
    transcript = build_transcript(body)
    assert [(s.channel, s.text) for s in transcript.segments] == [(0, "hello there"), (1, "hi")]
    assert transcript.text == "hello there\nhi"
    # Without our echoed channel count, an entry is not known to be a channel.
    body.pop("custom")
    assert {s.channel for s in build_transcript(body).segments} == {None}


def test_custom_echoed_as_json_text_is_read_as_the_object() -> None:
    # An upload sends `custom` as a form field of JSON text (the multipart encoding
    # of nested fields is not documented): Daglo may echo it back as that text.
    body = payload("status_multichannel.json")
    body["custom"] = json.dumps(body["custom"])
    transcript = build_transcript(body)
    assert [s.channel for s in transcript.segments] == [0, 1]
    assert transcript.language == "en-US" and transcript.text == "hello there\nhi"
    body["custom"] = "not json"
    assert build_transcript(body).language is None


def test_the_channels_asked_in_the_options_need_no_echo() -> None:
    body = payload("status_multichannel.json")
    body.pop("custom")
    update = update_from_status("r", body, channels=2)
    assert update.result is not None
    assert [s.channel for s in update.result.transcript.segments] == [0, 1]
    assert update.result.transcript.text == "hello there\nhi"


async def test_fetch_reads_the_channel_count_from_the_jobs_options() -> None:
    body = payload("status_multichannel.json")
    body.pop("custom")
    options = DagloOptions.model_validate({"sttConfig": {"multiChannel": {"channelCount": 2}}})
    update = await provider(answer(200, body)).fetch(RID, options)
    assert update.result is not None
    assert [s.channel for s in update.result.transcript.segments] == [0, 1]
    plain = await provider(answer(200, body)).fetch(RID, DagloOptions())
    assert plain.result is not None
    assert {s.channel for s in plain.result.transcript.segments} == {None}


def test_nlp_results_are_kept_in_the_raw_payload() -> None:
    body = payload("status_nlp.json")
    update = update_from_status("r", body)
    assert update.result is not None
    assert update.result.raw["sttResults"][0]["sentiment"] == "Negative"
    assert update.result.transcript.text == "서비스가 너무 느려요."


def test_the_callback_example_has_text_but_no_times() -> None:
    transcript = build_transcript(payload("callback_transcribed.json"))
    [segment] = transcript.segments
    assert segment.text == transcript.text and transcript.text.startswith("안녕하세요.")
    assert segment.start is None and segment.end is None and segment.words == []


def test_transcribed_without_results_is_an_empty_transcript() -> None:
    update = update_from_status("r", {"rid": "r", "status": "transcribed"})
    assert update.result is not None
    assert update.result.transcript.text == "" and update.result.transcript.segments == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"seconds": "0", "nanos": 60000000}, 0.06),
        ({"seconds": "1", "nanos": 419999999}, 1.42),
        ({"seconds": 4, "nanos": 0}, 4.0),
        ({"nanos": 500000000}, 0.5),
        ({"seconds": "12"}, 12.0),
        (None, None),
    ],
)
def test_seconds_from_a_protobuf_duration(value: Any, expected: float | None) -> None:
    assert seconds(value) == expected


@pytest.mark.parametrize("value", ["1.5s", {"seconds": "one"}, {"seconds": True}, 3])
def test_seconds_refuses_other_shapes(value: Any) -> None:
    with pytest.raises(ValueError):
        seconds(value)


# --- status words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "ours"),
    [
        ("ai_requested", "processing"),
        ("uploaded", "processing"),
        ("file_processing", "processing"),
        ("transcribing", "processing"),
        ("post_processing", "processing"),
        ("transcribed", "completed"),
        ("input_error", "failed"),
        ("transcript_error", "failed"),
        ("file_error", "failed"),
    ],
)
def test_every_documented_status_word_maps(word: str, ours: str) -> None:
    assert STATUSES[word] == ours
    update = update_from_status(RID, {"rid": RID, "status": word})
    assert update.status == ours and update.provider_status == word
    assert update.provider_job_id == RID


def test_an_unknown_status_keeps_processing_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="app.providers.daglo"):
        update = update_from_status(RID, {"status": "queued_for_gpu"})
    assert update.status == "processing" and update.provider_status == "queued_for_gpu"
    assert "queued_for_gpu" in caplog.text


@pytest.mark.parametrize(
    ("name", "code", "retryable"),
    [
        ("status_file_error.json", "invalid_audio", False),
        ("status_input_error.json", "invalid_request", False),
        ("status_transcript_error.json", "provider_failed", True),
    ],
)
def test_vendor_side_failures_have_clear_codes(name: str, code: str, retryable: bool) -> None:
    body = payload(name)
    update = update_from_status(RID, body)
    assert update.status == "failed" and update.error is not None
    assert (update.error.code, update.error.retryable) == (code, retryable)
    assert body["message"] in update.error.message
    assert update.error.provider_detail == {"status": body["status"], "message": body["message"]}
