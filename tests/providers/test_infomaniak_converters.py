"""Infomaniak's transcript converters and language codes, on the documents' recorded payloads."""

from __future__ import annotations

import json

import pytest

from app.providers.infomaniak import (
    LANGUAGES,
    InfomaniakProvider,
    batch_id_of,
    unwrap_results,
    whisper_language,
)
from app.providers.infomaniak_transcript import (
    UnexpectedPayload,
    inline_payload,
    parse_body,
    result_from_payload,
    segments_from_subtitles,
    transcript_from_json,
)
from tests.providers.infomaniak_support import BATCH, payload


def test_verbose_json_with_top_level_words_is_normalised() -> None:
    transcript = transcript_from_json(payload("verbose_json.json"))
    assert transcript.text == "Hello world, this is a test."
    assert transcript.language == "en"  # Whisper says "english"
    assert transcript.duration == 4.2
    assert transcript.provider == "infomaniak"
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [
        (0.0, 1.52, "Hello world,"),
        (1.52, 3.9, "this is a test."),
    ]
    assert [w.text for w in transcript.segments[0].words] == ["Hello", "world,"]
    assert [w.text for w in transcript.segments[1].words] == ["this", "is", "a", "test."]
    words = [w for s in transcript.segments for w in s.words]
    assert (words[0].start, words[0].end, words[0].confidence) == (0.0, 0.62, None)
    assert all(s.speaker is None and s.channel is None for s in transcript.segments)


def test_verbose_json_with_words_inside_segments_keeps_their_confidence() -> None:
    transcript = transcript_from_json(payload("verbose_json_segment_words.json"))
    assert transcript.text == "Bonjour tout le monde."
    assert transcript.language == "fr"
    assert transcript.duration is None  # not given: not invented
    (segment,) = transcript.segments
    assert [(w.text, w.confidence) for w in segment.words] == [
        ("Bonjour", 0.97),
        ("tout", 0.91),
        ("le", 0.99),
        ("monde.", 0.88),
    ]


def test_json_and_plain_text_give_text_only() -> None:
    for result in (
        result_from_payload(payload("json.json"), raw=None),
        result_from_payload(payload("text.txt"), raw=None),
    ):
        assert result.transcript.text == "Hello world, this is a test."
        assert result.transcript.segments == []
        assert result.transcript.language is None and result.transcript.duration is None
        assert result.artifacts == []


@pytest.mark.parametrize(("name", "fmt"), [("subtitles.srt", "srt"), ("subtitles.vtt", "vtt")])
def test_subtitles_become_segments_and_are_kept_as_an_artifact(name: str, fmt: str) -> None:
    text = payload(name)
    result = result_from_payload(text, raw=None)
    assert [(s.start, s.end, s.text) for s in result.transcript.segments] == [
        (0.0, 1.52, "Hello world,"),
        (1.52, 3.9, "this is a test."),
    ]
    assert result.transcript.text == "Hello world, this is a test."
    (artifact,) = result.artifacts
    assert artifact.name == fmt and artifact.data == text.encode()


def test_highlighted_words_do_not_repeat_segments() -> None:
    segments = segments_from_subtitles(payload("subtitles_highlight.srt"))
    assert [(s.start, s.end, s.text) for s in segments] == [
        (0.0, 1.4, "Hello world,"),
        (1.52, 3.9, "this is a test."),
    ]


def test_missing_times_stay_missing() -> None:
    transcript = transcript_from_json(
        {
            "text": "a b",
            "segments": [{"text": " a b"}],
            "words": [{"word": "a"}, {"word": "b", "start": 0.5}],
        }
    )
    (segment,) = transcript.segments
    assert (segment.start, segment.end) == (None, None)
    assert [(w.text, w.start, w.end) for w in segment.words] == [
        ("a", None, None),
        ("b", 0.5, None),
    ]


def test_words_without_segments_make_one_segment() -> None:
    transcript = transcript_from_json(
        {"text": "hi there", "words": [{"word": "hi", "start": 0.1, "end": 0.3}, {"word": "there"}]}
    )
    (segment,) = transcript.segments
    assert (segment.start, segment.end, segment.text) == (0.1, None, "hi there")
    assert len(segment.words) == 2


