"""AIML API result payloads -> the gateway's ``Transcript``.

The GET answer's payload comes in three documented shapes: Deepgram's
(``results.channels`` an array in the examples, a single object in the spec),
AssemblyAI's transcript object (times in milliseconds) and OpenAI's ``{text}``.
``to_transcript`` tells them apart and normalises each; the adapter is in
``app.providers.aimlapi``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from app.providers.base import RetryableProviderError
from app.transcripts import Segment, Transcript, Word

VENDOR = "aimlapi"  # the provider name on every transcript, and the adapter's


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _speaker(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, (int, str)) and str(value) != "" else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _ms(value: Any) -> float | None:
    number = _num(value)
    return None if number is None else round(number / 1000, 3)


def _turns(words: Iterable[tuple[Word, str | None, int | None]], text: str | None) -> list[Segment]:
    """Consecutive words of one speaker on one channel make a segment (a turn).

    ``text`` is the vendor's own text, used when all words form a single turn.
    """
    groups: list[tuple[str | None, int | None, list[Word]]] = []
    for word, speaker, channel in words:
        if not groups or groups[-1][:2] != (speaker, channel):
            groups.append((speaker, channel, []))
        groups[-1][2].append(word)
    return [
        Segment(
            start=group[0].start,
            end=group[-1].end,
            text=text if text and len(groups) == 1 else " ".join(w.text for w in group),
            channel=channel,
            speaker=speaker,
            words=group,
        )
        for speaker, channel, group in groups
    ]


def _deepgram_word(raw: dict[str, Any]) -> Word | None:
    text = _str(raw.get("punctuated_word")) or _str(raw.get("word"))
    if not text:
        return None
    return Word(
        start=_num(raw.get("start")),
        end=_num(raw.get("end")),
        text=text,
        confidence=_num(raw.get("confidence")),
    )


def _deepgram_paragraphs(value: Any) -> list[dict[str, Any]]:
    """Paragraph objects ({sentences, start, end, speaker?}) from either documented form:
    Deepgram's ``{transcript, paragraphs: [...]}`` or the spec's ``[{transcript,
    paragraphs: {...}}]``."""
    if isinstance(value, dict):
        value = [value]
    found: list[dict[str, Any]] = []
    for entry in _dicts(value):
        inner = entry.get("paragraphs")
        if isinstance(inner, dict):
            found.append(inner)
        else:
            found.extend(_dicts(inner))
    return found


def _deepgram_channel(best: dict[str, Any], channel: int) -> list[Segment]:
    pairs = [
        (word, _speaker(raw.get("speaker")))
        for raw in _dicts(best.get("words"))
        if (word := _deepgram_word(raw)) is not None
    ]
    paragraphs = _deepgram_paragraphs(best.get("paragraphs"))
    if not paragraphs:
        transcript = _str(best.get("transcript"))
        return _turns(((w, s, channel) for w, s in pairs), transcript)
    # Each word goes to the last paragraph that starts at or before it.
    starts = [_num(p.get("start")) for p in paragraphs]
    owned: list[list[Word]] = [[] for _ in paragraphs]
    index = 0
    for word, _ in pairs:
        while (
            index + 1 < len(paragraphs)
            and word.start is not None
            and (next_start := starts[index + 1]) is not None
            and word.start >= next_start
        ):
            index += 1
        owned[index].append(word)
    segments = []
    for paragraph, words in zip(paragraphs, owned, strict=True):
        sentences = [_str(s.get("text")) for s in _dicts(paragraph.get("sentences"))]
        text = " ".join(s for s in sentences if s) or " ".join(w.text for w in words)
        segments.append(
            Segment(
                start=_num(paragraph.get("start")),
                end=_num(paragraph.get("end")),
                text=text,
                channel=channel,
                speaker=_speaker(paragraph.get("speaker")),
                words=words,
            )
        )
    return segments


def deepgram_transcript(payload: dict[str, Any]) -> Transcript:
    """A Deepgram-shaped payload: each channel's best alternative."""
    metadata, results = _dict(payload.get("metadata")), _dict(payload.get("results"))
    channels = results.get("channels")
    # The examples give an array of channels, the spec a single channel object.
    channel_list = [channels] if isinstance(channels, dict) else _dicts(channels)
    texts: list[str] = []
    segments: list[Segment] = []
    language = None
    for index, channel in enumerate(channel_list):
        alternatives = _dicts(channel.get("alternatives"))
        best = alternatives[0] if alternatives else {}
        if transcript := _str(best.get("transcript")):
            texts.append(transcript)
        language = language or _str(channel.get("detected_language"))
        segments.extend(_deepgram_channel(best, index))
    utterances = _dicts(results.get("utterances"))
    if utterances:  # asked for with utterances=true: the vendor's own segmentation
        segments = [
            Segment(
                start=_num(u.get("start")),
                end=_num(u.get("end")),
                text=_str(u.get("transcript")) or "",
                channel=c if isinstance(c := u.get("channel"), int) else None,
                speaker=_speaker(u.get("speaker")),
                words=[w for raw in _dicts(u.get("words")) if (w := _deepgram_word(raw))],
            )
            for u in utterances
        ]
    return Transcript(
        text="\n".join(texts),
        language=language,
        duration=_num(metadata.get("duration")),
        provider=VENDOR,
        segments=segments,
    )


