"""Phonexia's recorded payloads and task states, converted to transcripts and job updates."""

from __future__ import annotations

import logging

import pytest

from app.providers.base import RetryableProviderError
from app.providers.phonexia import STATUS_MAP, build_transcript, capacity_exceeded, task_update
from tests.providers.phonexia_support import TASK, load


def test_done_payload_becomes_the_normalised_transcript() -> None:
    transcript = build_transcript(load("done.json")["result"])
    assert transcript.provider == "phonexia"
    # The vendor gives neither a duration nor (on this engine) a language.
    assert transcript.duration is None and transcript.language is None
    # Segments in time order across channels; channel_number is 0-based, as ours.
    assert [(s.channel, s.text) for s in transcript.segments] == [
        (0, "hello world"),
        (1, "good morning frumious"),
    ]
    assert transcript.text == "hello world good morning frumious"
    first = transcript.segments[0]
    assert (first.start, first.end) == (0.06, 1.86)
    assert first.speaker is None
    assert [(w.text, w.start, w.end, w.confidence) for w in first.words] == [
        ("hello", 0.06, 0.86, None),
        ("world", 0.98, 1.86, None),
    ]


def test_whisper_payload_has_segments_with_a_language_and_no_words() -> None:
    transcript = build_transcript(load("whisper_done.json")["result"])
    assert transcript.language == "en"
    assert [(s.text, s.channel, s.words) for s in transcript.segments] == [("Hello world.", 0, [])]


def test_missing_or_odd_fields_stay_none_rather_than_invented() -> None:
    result = {
        "one_best": {
            "segments": [
                {"text": "no times", "channel_number": True, "words": [{"text": "no"}]},
                {"text": "", "words": []},  # nothing to show
                "not a segment",
            ]
        }
    }
    transcript = build_transcript(result)
    [segment] = transcript.segments
    assert (segment.start, segment.end, segment.channel) == (None, None, None)
    assert (segment.words[0].start, segment.words[0].end) == (None, None)
    assert build_transcript({}).segments == []


def test_several_whisper_languages_leave_the_transcript_language_open() -> None:
    result = {
        "one_best": {
            "segments": [
                {
                    "channel_number": 0,
                    "start_time": 0,
                    "end_time": 1,
                    "language": "en",
                    "text": "a",
                },
                {
                    "channel_number": 0,
                    "start_time": 1,
                    "end_time": 2,
                    "language": "cs",
                    "text": "b",
                },
            ]
        }
    }
    assert build_transcript(result).language is None


def test_done_task_completes_with_the_raw_payload_kept() -> None:
    body = load("done.json")
    update = task_update(body, TASK)
    assert (update.status, update.provider_status, update.provider_job_id) == (
        "completed",
        "done",
        TASK,
    )
    assert update.result is not None and update.result.raw == body
    assert update.result.transcript.segments[0].text == "hello world"


@pytest.mark.parametrize(
    ("state", "code", "retryable", "message"),
    [
        # The input was at fault: a permanent failure.
        ("rejected", "provider_rejected", False, "Media file could not be decoded"),
        # The vendor's own failure: the client may try again.
        ("failed", "provider_failed", True, "Task execution failed"),
    ],
    ids=["rejected", "failed"],
)
def test_a_task_ended_badly_fails_with_the_vendor_detail(
    state: str, code: str, retryable: bool, message: str
) -> None:
    body = load(f"{state}.json")
    update = task_update(body, TASK)
    assert (update.status, update.provider_status) == ("failed", state)
    assert update.error is not None
    assert update.error.code == code
    assert update.error.retryable is retryable
    assert update.error.provider_detail == body["error"]
    assert message in update.error.message


@pytest.mark.parametrize(
    ("state", "ours"),
    [
        ("pending", "processing"),
        ("running", "processing"),
        ("done", "completed"),
        ("rejected", "failed"),
        ("failed", "failed"),
    ],
)
def test_every_documented_state_is_mapped(state: str, ours: str) -> None:
    assert STATUS_MAP[state] == ours
    body = {**load(f"{state}.json")} if state in ("done", "rejected", "failed") else {}
    body["task"] = {"task_id": TASK, "state": state}
    assert task_update(body, TASK).status == ours


@pytest.mark.parametrize("state", ["queued", "DONE", None, 7])
def test_an_unknown_state_keeps_the_job_processing_and_warns(
    state: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.providers.phonexia"):
        update = task_update({"task": {"task_id": TASK, "state": state}}, TASK)
    assert update.status == "processing"
    assert update.provider_status == (state if isinstance(state, str) else None)
    assert "unknown state" in caplog.text


def test_done_without_a_result_is_retried() -> None:
    with pytest.raises(RetryableProviderError):
        task_update({"task": {"task_id": TASK, "state": "done"}}, TASK)


def test_capacity_is_recognised_in_the_envelope_only() -> None:
    assert capacity_exceeded({"status_code": 403, "body": load("error_403_capacity.json")})
    assert capacity_exceeded({"status_code": 507, "body": load("error_507_storage.json")})
    assert not capacity_exceeded({"status_code": 400, "body": load("error_400_invalid.json")})
    assert not capacity_exceeded({"status_code": 403, "body": "Forbidden"})
    assert not capacity_exceeded(None)
