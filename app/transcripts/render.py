"""Render a :class:`Transcript` as plain text, SubRip (srt) or WebVTT (vtt).

Cue times come only from the times a vendor gave: a segment without times is
left out of srt/vtt rather than given made-up ones.
"""

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from app.transcripts.model import Segment, Transcript

# Common subtitle guidelines: two lines of at most 42 characters, on screen
# for at most about 7 seconds.
MAX_LINE_CHARS = 42
MAX_LINES = 2
MAX_CUE_CHARS = MAX_LINE_CHARS * MAX_LINES
MAX_CUE_SECONDS = 7.0


class TranscriptHasNoTimings(ValueError):
    def __init__(self, provider: str) -> None:
        super().__init__(
            f"srt and vtt need segment start and end times, and provider {provider!r} "
            "gave none for this transcript; render it as text instead"
        )


@dataclass(frozen=True)
class _Cue:
    start: float
    end: float
    lines: list[str]
    label: str | None


def _clean(text: str) -> str:
    # One line of single spaces: a blank line inside a cue would end it early.
    return " ".join(text.split())


def _labeller(t: Transcript) -> Callable[[Segment], str | None]:
    """How to label a segment: only worth it when there is more than one voice."""
    if len({s.speaker for s in t.segments if s.speaker is not None}) > 1:
        return lambda s: None if s.speaker is None else f"Speaker {s.speaker}"
    if len({s.channel for s in t.segments if s.channel is not None}) > 1:
        return lambda s: None if s.channel is None else f"Channel {s.channel}"
    return lambda s: None


def render_text(t: Transcript) -> str:
    label_of = _labeller(t)
    if any(label_of(s) for s in t.segments):
        lines = []
        for seg in t.segments:
            text, label = _clean(seg.text), label_of(seg)
            if text:
                lines.append(f"{label}: {text}" if label else text)
        body = "\n".join(lines)
    else:
        body = t.text.strip() or " ".join(filter(None, (_clean(s.text) for s in t.segments)))
    return body + "\n"


def _wrap(text: str, prefix: str) -> list[str]:
    # The prefix is shown on screen (srt), so it counts towards the first line.
    return textwrap.wrap(
        text,
        MAX_LINE_CHARS,
        initial_indent=prefix,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _split(seg: Segment, start: float, end: float, prefix: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue for one timed segment."""
    text = _clean(seg.text)
    words = [w for w in seg.words if _clean(w.text)]
    timed = [
        (w.start, w.end, _clean(w.text)) for w in words if w.start is not None and w.end is not None
    ]
    is_long = end - start > MAX_CUE_SECONDS or len(text) > MAX_CUE_CHARS
    # Cutting needs a time at every cut, so every word must carry its times.
    if not is_long or not timed or len(timed) != len(words):
        return [(start, end, text)]

    def fits(piece: list[tuple[float, float, str]]) -> bool:
        piece_text = " ".join(x for _, _, x in piece)
        return (
            len(_wrap(piece_text, prefix)) <= MAX_LINES
            and piece[-1][1] - piece[0][0] <= MAX_CUE_SECONDS
        )

    pieces: list[list[tuple[float, float, str]]] = [[]]
    for word in timed:
        if pieces[-1] and not fits([*pieces[-1], word]):
            pieces.append([])
        pieces[-1].append(word)
    return [(p[0][0], p[-1][1], " ".join(x for _, _, x in p)) for p in pieces]


def _cues(t: Transcript, shown_prefix: Callable[[str], str]) -> list[_Cue]:
    if not any(s.start is not None and s.end is not None for s in t.segments):
        if t.segments or t.text.strip():
            raise TranscriptHasNoTimings(t.provider)
        return []  # nothing was said: an empty subtitle file is the honest answer
    label_of = _labeller(t)
    cues = []
    for seg in t.segments:
        if seg.start is None or seg.end is None or not _clean(seg.text):
            continue
        label = label_of(seg)
        prefix = shown_prefix(label) if label else ""
        for start, end, text in _split(seg, seg.start, seg.end, prefix):
            start = max(start, 0.0)
            cues.append(_Cue(start, max(end, start), _wrap(text, prefix), label))
    # Multichannel vendors list each channel in turn; players want time order.
    cues.sort(key=lambda c: (c.start, c.end))
    return cues


def _timestamp(seconds: float, decimal_sep: str) -> str:
    ms = max(round(seconds * 1000), 0)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_sep}{ms:03d}"


def render_srt(t: Transcript) -> str:
    blocks = []
    for number, cue in enumerate(_cues(t, lambda label: f"[{label}] "), start=1):
        times = f"{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}"
        blocks.append(f"{number}\n{times}\n" + "\n".join(cue.lines) + "\n\n")
    return "".join(blocks)


def _vtt_escape(text: str) -> str:
    # Cue text is markup in WebVTT; this also defuses a literal "-->".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(t: Transcript) -> str:
    blocks = ["WEBVTT\n\n"]
    for cue in _cues(t, lambda label: ""):  # the voice tag is not shown as text
        text = "\n".join(_vtt_escape(line) for line in cue.lines)
        if cue.label:
            text = f"<v {_vtt_escape(cue.label)}>{text}"
        times = f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}"
        blocks.append(f"{times}\n{text}\n\n")
    return "".join(blocks)


RENDERERS: dict[str, tuple[Callable[[Transcript], str], str]] = {
    "text": (render_text, "text/plain; charset=utf-8"),
    "srt": (render_srt, "application/x-subrip; charset=utf-8"),
    "vtt": (render_vtt, "text/vtt; charset=utf-8"),
}
