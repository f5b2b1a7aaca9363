import re

import pytest

from app.transcripts import (
    RENDERERS,
    Segment,
    Transcript,
    TranscriptHasNoTimings,
    Word,
    render_srt,
    render_text,
    render_vtt,
)


def words_at(text: str, start: float, step: float, length: float) -> list[Word]:
    """One timed word per token, `step` seconds apart, each `length` long."""
    return [
        Word(start=round(start + i * step, 3), end=round(start + i * step + length, 3), text=w)
        for i, w in enumerate(text.split())
    ]


def seg(start: float | None, end: float | None, text: str, **kw) -> Segment:
    return Segment(start=start, end=end, text=text, **kw)


def transcript(*segments: Segment, text: str = "") -> Transcript:
    return Transcript(text=text, provider="fake", segments=list(segments))


SRT_BLOCK = re.compile(
    r"(\d+)\n(\d{2,}):(\d{2}):(\d{2}),(\d{3}) --> (\d{2,}):(\d{2}):(\d{2}),(\d{3})\n(.+)",
    re.DOTALL,
)


def parse_srt(srt: str) -> list[tuple[float, float, str]]:
    """Parse SubRip strictly: numbering 1..n, start <= end, starts in time order."""
    assert srt.endswith("\n\n")
    cues = []
    for number, block in enumerate(srt[:-2].split("\n\n"), start=1):
        match = SRT_BLOCK.fullmatch(block)
        assert match, f"not a SubRip cue: {block!r}"
        assert int(match[1]) == number
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in match.groups()[1:9])
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        assert start <= end
        assert not cues or cues[-1][0] <= start
        assert match[10].strip()
        cues.append((start, end, match[10]))
    return cues


SMALL = transcript(
    seg(0.0, 1.2, "Hello world.", words=words_at("Hello world.", 0.0, 0.6, 0.5)),
    seg(1.5, 2.75, "How are you?", words=words_at("How are you?", 1.5, 0.4, 0.3)),
    text="Hello world. How are you?",
)


def test_small_transcript_text():
    assert render_text(SMALL) == "Hello world. How are you?\n"


def test_text_falls_back_to_segments_when_text_is_empty():
    t = transcript(seg(0, 1, " Hello "), seg(None, None, "there."))
    assert render_text(t) == "Hello there.\n"


def test_small_transcript_srt():
    assert render_srt(SMALL) == (
        "1\n00:00:00,000 --> 00:00:01,200\nHello world.\n\n"
        "2\n00:00:01,500 --> 00:00:02,750\nHow are you?\n\n"
    )


def test_small_transcript_vtt():
    assert render_vtt(SMALL) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.200\nHello world.\n\n"
        "00:00:01.500 --> 00:00:02.750\nHow are you?\n\n"
    )


def test_hour_plus_timestamps():
    t = transcript(seg(3723.4, 3725.0, "Late."), seg(360_000.0, 360_001.5, "Very late."))
    assert render_srt(t) == (
        "1\n01:02:03,400 --> 01:02:05,000\nLate.\n\n"
        "2\n100:00:00,000 --> 100:00:01,500\nVery late.\n\n"
    )
    assert "01:02:03.400 --> 01:02:05.000\n" in render_vtt(t)


def test_times_are_never_negative_and_end_is_not_before_start():
    t = transcript(seg(-0.25, 0.5, "Early."), seg(2.0, 1.0, "Backwards."))
    assert render_srt(t) == (
        "1\n00:00:00,000 --> 00:00:00,500\nEarly.\n\n"
        "2\n00:00:02,000 --> 00:00:02,000\nBackwards.\n\n"
    )


LONG_TEXT = (
    "Subtitles should be easy to read, so long sentences are broken "
    "into several shorter cues at word boundaries instead."
)
LONG = transcript(seg(0.0, 5.6, LONG_TEXT, words=words_at(LONG_TEXT, 0.0, 0.3, 0.2)))


def test_long_segment_is_split_at_word_boundaries_srt():
    # 116 characters: two full 2-line cues would need the 3rd line; times come from words.
    assert render_srt(LONG) == (
        "1\n00:00:00,000 --> 00:00:04,100\n"
        "Subtitles should be easy to read, so long\n"
        "sentences are broken into several shorter\n\n"
        "2\n00:00:04,200 --> 00:00:05,600\n"
        "cues at word boundaries instead.\n\n"
    )


def test_long_segment_is_split_at_word_boundaries_vtt():
    assert render_vtt(LONG) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:04.100\n"
        "Subtitles should be easy to read, so long\n"
        "sentences are broken into several shorter\n\n"
        "00:00:04.200 --> 00:00:05.600\n"
        "cues at word boundaries instead.\n\n"
    )


def test_segment_longer_than_seven_seconds_is_split_by_duration():
    text = "one two three four five six seven eight nine ten"
    t = transcript(seg(0.0, 9.5, text, words=words_at(text, 0.0, 1.0, 0.5)))
    assert parse_srt(render_srt(t)) == [
        (0.0, 6.5, "one two three four five six seven"),
        (7.0, 9.5, "eight nine ten"),
    ]


def test_split_cues_keep_every_word_and_respect_line_limits():
    text = " ".join(f"word{i}" for i in range(60))
    t = transcript(seg(10.0, 22.0, text, words=words_at(text, 10.0, 0.2, 0.15), speaker="A"))
    cues = parse_srt(render_srt(t))
    assert len(cues) > 1
    for start, end, body in cues:
        lines = body.split("\n")
        assert len(lines) <= 2
        assert all(len(line) <= 42 for line in lines)
        assert end - start <= 7.0
        assert start >= 10.0 and end <= 22.0
    assert " ".join(body.replace("\n", " ") for _, _, body in cues) == text


