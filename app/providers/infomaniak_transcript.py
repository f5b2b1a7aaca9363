"""Reading Infomaniak's results: where the transcript is, and what shape it has.

The finished transcript comes inline in the results' ``data`` (a JSON object, a
JSON string or plain text) or from a download, as verbose_json, json
(``{"text"}``), plain text, or SRT/WebVTT, whichever response_format was asked
for. Pure functions, no HTTP: infomaniak.py fetches, this module reads.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from app.providers.base import Artifact, ProviderResult
from app.providers.whisper_languages import language_code
from app.transcripts import Segment, Transcript, Word

NAME = "infomaniak"  # the transcripts' provider, and the adapter's name


class UnexpectedPayload(ValueError):
    """The vendor's answer is not in any shape we know (may be transient)."""


def parse_body(text: str) -> dict[str, Any] | str:
    """A result body or inline ``data`` string: a JSON object, or text (plain or subtitles)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            raise UnexpectedPayload("the result looks like JSON but does not parse") from None
        if not isinstance(value, dict):
            raise UnexpectedPayload("the result is not a JSON object")
        return value
    if stripped.startswith('"'):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            return text  # a plain transcript that opens with a quotation mark
        return value if isinstance(value, dict | str) else text
    return text


def looks_like_transcript(value: dict[str, Any]) -> bool:
    return isinstance(value.get("text"), str) or isinstance(value.get("segments"), list)


def inline_payload(data: Any) -> dict[str, Any] | str | None:
    """The transcript carried in the results' ``data``, or None to download it."""
    if isinstance(data, str) and data.strip():
        data = parse_body(data)
    if isinstance(data, dict):
        return data if looks_like_transcript(data) else None
    if isinstance(data, str) and data.strip():
        return data
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _word(raw: Any) -> Word | None:
    if not isinstance(raw, dict):
        return None
    text = raw.get("word", raw.get("text"))
    if not isinstance(text, str) or not text.strip():
        return None
    confidence = _number(raw.get("probability", raw.get("confidence")))
    return Word(
        start=_number(raw.get("start")),
        end=_number(raw.get("end")),
        text=text.strip(),
        confidence=confidence if confidence is not None and 0 <= confidence <= 1 else None,
    )


def _words(raw: Any) -> list[Word]:
    if not isinstance(raw, list):
        return []
    return [word for word in map(_word, raw) if word is not None]


def _attach(segments: list[Segment], words: list[Word]) -> None:
    """Put OpenAI's top-level words into the segments they fall in, in order."""
    index = 0
    for word in words:
        while (
            index + 1 < len(segments)
            and word.start is not None
            and (start := segments[index + 1].start) is not None
            and word.start >= start
        ):
            index += 1
        segments[index].words.append(word)


def transcript_from_json(body: dict[str, Any]) -> Transcript:
    """verbose_json (OpenAI's shape; words top-level or per segment) or json ({"text"})."""
    if not looks_like_transcript(body):
        raise UnexpectedPayload("the result has neither text nor segments")
    raw_segments = body.get("segments")
    segments = [
        Segment(
            start=_number(raw.get("start")),
            end=_number(raw.get("end")),
            text=raw["text"].strip(),
            words=_words(raw.get("words")),
        )
        for raw in (raw_segments if isinstance(raw_segments, list) else [])
        if isinstance(raw, dict) and isinstance(raw.get("text"), str)
    ]
    top_words = _words(body.get("words"))
    text = body.get("text")
    text = text.strip() if isinstance(text, str) else " ".join(s.text for s in segments)
    if top_words and not any(segment.words for segment in segments):
        if not segments:  # words but no segments: one segment spanning them
            segments = [Segment(start=top_words[0].start, end=top_words[-1].end, text=text)]
        _attach(segments, top_words)
    return Transcript(
        text=text,
        language=language_code(body.get("language")),
        duration=_number(body.get("duration")),
        provider=NAME,
        segments=segments,
    )


_CUE_TIMES = re.compile(
    r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})\s*-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
)
_TAG = re.compile(r"<[^>]*>")


def subtitle_format(text: str) -> Literal["srt", "vtt"] | None:
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("WEBVTT"):
        return "vtt"
    lines = stripped.splitlines()
    if len(lines) >= 2 and lines[0].strip().isdigit() and _CUE_TIMES.search(lines[1]):
        return "srt"
    return None


def _cue_seconds(match: re.Match[str], first: int) -> float:
    hours, minutes, seconds, fraction = match.group(first, first + 1, first + 2, first + 3)
    whole = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return round(whole + int(fraction.ljust(3, "0")) / 1000, 3)


def segments_from_subtitles(text: str) -> list[Segment]:
    """SRT or WebVTT cues as segments (markup dropped)."""
    segments: list[Segment] = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip()):
        lines = block.split("\n")
        found = next(
            ((i, m) for i, line in enumerate(lines) if (m := _CUE_TIMES.search(line))), None
        )
        if found is None:  # the WEBVTT header, NOTE and STYLE blocks
            continue
        index, match = found
        cue = " ".join(_TAG.sub("", line).strip() for line in lines[index + 1 :] if line.strip())
        start, end = _cue_seconds(match, 1), _cue_seconds(match, 5)
        if not cue:
            continue
        previous = segments[-1] if segments else None
        # highlight_words repeats a line once per word: one segment, not many.
        if previous is not None and previous.text == cue and previous.end == start:
            previous.end = end
            continue
        segments.append(Segment(start=start, end=end, text=cue))
    return segments


def result_from_payload(payload: dict[str, Any] | str, raw: Any) -> ProviderResult:
    """The normalised transcript (and the vendor's subtitles, when it sent some)."""
    if isinstance(payload, dict):
        return ProviderResult(transcript=transcript_from_json(payload), raw=raw)
    fmt = subtitle_format(payload)
    if fmt is None:  # plain text: no times to give
        return ProviderResult(transcript=Transcript(text=payload.strip(), provider=NAME), raw=raw)
    segments = segments_from_subtitles(payload)
    transcript = Transcript(
        text=" ".join(segment.text for segment in segments), provider=NAME, segments=segments
    )
    content_type = "application/x-subrip" if fmt == "srt" else "text/vtt"
    artifact = Artifact(name=fmt, content_type=content_type, data=payload.encode())
    return ProviderResult(transcript=transcript, raw=raw, artifacts=[artifact])
