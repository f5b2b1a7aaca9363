"""AIML API (api.aimlapi.com): one account in front of Deepgram, AssemblyAI and OpenAI models.

The workflow, from vendor-docs/aimlapi.txt and NOTES.md §3::

    POST {base}/v1/stt/create   JSON {model, url, …options}
                                or multipart: audio (OpenAI models: file), model, …options
         -> {"generation_id"[, "status": "queued"]}
    GET  {base}/v1/stt/{generation_id}
         -> {"status", "result" | "output": <payload>, "error": {name, message} | null}

Every call carries ``Authorization: Bearer <key>``. There is no webhook and no
cancel, so jobs are polled; results are deleted an hour after creation, so the
gateway stores them as soon as the status says completed.

The documents disagree on the GET answer, and every variant is accepted: the
status words of the README (waiting/active/completed) and of the fetch spec
(queued/generating/completed/error), the payload under ``result`` (every
example) or ``output`` (the spec), and three payload shapes: Deepgram's (with
``results.channels`` an array in the examples, a single object in the spec),
AssemblyAI's transcript object (times in milliseconds) and OpenAI's ``{text}``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.config import Settings
from app.providers.base import (
    Capabilities,
    PermanentProviderError,
    ProviderResult,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.http import json_object, send
from app.providers.upload import open_audio
from app.transcripts import Segment, Transcript, Word

log = logging.getLogger(__name__)

VENDOR = "aimlapi"
DEFAULT_MODEL = "#g1_nova-2-general"  # the Deepgram model of the docs' own model list
# Creating a job with a large upload answers only once the vendor has stored it.
_SUBMIT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
_MESSAGE_CHARS = 500

OurStatus = Literal["processing", "completed", "failed"]
Family = Literal["deepgram", "assemblyai", "openai", "mai"]

STATUS_MAP: dict[str, OurStatus] = {
    # aimlapi.txt and the README examples
    "waiting": "processing",
    "active": "processing",
    # universal-stt-fetch.json and the gpt-4o / mai examples
    "queued": "processing",
    "generating": "processing",
    "completed": "completed",
    "error": "failed",
    # Not documented: the README's words are a job queue's, whose failure word is this.
    "failed": "failed",
}


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


def form_fields(fields: dict[str, Any]) -> dict[str, str | list[str]]:
    """The fields as multipart text parts: JSON-style booleans, one part per list item."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return {
        name: [text(v) for v in value] if isinstance(value, list) else text(value)
        for name, value in fields.items()
    }


# --- the vendor's answers -> ours -----------------------------------------------------


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


def _failure(word: str, error: Any) -> PermanentProviderError:
    name = message = None
    if isinstance(error, dict):
        name, message = _str(error.get("name")), _str(error.get("message"))
    elif isinstance(error, str):
        message = error
    said = ": ".join(part for part in (name, message) if part) or f"status {word!r}, no reason"
    return PermanentProviderError(
        "provider_failed",
        f"{VENDOR} could not transcribe the audio: {said}"[:_MESSAGE_CHARS],
        provider_detail={"status": word, "error": error},
    )


def interpret(body: dict[str, Any]) -> ProviderUpdate:
    """The job as one ``GET /v1/stt/{id}`` answer describes it."""
    raw_word = body.get("status")
    word = raw_word if isinstance(raw_word, str) else ""
    ours = STATUS_MAP.get(word.lower())
    if ours is None:
        log.warning("%s: unknown status %r; the job stays processing", VENDOR, raw_word)
        return ProviderUpdate(status="processing", provider_status=word or None)
    if ours == "processing":
        return ProviderUpdate(status="processing", provider_status=word)
    if ours == "failed":
        return ProviderUpdate(
            status="failed", provider_status=word, error=_failure(word, body.get("error"))
        )
    # Every example has the payload under "result", the spec under "output".
    payload = body.get("result")
    if payload is None:
        payload = body.get("output")
    if not isinstance(payload, dict):
        raise RetryableProviderError(
            f"{VENDOR} status: completed without a result",
            provider_detail={"status": word, "keys": sorted(str(k) for k in body)[:50]},
        )
    # An AssemblyAI transcript carries its own status: it may have failed inside.
    if payload.get("status") == "error" and "results" not in payload:
        return ProviderUpdate(
            status="failed", provider_status=word, error=_failure(word, payload.get("error"))
        )
    return ProviderUpdate(
        status="completed",
        provider_status=word,
        result=ProviderResult(transcript=to_transcript(payload), raw=body),
    )


