"""The OpenAI-compatible upstream's answer -> the gateway's ``Transcript``.

``build_transcript`` normalises a ``verbose_json`` or ``json`` answer: segments,
words (each put into the segment that holds it), and the language Whisper names
("english") as a tag, by ``LANGUAGE_CODES``. Pure functions, no HTTP; the
adapter is in ``app.providers.openai``.
"""

from __future__ import annotations

import bisect
from typing import Any

from app.transcripts import Segment, Transcript, Word

VENDOR = "openai"  # the provider name on every transcript, and the adapter's


# Whisper's language names (whisper/tokenizer.py, with its aliases), as verbose_json
# gives them, to ISO 639-1. Cantonese and Hawaiian have no two-letter code, so they
# get their ISO 639-3 codes, which are their BCP-47 tags; Javanese gets "jv", not
# Whisper's own "jw".
LANGUAGE_CODES: dict[str, str] = {
    "afrikaans": "af",
    "albanian": "sq",
    "amharic": "am",
    "arabic": "ar",
    "armenian": "hy",
    "assamese": "as",
    "azerbaijani": "az",
    "bashkir": "ba",
    "basque": "eu",
    "belarusian": "be",
    "bengali": "bn",
    "bosnian": "bs",
    "breton": "br",
    "bulgarian": "bg",
    "burmese": "my",
    "cantonese": "yue",
    "castilian": "es",
    "catalan": "ca",
    "chinese": "zh",
    "croatian": "hr",
    "czech": "cs",
    "danish": "da",
    "dutch": "nl",
    "english": "en",
    "estonian": "et",
    "faroese": "fo",
    "finnish": "fi",
    "flemish": "nl",
    "french": "fr",
    "galician": "gl",
    "georgian": "ka",
    "german": "de",
    "greek": "el",
    "gujarati": "gu",
    "haitian": "ht",
    "haitian creole": "ht",
    "hausa": "ha",
    "hawaiian": "haw",
    "hebrew": "he",
    "hindi": "hi",
    "hungarian": "hu",
    "icelandic": "is",
    "indonesian": "id",
    "italian": "it",
    "japanese": "ja",
    "javanese": "jv",
    "kannada": "kn",
    "kazakh": "kk",
    "khmer": "km",
    "korean": "ko",
    "lao": "lo",
    "latin": "la",
    "latvian": "lv",
    "letzeburgesch": "lb",
    "lingala": "ln",
    "lithuanian": "lt",
    "luxembourgish": "lb",
    "macedonian": "mk",
    "malagasy": "mg",
    "malay": "ms",
    "malayalam": "ml",
    "maltese": "mt",
    "mandarin": "zh",
    "maori": "mi",
    "marathi": "mr",
    "moldavian": "ro",
    "moldovan": "ro",
    "mongolian": "mn",
    "myanmar": "my",
    "nepali": "ne",
    "norwegian": "no",
    "nynorsk": "nn",
    "occitan": "oc",
    "panjabi": "pa",
    "pashto": "ps",
    "persian": "fa",
    "polish": "pl",
    "portuguese": "pt",
    "punjabi": "pa",
    "pushto": "ps",
    "romanian": "ro",
    "russian": "ru",
    "sanskrit": "sa",
    "serbian": "sr",
    "shona": "sn",
    "sindhi": "sd",
    "sinhala": "si",
    "sinhalese": "si",
    "slovak": "sk",
    "slovenian": "sl",
    "somali": "so",
    "spanish": "es",
    "sundanese": "su",
    "swahili": "sw",
    "swedish": "sv",
    "tagalog": "tl",
    "tajik": "tg",
    "tamil": "ta",
    "tatar": "tt",
    "telugu": "te",
    "thai": "th",
    "tibetan": "bo",
    "turkish": "tr",
    "turkmen": "tk",
    "ukrainian": "uk",
    "urdu": "ur",
    "uzbek": "uz",
    "valencian": "ca",
    "vietnamese": "vi",
    "welsh": "cy",
    "yiddish": "yi",
    "yoruba": "yo",
}
_KNOWN_CODES = frozenset(LANGUAGE_CODES.values()) | {"jw"}


def language_code(value: Any) -> str | None:
    """The upstream's language as a tag: OpenAI says "english"; some servers say "en"."""
    if not isinstance(value, str):
        return None
    name = " ".join(value.strip().lower().replace("_", " ").split())
    if name in LANGUAGE_CODES:
        return LANGUAGE_CODES[name]
    primary = name.replace(" ", "-").split("-")[0]
    if primary in _KNOWN_CODES:
        return "jv" if primary == "jw" else primary
    return None


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
