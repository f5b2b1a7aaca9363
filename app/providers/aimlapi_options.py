"""AIML API request options and the per-model-family rules behind them.

The models behind AIML API follow one of four families' conventions (Deepgram,
AssemblyAI, OpenAI, Microsoft's mai-transcribe). This module holds the options
model the gateway validates a job's options with, which family documents which
option, and the fields a create request carries for a family (the language
field and value, the spelling of multichannel). The adapter is in
``app.providers.aimlapi``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MODEL = "#g1_nova-2-general"  # the Deepgram model of the docs' own model list

Family = Literal["deepgram", "assemblyai", "openai", "mai"]


def model_family(model: str) -> Family:
    """Which vendor's request conventions a model follows (NOTES.md §3, per model spec)."""
    name = model.lower()
    if name.startswith("openai/"):
        return "openai"
    if name.startswith("microsoft/"):  # microsoft/mai-transcribe-1.5: a spec of its own
        return "mai"
    if name.startswith("aai/") or name in ("slam-1", "universal"):
        return "assemblyai"
    # #g1_nova-2-*, nova-3*, whisper-* and #g1_whisper-* share Deepgram's schema.
    return "deepgram"


def _is_nova3(model: str) -> bool:
    return model.lower().startswith("nova-3")


# Which model families document each option (beside ``model``).
_BOTH: frozenset[Family] = frozenset({"deepgram", "assemblyai"})
_DEEPGRAM: frozenset[Family] = frozenset({"deepgram"})
_ASSEMBLYAI: frozenset[Family] = frozenset({"assemblyai"})
_OPENAI: frozenset[Family] = frozenset({"openai"})
_MAI: frozenset[Family] = frozenset({"mai"})

StrOrList = str | list[str]


class AimlApiOptions(BaseModel):
    """The parameters of ``POST /v1/stt/create`` the gateway passes on.

    Which options apply depends on the model's family (Deepgram: ``#g1_nova-2-*``,
    ``nova-3*``, whisper; AssemblyAI: ``aai/*``; OpenAI: ``openai/*``; Microsoft:
    ``microsoft/mai-transcribe-*``, which documents no language field, so a job's
    language is not sent to it); an option of another family is refused here
    rather than by the vendor.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default=DEFAULT_MODEL,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9#_./:-]+$",
        description="The AIML API model id.",
        examples=[
            "#g1_nova-2-general",
            "nova-3",
            "#g1_whisper-large",
            "slam-1",
            "aai/universal",
            "openai/gpt-4o-transcribe",
            "openai/gpt-4o-mini-transcribe",
            "microsoft/mai-transcribe-1.5",
        ],
    )
    # Deepgram family (and, where marked, AssemblyAI's of the same name)
    punctuate: bool | None = Field(default=None, description="Deepgram and AssemblyAI")
    smart_format: bool | None = None
    diarize: bool | None = Field(default=None, description="speaker labels on words")
    paragraphs: bool | None = None
    utterances: bool | None = None
    utt_split: float | None = Field(default=None, gt=0)
    multichannel: bool | None = Field(
        default=None,
        description="Transcribe each channel on its own; sent as multi_channel to the "
        "nova-2 and whisper models, which spell it so",
    )
    multi_channel: bool | None = Field(default=None, description="The same as multichannel")
    numerals: bool | None = None
    measurements: bool | None = None
    dictation: bool | None = None
    filler_words: bool | None = None
    profanity_filter: bool | None = None
    detect_language: bool | list[str] | None = None
    keywords: StrOrList | None = Field(default=None, description="nova-2 and whisper models")
    keyterm: StrOrList | None = Field(default=None, description="nova-3 models only")
    search: StrOrList | None = None
    replace: StrOrList | None = None
    redact: StrOrList | None = None
    tag: StrOrList | None = None
    # AssemblyAI family
    speaker_labels: bool | None = None
    speakers_expected: int | None = Field(default=None, ge=1)
    format_text: bool | None = None
    disfluencies: bool | None = None
    language_detection: bool | None = None
    word_boost: list[str] | None = None
    boost_param: Literal["low", "default", "high"] | None = None
    # OpenAI family
    prompt: str | None = Field(default=None, max_length=4000)
    temperature: float | None = Field(default=None, ge=0, le=1, description="OpenAI and Microsoft")
    # Microsoft family (mai-transcribe)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _fits_the_model(self) -> AimlApiOptions:
        family = model_family(self.model)
        for name in sorted(self.model_fields_set - {"model"}):
            if getattr(self, name) is None:
                continue
            families = _OPTION_FAMILIES.get(name, _DEEPGRAM)
            if family not in families:
                raise ValueError(
                    f"{name} is not an option of {family} models such as {self.model!r}"
                )
        if self.keyterm is not None and not _is_nova3(self.model):
            raise ValueError("keyterm is for nova-3 models; use keywords with other models")
        if self.keywords is not None and _is_nova3(self.model):
            raise ValueError("nova-3 models take keyterm, not keywords")
        if None not in (self.multichannel, self.multi_channel) and (
            self.multichannel != self.multi_channel
        ):
            raise ValueError("multichannel and multi_channel disagree")
        return self


_OPTION_FAMILIES: dict[str, frozenset[Family]] = {
    "punctuate": _BOTH,
    "multichannel": _BOTH,
    "multi_channel": _BOTH,
    "speaker_labels": _ASSEMBLYAI,
    "speakers_expected": _ASSEMBLYAI,
    "format_text": _ASSEMBLYAI,
    "disfluencies": _ASSEMBLYAI,
    "language_detection": _ASSEMBLYAI,
    "word_boost": _ASSEMBLYAI,
    "boost_param": _ASSEMBLYAI,
    "prompt": _OPENAI,
    "temperature": _OPENAI | _MAI,
    "top_p": _MAI,
    "max_tokens": _MAI,
    "max_completion_tokens": _MAI,
}  # every other option: Deepgram family only


# --- our request -> the vendor's ------------------------------------------------------


def vendor_language(family: Family, language: str) -> tuple[str, str]:
    """The field and value that carry ``language`` (a BCP-47 tag) for this family."""
    parts = language.replace("_", "-").split("-")
    primary = parts[0].lower()
    if family == "assemblyai":
        # AssemblyAI's codes are ISO 639-1, but for English by region: en_us, en_uk, en_au.
        region = parts[1].upper() if len(parts) > 1 else ""
        english = {"US": "en_us", "GB": "en_uk", "UK": "en_uk", "AU": "en_au"}
        return "language_code", english.get(region, primary) if primary == "en" else primary
    if family == "openai":
        return "language", primary  # ISO 639-1, as OpenAI's transcription API takes it
    return "language", language  # Deepgram takes BCP-47 tags as they are


def create_fields(options: AimlApiOptions, language: str | None) -> dict[str, Any]:
    """The create request's fields other than the audio."""
    fields: dict[str, Any] = options.model_dump(exclude_none=True)
    family = model_family(options.model)
    channels = fields.pop("multichannel", None)
    channels = fields.pop("multi_channel", channels)
    if channels is not None:
        # nova-3 and AssemblyAI spell it multichannel; nova-2 and whisper multi_channel.
        spelled = "multi_channel" if family == "deepgram" and not _is_nova3(options.model) else None
        fields[spelled or "multichannel"] = channels
    if language and family != "mai":
        name, value = vendor_language(family, language)
        fields[name] = value
    return fields
