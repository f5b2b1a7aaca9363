"""Daglo's languages and its options (``sttConfig``, ``nlpConfig``, by Daglo's
own names), as a job gives them; the adapter is ``app.providers.daglo``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.providers.base import PermanentProviderError, RefusedRequest

# --- languages ---------------------------------------------------------------

# Daglo's sttConfig.language enum (case-sensitive); "mixed" is Korean and English.
DagloLanguage = Literal[
    "ko-KR", "en-US", "mixed", "ja-JP", "cmn-Hans-CN", "de-DE", "fr-FR", "es-ES", "it-IT",
    "nl-NL", "sv-SE", "hi-IN", "ru-RU", "vi-VN", "th-TH", "id-ID", "fa-IR", "cs-CZ",
]  # fmt: skip

# BCP-47 primary subtag -> Daglo's tag. Daglo has one variant per language.
LANGUAGES: dict[str, str] = {
    "ko": "ko-KR",
    "en": "en-US",
    "ja": "ja-JP",
    "zh": "cmn-Hans-CN",
    "cmn": "cmn-Hans-CN",
    "de": "de-DE",
    "fr": "fr-FR",
    "es": "es-ES",
    "it": "it-IT",
    "nl": "nl-NL",
    "sv": "sv-SE",
    "hi": "hi-IN",
    "ru": "ru-RU",
    "vi": "vi-VN",
    "th": "th-TH",
    "id": "id-ID",
    "fa": "fa-IR",
    "cs": "cs-CZ",
}
_FULL_TAGS = {tag.lower(): tag for tag in LANGUAGES.values()}


def daglo_language(tag: str) -> str:
    """Our BCP-47 tag as Daglo's: a full tag Daglo knows is kept (in Daglo's
    casing, as BCP-47 is case-insensitive but Daglo is not), else its primary subtag
    is mapped."""
    normalised = tag.replace("_", "-").lower()
    if normalised in _FULL_TAGS:
        return _FULL_TAGS[normalised]
    mapped = LANGUAGES.get(normalised.split("-")[0])
    if mapped is None:
        raise PermanentProviderError(
            "unsupported_language",
            f"daglo does not take language {tag!r}; it takes: {', '.join(LANGUAGES)}",
        )
    return mapped


def resolve_language(job_language: str | None, option: str | None) -> str | None:
    """The sttConfig.language to send: the job's language, or the explicit option
    (needed for "mixed"); the two must not contradict each other."""
    mapped = daglo_language(job_language) if job_language else None
    if option is None or mapped is None or option == mapped:
        return option or mapped
    if option == "mixed" and mapped in ("ko-KR", "en-US"):
        return option
    raise RefusedRequest(
        "invalid_options",
        f"options.sttConfig.language {option!r} contradicts the job's language "
        f"{job_language!r} (sent to daglo as {mapped!r})",
        field="options.sttConfig.language",
    )


# --- options: Daglo's own sttConfig / nlpConfig, by their names ---------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeywordBoost(_Strict):
    enable: bool
    keywords: list[str] | None = None
    # The text says the default is 5, the schema 7: we send nothing unless given.
    boost: int | None = Field(default=None, ge=1, le=15)


class MultiChannel(_Strict):
    channelCount: int = Field(ge=1, le=2)


class SpeakerDiarization(_Strict):
    enable: bool
    speakerCountHint: int | None = Field(default=None, ge=2)


class SttConfig(_Strict):
    model: Literal["general"] | None = None
    language: DagloLanguage | None = Field(
        default=None,
        description="Daglo's own tag; mostly for 'mixed' (Korean and English). "
        "Otherwise give the job's language.",
    )
    keywordBoost: KeywordBoost | None = None
    multiChannel: MultiChannel | None = None
    speakerDiarization: SpeakerDiarization | None = None


class KeywordExtraction(_Strict):
    enable: bool
    maxCount: int | None = Field(default=None, ge=1)


class SentimentAnalysis(_Strict):
    enable: bool


class NlpConfig(_Strict):
    keywordExtraction: KeywordExtraction | None = None
    sentimentAnalysis: SentimentAnalysis | None = None


class DagloOptions(_Strict):
    """Daglo's request fields, under Daglo's own names."""

    sttConfig: SttConfig | None = None
    nlpConfig: NlpConfig | None = None
