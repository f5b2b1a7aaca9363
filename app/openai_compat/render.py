"""A normalised transcript as OpenAI's ``/v1/audio/transcriptions`` answers it.

Pure functions: whatever the vendor returned, the answer is rendered from the
gateway's transcript. What the transcript does not know stays ``null``; the
only made-up values are the ones OpenAI's SDK needs to find in a segment and
that mean "nothing special" (``seek`` 0, ``tokens`` [], ``temperature`` 0.0).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from app.providers.whisper_languages import LANGUAGE_CODES
from app.transcripts import Segment, Transcript, render_srt, render_text, render_vtt

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")
# OpenAI answers text, srt and vtt alike as plain text.
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"

# Whisper's aliases: the other name of each of these codes is the one OpenAI says.
_ALIASES = frozenset(
    {
        "burmese",
        "castilian",
        "flemish",
        "haitian",
        "letzeburgesch",
        "mandarin",
        "moldavian",
        "moldovan",
        "panjabi",
        "pushto",
        "sinhalese",
        "valencian",
    }
)
LANGUAGE_NAMES: dict[str, str] = {
    code: name for name, code in LANGUAGE_CODES.items() if name not in _ALIASES
}


def language_name(tag: str | None) -> str | None:
    """OpenAI names the language ("english"); a tag Whisper has no name for stays a tag."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-")[0].lower()
    return LANGUAGE_NAMES.get(primary, tag)


def _clean(text: str) -> str:
    return " ".join(text.split())


def plain_text(t: Transcript) -> str:
    """The transcript's text; from its segments when the vendor gave no whole text."""
    return _clean(t.text) or " ".join(filter(None, (_clean(s.text) for s in t.segments)))


def _in_time_order(segments: list[Segment]) -> list[Segment]:
    # Multichannel vendors list each channel in turn; OpenAI's answer is in time order.
    if all(s.start is not None for s in segments):
        return sorted(segments, key=lambda s: s.start or 0.0)
    return list(segments)


def verbose_json(
    t: Transcript, granularities: Collection[str] = (), language: str | None = None
) -> dict[str, Any]:
    """``verbose_json``: ``words`` only when asked for, ``segments`` when asked or
    when no granularity is named, as OpenAI does. ``language``: the tag the job
    asked for, used when the transcript does not say."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": language_name(t.language or language),
        "duration": t.duration,
        "text": plain_text(t),
    }
    segments = _in_time_order(t.segments)
    if "word" in granularities:
        body["words"] = [
            {"word": _clean(w.text), "start": w.start, "end": w.end}
            for s in segments
            for w in s.words
            if _clean(w.text)
        ]
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {
                "id": i,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": _clean(s.text),
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": None,
                "compression_ratio": None,
                "no_speech_prob": None,
            }
            for i, s in enumerate(segments)
        ]
    return body


def render(
    t: Transcript,
    response_format: ResponseFormat,
    granularities: Collection[str] = (),
    language: str | None = None,
) -> tuple[str | dict[str, Any], str]:
    """The body (a JSON object or text) and its media type.

    srt and vtt raise ``TranscriptHasNoTimings`` when the vendor gave no times.
    """
    if response_format == "json":
        return {"text": plain_text(t)}, "application/json"
    if response_format == "verbose_json":
        return verbose_json(t, granularities, language), "application/json"
    renderer = {"text": render_text, "srt": render_srt, "vtt": render_vtt}[response_format]
    return renderer(t), TEXT_MEDIA_TYPE
