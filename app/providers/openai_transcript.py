"""The OpenAI-compatible upstream's answer -> the gateway's ``Transcript``.

``build_transcript`` normalises a ``verbose_json`` or ``json`` answer: segments,
words (each put into the segment that holds it), and the language Whisper names
("english") as a tag (``whisper_languages``). Pure functions, no HTTP; the
adapter is in ``app.providers.openai``.
"""

from __future__ import annotations

import bisect
from typing import Any

from app.providers.whisper_languages import language_code
from app.transcripts import Segment, Transcript, Word

VENDOR = "openai"  # the provider name on every transcript, and the adapter's


def _seconds(value: Any) -> float | None:
    """A time in seconds; some servers send numbers as strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value and value >= 0:  # not NaN
        return round(float(value), 3)
    return None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _words(body: dict[str, Any]) -> list[Word]:
    raw = body.get("words")
    words = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        text = _text(item.get("word", item.get("text")))
        if text:
            words.append(
                Word(start=_seconds(item.get("start")), end=_seconds(item.get("end")), text=text)
            )
    return words


def _segments(body: dict[str, Any]) -> list[Segment]:
    raw = body.get("segments")
    segments = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        # avg_logprob and no_speech_prob are decoder scores, not a confidence: not kept.
        segments.append(
            Segment(
                start=_seconds(item.get("start")),
                end=_seconds(item.get("end")),
                text=_text(item.get("text")),
            )
        )
    return segments


def assign_words(segments: list[Segment], words: list[Word]) -> None:
    """Put each word into the segment whose time range holds the word's middle.

    Whisper's word times may cross a segment's edge by a little, or fall in a
    pause between segments: such a word goes to the nearest segment. A word
    without times follows the word before it.
    """
    timed = sorted(
        (s for s in segments if s.start is not None and s.end is not None),
        key=lambda s: s.start or 0.0,
    )
    if not timed:
        if segments:  # no times to go by: keep the words rather than lose them
            segments[0].words.extend(words)
        return
    starts = [s.start or 0.0 for s in timed]
    previous: Segment = timed[0]
    for word in words:
        if word.start is None or word.end is None:
            previous.words.append(word)
            continue
        middle = (word.start + word.end) / 2
        i = bisect.bisect_right(starts, middle) - 1  # the last segment starting at or before
        candidates = [timed[j] for j in (i, i + 1) if 0 <= j < len(timed)]
        previous = min(candidates, key=lambda s: _distance(s, middle))
        previous.words.append(word)


def _distance(segment: Segment, t: float) -> float:
    assert segment.start is not None and segment.end is not None
    if segment.start <= t <= segment.end:
        return 0.0
    return min(abs(segment.start - t), abs(segment.end - t))


def build_transcript(body: dict[str, Any]) -> Transcript:
    """Normalise a ``verbose_json`` or ``json`` answer; what it lacks stays empty."""
    text = _text(body.get("text"))
    segments = _segments(body)
    words = _words(body)
    if words and not any(s.start is not None and s.end is not None for s in segments):
        # Words without segments: one segment spanning the words, with their own times.
        first, last = words[0], words[-1]
        segments = [
            Segment(start=first.start, end=last.end, text=text or " ".join(w.text for w in words))
        ]
    if words:
        assign_words(segments, words)
    if not text:
        text = " ".join(s.text for s in segments if s.text)
    return Transcript(
        text=text,
        language=language_code(body.get("language")),
        duration=_seconds(body.get("duration")),
        provider=VENDOR,
        segments=segments,
    )