def test_long_segment_without_complete_word_timings_stays_one_cue():
    words = words_at(LONG_TEXT, 0.0, 0.3, 0.2)
    words[3] = Word(text=words[3].text)  # one untimed word: no safe place to cut
    t = transcript(seg(0.0, 5.6, LONG_TEXT, words=words))
    cues = parse_srt(render_srt(t))
    assert [(start, end) for start, end, _ in cues] == [(0.0, 5.6)]
    assert cues[0][2].replace("\n", " ") == LONG_TEXT
    assert all(len(line) <= 42 for line in cues[0][2].split("\n"))


TWO_SPEAKERS = transcript(
    seg(0.0, 1.0, "Hi.", speaker="A"),
    seg(1.0, 2.5, "Hello there.", speaker="B"),
    seg(3.0, 4.0, "Bye.", speaker="A"),
    text="Hi. Hello there. Bye.",
)


def test_speaker_labels_text():
    assert render_text(TWO_SPEAKERS) == (
        "Speaker A: Hi.\nSpeaker B: Hello there.\nSpeaker A: Bye.\n"
    )


def test_speaker_labels_srt():
    assert render_srt(TWO_SPEAKERS) == (
        "1\n00:00:00,000 --> 00:00:01,000\n[Speaker A] Hi.\n\n"
        "2\n00:00:01,000 --> 00:00:02,500\n[Speaker B] Hello there.\n\n"
        "3\n00:00:03,000 --> 00:00:04,000\n[Speaker A] Bye.\n\n"
    )


def test_speaker_labels_vtt():
    assert render_vtt(TWO_SPEAKERS) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.000\n<v Speaker A>Hi.\n\n"
        "00:00:01.000 --> 00:00:02.500\n<v Speaker B>Hello there.\n\n"
        "00:00:03.000 --> 00:00:04.000\n<v Speaker A>Bye.\n\n"
    )


def test_single_speaker_is_not_labelled():
    t = transcript(seg(0, 1, "Hi.", speaker="A"), seg(1, 2, "Bye.", speaker="A"), text="Hi. Bye.")
    assert render_text(t) == "Hi. Bye.\n"
    assert "Speaker" not in render_srt(t)
    assert "<v" not in render_vtt(t)


def test_channels_are_labelled_and_cues_put_in_time_order():
    # Multichannel vendors list channel 0 first, then channel 1.
    t = transcript(
        seg(0.0, 1.0, "Hello?", channel=0),
        seg(4.0, 5.0, "Great.", channel=0),
        seg(2.0, 3.0, "Hi, it's me.", channel=1),
    )
    assert render_text(t) == "Channel 0: Hello?\nChannel 0: Great.\nChannel 1: Hi, it's me.\n"
    assert [body for _, _, body in parse_srt(render_srt(t))] == [
        "[Channel 0] Hello?",
        "[Channel 1] Hi, it's me.",
        "[Channel 0] Great.",
    ]


def test_speaker_label_counts_towards_srt_line_length():
    text = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii"  # 44 characters
    t = transcript(seg(0, 1, "Hi.", speaker="Alice"), seg(1, 3, text, speaker="Bob"))
    srt_lines = render_srt(t).split("\n")
    assert "[Speaker Bob] aaaa bbbb cccc dddd eeee" in srt_lines
    assert "ffff gggg hhhh iiii" in srt_lines
    assert "<v Speaker Bob>aaaa bbbb cccc dddd eeee ffff gggg hhhh\n" in render_vtt(t)


def test_vtt_escapes_markup_in_cue_text():
    t = transcript(seg(0, 1, "a < b & c --> d"))
    assert render_vtt(t).endswith("\na &lt; b &amp; c --&gt; d\n\n")


def test_untimed_segments_are_skipped():
    t = transcript(
        seg(None, None, "No times."),
        seg(1.0, 2.0, "Timed."),
        seg(2.0, None, "No end."),
        seg(None, 3.0, "No start."),
        seg(3.0, 4.0, "   "),
    )
    assert render_srt(t) == "1\n00:00:01,000 --> 00:00:02,000\nTimed.\n\n"
    assert render_vtt(t) == "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nTimed.\n\n"
    assert render_text(t) == "No times. Timed. No end. No start.\n"


@pytest.mark.parametrize("render", [render_srt, render_vtt])
def test_no_timings_at_all_raises(render):
    t = transcript(seg(None, None, "Hello."), seg(None, 2.0, "Again."), text="Hello. Again.")
    with pytest.raises(TranscriptHasNoTimings, match="srt and vtt need segment start and end"):
        render(t)
    assert issubclass(TranscriptHasNoTimings, ValueError)


@pytest.mark.parametrize("render", [render_srt, render_vtt])
def test_text_without_segments_raises(render):
    with pytest.raises(TranscriptHasNoTimings, match="'fake'"):
        render(transcript(text="Said something."))


def test_empty_transcript_renders_empty_files():
    t = transcript()
    assert render_srt(t) == ""
    assert render_vtt(t) == "WEBVTT\n\n"
    assert render_text(t) == "\n"


def test_renderers_table():
    assert {
        "text": (render_text, "text/plain; charset=utf-8"),
        "srt": (render_srt, "application/x-subrip; charset=utf-8"),
        "vtt": (render_vtt, "text/vtt; charset=utf-8"),
    } == RENDERERS