def test_an_object_that_is_no_transcript_is_refused() -> None:
    with pytest.raises(UnexpectedPayload):
        transcript_from_json({"file_name": "a.mp3"})


@pytest.mark.parametrize(
    ("spoken", "code"),
    [
        ("english", "en"),
        ("English", "en"),
        ("haitian creole", "ht"),
        ("yue", "yue"),
        ("fr", "fr"),
        # The transcript's tag is ISO's "jv" whichever way Whisper says Javanese
        # (a request still asks Infomaniak for its "jw", below).
        ("javanese", "jv"),
        ("jw", "jv"),
        ("castilian", "es"),  # one of Whisper's aliases
        ("pt-BR", "pt"),
    ],
)
def test_whisper_language_names_become_codes(spoken: str, code: str) -> None:
    assert transcript_from_json({"text": "", "language": spoken}).language == code


def test_an_unknown_language_name_is_not_guessed() -> None:
    assert transcript_from_json({"text": "", "language": "klingon"}).language is None


def test_parse_body_and_inline_payload() -> None:
    verbose = payload("verbose_json.json")
    assert parse_body(json.dumps(verbose)) == verbose
    assert parse_body(json.dumps("just text")) == "just text"
    assert parse_body('"Quoted," she said.') == '"Quoted," she said.'
    with pytest.raises(UnexpectedPayload):
        parse_body('{"text": "cut off')
    assert inline_payload(verbose) == verbose
    assert inline_payload(json.dumps(verbose)) == verbose
    assert inline_payload(" plain words ") == " plain words "
    for nothing in (None, "", "  ", {"file_name": "x"}, 42):
        assert inline_payload(nothing) is None


def test_batch_id_at_the_top_or_in_the_envelope() -> None:
    assert batch_id_of(payload("create.json")) == BATCH
    assert batch_id_of(payload("create_envelope.json")) == BATCH
    assert batch_id_of({"result": "success"}) is None
    wrapped = {"result": "success", "data": payload("results_pending.json")}
    assert unwrap_results(wrapped)["status"] == "pending"
    assert unwrap_results(payload("results_success_text.json"))["status"] == "success"


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("zh-Hant-TW", "zh"),
        ("FR", "fr"),
        ("jv", "jw"),
        ("nb-NO", "no"),
        ("yue", "yue"),
        ("haw", "haw"),
    ],
)
def test_language_tags_become_whisper_codes(tag: str, code: str) -> None:
    assert whisper_language(tag) == code


# infomaniak.txt, `language`: "Possible values:" as the page prints them, run together.
DOCUMENTED_LANGUAGES = (
    "afamarasazbabebgbnbobrbscacscydadeeleneseteufafifofrglguhahawhehihrhthuhyidisitjajwka"
    "kkkmknkolalblnloltlvmgmimkmlmnmrmsmtmynenlnnnoocpaplpsptrorusasdsiskslsnsosqsrsusvsw"
    "tatetgthtktltrttukuruzviyiyoyuezh"
)


def test_the_documented_languages_are_the_ones_offered() -> None:
    assert "".join(LANGUAGES) == DOCUMENTED_LANGUAGES
    assert len(set(LANGUAGES)) == len(LANGUAGES) == 100
    assert {len(code) for code in LANGUAGES} == {2, 3}
    offered = InfomaniakProvider.capabilities.languages
    assert offered is not None and set(LANGUAGES) <= set(offered)
    # Whatever the gateway takes, it sends as one of the documented values...
    assert {whisper_language(tag) for tag in offered} == set(LANGUAGES)
    # ...and reads back, as a tag it takes for that value, when Whisper names the
    # language it heard (the same code, but for Whisper's "jw": ISO's "jv").
    for code in LANGUAGES:
        tag = transcript_from_json({"text": "", "language": code}).language
        assert tag is not None and tag in offered and whisper_language(tag) == code
        assert tag == ("jv" if code == "jw" else code)