def out_of_credits(exc: PermanentProviderError) -> PermanentProviderError | None:
    """AIML API answers 403 both for a key it refuses and for an empty balance
    ("You've run out of credits…"); the second is a quota, not an auth problem."""
    detail = exc.provider_detail if isinstance(exc.provider_detail, dict) else {}
    body = detail.get("body")
    message = body.get("message") if isinstance(body, dict) else body
    if detail.get("status_code") == 403 and "credit" in str(message).lower():
        return PermanentProviderError(
            "provider_quota",
            f"{VENDOR}: the account has run out of credits",
            provider_detail=exc.provider_detail,
        )
    return None


# --- the adapter ----------------------------------------------------------------------


class AimlApiProvider:
    name: ClassVar[str] = VENDOR
    needs_local_audio: ClassVar[bool] = False  # the vendor fetches a source_url itself
    options_model: ClassVar[type[BaseModel]] = AimlApiOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        # Deepgram, AssemblyAI and OpenAI take all of these; the vendor lists no limits.
        formats=("wav", "mp3", "flac", "ogg", "webm", "mp4", "aiff", "amr"),
        source_url=True,
        upload=True,
        callbacks=False,  # no webhook field in any /v1/stt/create schema
        cancel=False,
        word_timestamps=True,
        diarization=True,
        languages=None,  # depends on the model; the vendor decides
    )

    def __init__(self, http: httpx.AsyncClient, api_key: str, base_url: str) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"}
        base = base_url.rstrip("/")
        # The docs' examples use ".../v1" as their base; our setting is the host root.
        self._base = base.removesuffix("/v1")

    async def _send(self, method: str, url: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await send(
                self._http,
                method,
                url,
                vendor=VENDOR,
                operation=operation,
                headers=self._headers,
                **kwargs,
            )
        except PermanentProviderError as exc:
            raise out_of_credits(exc) or exc from None
        return json_object(response, vendor=VENDOR, operation=operation)

    async def submit(self, request: SubmitRequest) -> ProviderUpdate:
        options = request.options
        if not isinstance(options, AimlApiOptions):
            options = AimlApiOptions.model_validate(options.model_dump(exclude_unset=True))
        fields = create_fields(options, request.language)
        url = f"{self._base}/v1/stt/create"
        if request.audio_path is not None:
            # OpenAI-family specs name the file part "file"; the others (and the
            # docs' multipart example) "audio".
            part = "file" if model_family(options.model) == "openai" else "audio"
            filename = request.filename or f"audio.{request.audio_format or 'bin'}"
            content_type = request.content_type or "application/octet-stream"
            async with open_audio(request.audio_path) as audio:
                body = await self._send(
                    "POST",
                    url,
                    "submit",
                    data=form_fields(fields),
                    files={part: (filename, audio, content_type)},
                    timeout=_SUBMIT_TIMEOUT,
                )
        elif request.source_url:
            body = await self._send(
                "POST",
                url,
                "submit",
                json={**fields, "url": request.source_url},
                timeout=_SUBMIT_TIMEOUT,
            )
        else:
            raise PermanentProviderError("invalid_request", "the job has neither audio nor a URL")
        generation_id = body.get("generation_id")
        if not isinstance(generation_id, str) or not generation_id:
            raise RetryableProviderError(
                f"{VENDOR} submit: the answer has no generation_id",
                provider_detail={"body": body},
            )
        status = body.get("status")  # newer answers add "queued"
        return ProviderUpdate(
            status="processing",
            provider_job_id=generation_id,
            provider_status=status if isinstance(status, str) else None,
        )

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        url = f"{self._base}/v1/stt/{quote(provider_job_id, safe='')}"
        update = interpret(await self._send("GET", url, "status"))
        return replace(update, provider_job_id=provider_job_id)

    async def cancel(self, provider_job_id: str) -> None:
        # The vendor documents no cancel; the gateway stops polling, the vendor finishes.
        return None


def build(settings: Settings, http: httpx.AsyncClient) -> AimlApiProvider:
    """The registry's factory (enabled when AIMLAPI_API_KEY is set)."""
    if settings.aimlapi_api_key is None:
        raise ValueError("AIMLAPI_API_KEY is not set")
    return AimlApiProvider(
        http, settings.aimlapi_api_key.get_secret_value(), settings.aimlapi_base_url
    )