def _assemblyai_channel(value: Any) -> int | None:
    # AssemblyAI numbers channels from 1 as strings ("1", "2"); ours count from 0.
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    return int(text) - 1 if text.isdigit() and int(text) > 0 else None


def _assemblyai_word(raw: dict[str, Any]) -> Word | None:
    text = _str(raw.get("text"))
    if not text:
        return None
    return Word(
        start=_ms(raw.get("start")),
        end=_ms(raw.get("end")),
        text=text,
        confidence=_num(raw.get("confidence")),
    )


def _assemblyai_language(code: Any) -> str | None:
    """``en_us`` -> ``en-US``: AssemblyAI's codes as BCP-47 tags."""
    if not isinstance(code, str) or not code:
        return None
    primary, _, region = code.replace("-", "_").partition("_")
    region = {"uk": "GB"}.get(region.lower(), region.upper())
    return f"{primary.lower()}-{region}" if region else primary.lower()


def assemblyai_transcript(payload: dict[str, Any]) -> Transcript:
    """An AssemblyAI transcript object: word and utterance times are in milliseconds."""
    text = _str(payload.get("text")) or ""
    utterances = _dicts(payload.get("utterances"))
    if utterances:
        segments = [
            Segment(
                start=_ms(u.get("start")),
                end=_ms(u.get("end")),
                text=_str(u.get("text")) or "",
                channel=_assemblyai_channel(u.get("channel")),
                speaker=_speaker(u.get("speaker")),
                words=[w for raw in _dicts(u.get("words")) if (w := _assemblyai_word(raw))],
            )
            for u in utterances
        ]
    else:
        segments = _turns(
            (
                (word, _speaker(raw.get("speaker")), _assemblyai_channel(raw.get("channel")))
                for raw in _dicts(payload.get("words"))
                if (word := _assemblyai_word(raw)) is not None
            ),
            text,
        )
    return Transcript(
        text=text,
        language=_assemblyai_language(payload.get("language_code")),
        duration=_num(payload.get("audio_duration")),  # seconds, unlike the word times
        provider=VENDOR,
        segments=segments,
    )


def openai_transcript(payload: dict[str, Any]) -> Transcript:
    """OpenAI's ``{text, usage}``: no times, so no segments (none are made up)."""
    return Transcript(text=_str(payload.get("text")) or "", provider=VENDOR, segments=[])


def to_transcript(payload: dict[str, Any]) -> Transcript:
    """Normalise a payload of any of the three documented shapes."""
    if "results" in payload or "metadata" in payload:
        return deepgram_transcript(payload)
    if any(key in payload for key in ("words", "utterances", "audio_duration", "speech_model")):
        return assemblyai_transcript(payload)
    if isinstance(payload.get("text"), str):
        return openai_transcript(payload)
    raise RetryableProviderError(
        f"{VENDOR} status: a result of a shape the gateway does not know",
        provider_detail={"result_keys": sorted(str(k) for k in payload)[:50]},
    )
