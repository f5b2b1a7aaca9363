"""Phonexia Speech Platform 4: a self-hosted appliance with a task API.

    POST {base}/api/technology/speech-to-text?language=…   multipart: file, config (JSON string)
         -> 202 {"task": {"task_id", "state"}} with X-Location (newer versions: Location)
    GET  {base}/api/technology/speech-to-text/{task_id}
         -> {"task": {...}, "result": {"one_best": {"segments": [...]}}} or {"task", "error"}

The Whisper-based engine has the same shape at ``speech-to-text-whisper-enhanced``;
its segments carry a language and no words. The job's provider_job_id is the
vendor's task id for either engine; the job's ``engine`` option says where to
poll. Polling only: the appliance documents no callbacks, no cancel and no
authentication (a key, when set, is for an authenticating proxy in front of it).
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.config import Settings
from app.providers.base import (
    Capabilities,
    PermanentProviderError,
    ProviderResult,
    ProviderUpdate,
    RefusedRequest,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.http import json_object, send
from app.providers.upload import open_audio
from app.transcripts import Segment, Transcript, Word

log = logging.getLogger(__name__)

VENDOR = "phonexia"
_PATHS = {
    "default": "/api/technology/speech-to-text",
    "whisper-enhanced": "/api/technology/speech-to-text-whisper-enhanced",
}
_MESSAGE_CHARS = 300

# The vendor's task states (documented: pending, running, rejected, failed, done).
STATUS_MAP: dict[str, Literal["processing", "completed", "failed"]] = {
    "pending": "processing",
    "running": "processing",
    "done": "completed",
    "rejected": "failed",  # requirements not met: the input, so a permanent failure
    "failed": "failed",  # an execution problem: the same request may succeed again
}

# Error types that mean "the appliance is busy or full", not "your input is wrong".
_CAPACITY_TYPES = {"licensing.capacity-exceeded", "storage.capacity-exceeded"}

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
SingleWord = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\S+$")]


class AdditionalWord(BaseModel):
    """A word added to the vocabulary, optionally with its pronunciations.

    ``additional_words`` and ``pronunciations`` are named by the REST documents;
    the grapheme key ``spelling`` is not (they only say "the grapheme
    representation of the word"), but it is the name in Phonexia's own SP4
    speech-to-text client (TranscribeConfig) and the REST result page speaks of
    "a spelling without an explicit pronunciation".
    """

    model_config = ConfigDict(extra="forbid")

    spelling: SingleWord = Field(description="The word as written; a single word, no spaces.")
    pronunciations: list[NonEmpty] | None = Field(
        default=None,
        min_length=1,
        description='Phonemes separated by spaces, e.g. "f r u m i o s".',
    )


class PhonexiaOptions(BaseModel):
    """Phonexia's own options. The vendor silently ignores unknown config keys,
    so a typo here must be a 422, not a transcript that quietly ignored it."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["default", "whisper-enhanced"] = Field(
        default="default",
        description="default: Phonexia's own models (word timings, needs a language); "
        "whisper-enhanced: the Whisper-based engine (segments only; language optional).",
    )
    # Query parameters, named by the documents of both engines.
    channel_mode: Literal["split", "mix"] | None = None
    channels: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, min_length=1, description="0-based channels to keep; others are ignored."
    )
    # Config keys of the default engine. "preferred_phrases" is unconfirmed for
    # SP4's REST API (the documents describe the array but the excerpt names no
    # key); it is the name in Phonexia's SP4 client. See AdditionalWord too.
    preferred_phrases: list[NonEmpty] | None = Field(default=None, min_length=1)
    additional_words: list[AdditionalWord] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _vocabulary_needs_default_engine(self) -> PhonexiaOptions:
        if self.engine != "default" and (self.preferred_phrases or self.additional_words):
            raise ValueError(
                "preferred_phrases and additional_words apply to the default engine only"
            )
        return self


# --- pure converters ---------------------------------------------------------


def submit_params(language: str | None, options: PhonexiaOptions) -> dict[str, str]:
    """The query parameters of the start-task call; the client's RFC 5646 tag passes as is."""
    params: dict[str, str] = {}
    if language:
        params["language"] = language
    if options.channel_mode is not None:
        params["channel_mode"] = options.channel_mode
    if options.channels:
        params["channels"] = ",".join(str(c) for c in options.channels)
    return params


def submit_config(options: PhonexiaOptions) -> dict[str, Any] | None:
    """The ``config`` multipart field as an object, or None when there is nothing to send."""
    config: dict[str, Any] = {}
    if options.preferred_phrases:
        config["preferred_phrases"] = list(options.preferred_phrases)
    if options.additional_words:
        config["additional_words"] = [
            word.model_dump(exclude_none=True) for word in options.additional_words
        ]
    return config or None


def submitted_task_id(body: dict[str, Any], location: str | None) -> str | None:
    """The new task's id: from the body, else the last path segment of the poll URL."""
    task = body.get("task")
    if isinstance(task, dict) and isinstance(task.get("task_id"), str) and task["task_id"]:
        return str(task["task_id"])
    if location:
        last = urlsplit(location).path.rstrip("/").rpartition("/")[2]
        return last or None
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _segments(result: dict[str, Any]) -> list[dict[str, Any]]:
    one_best = result.get("one_best")
    # Documented under one_best; a bare "segments" is accepted for the Whisper engine,
    # whose result page we know only by its segment fields.
    raw = one_best.get("segments") if isinstance(one_best, dict) else result.get("segments")
    return [s for s in raw if isinstance(s, dict)] if isinstance(raw, list) else []


def build_transcript(result: dict[str, Any]) -> Transcript:
    """The vendor's ``result`` as our transcript; what it does not say stays None."""
    segments: list[Segment] = []
    languages: set[str] = set()
    for raw in _segments(result):
        words = [
            Word(start=_seconds(w.get("start_time")), end=_seconds(w.get("end_time")), text=text)
            for w in raw.get("words") or []
            if isinstance(w, dict) and (text := _text(w.get("text")))
        ]
        text = _text(raw.get("text"))
        if not text and not words:
            continue  # a silent stretch carries nothing to show
        channel = raw.get("channel_number")
        segments.append(
            Segment(
                start=_seconds(raw.get("start_time")),
                end=_seconds(raw.get("end_time")),
                text=text,
                channel=channel if type(channel) is int else None,  # not a bool
                words=words,
            )
        )
        if isinstance(raw.get("language"), str) and raw["language"]:
            languages.add(raw["language"])
    # Channels are transcribed separately; in time order they read as the conversation.
    segments.sort(key=lambda s: (s.start is None, s.start or 0.0))
    return Transcript(
        text=" ".join(s.text for s in segments if s.text),
        # Only the Whisper engine reports a language, per segment: one language is the
        # transcript's; several (language switching) leave it open.
        language=languages.pop() if len(languages) == 1 else None,
        duration=None,  # the vendor reports none; the last segment's end is not the length
        provider=VENDOR,
        segments=segments,
    )


def vendor_message(error: Any) -> str:
    """A short human summary of the vendor's {type, message, detail[]} envelope."""
    if not isinstance(error, dict):
        return "no detail given"
    parts = [_text(error.get("message"))]
    for item in error.get("detail") or []:
        if isinstance(item, dict) and (message := _text(item.get("message"))):
            parts.append(message)
    summary = "; ".join(p for p in parts if p) or _text(error.get("type")) or "no detail given"
    return summary[:_MESSAGE_CHARS]


def task_update(body: dict[str, Any], provider_job_id: str) -> ProviderUpdate:
    """Our view of a task from the vendor's ``{task, result | error}`` answer."""
    task = body.get("task")
    state = task.get("state") if isinstance(task, dict) else None
    word = state if isinstance(state, str) else None
    ours = STATUS_MAP.get(word) if word is not None else None
    if ours is None:
        log.warning("phonexia task %s is in an unknown state %r", provider_job_id, state)
        return ProviderUpdate("processing", provider_job_id, word)
    if ours == "processing":
        return ProviderUpdate("processing", provider_job_id, word)
    if ours == "completed":
        result = body.get("result")
        if not isinstance(result, dict):
            raise RetryableProviderError(
                "phonexia status: the task is done but the answer has no result"
            )
        return ProviderUpdate(
            "completed",
            provider_job_id,
            word,
            result=ProviderResult(transcript=build_transcript(result), raw=body),
        )
    error = body.get("error")
    if word == "rejected":
        failure = PermanentProviderError(
            "provider_rejected",
            f"phonexia rejected the task: {vendor_message(error)}",
            provider_detail=error,
        )
    else:
        failure = PermanentProviderError(
            "provider_failed",
            f"phonexia failed to process the task (sending it again may work): "
            f"{vendor_message(error)}",
            provider_detail=error,
            retryable=True,
        )
    return ProviderUpdate("failed", provider_job_id, word, error=failure)


def capacity_exceeded(provider_detail: Any) -> bool:
    """Whether a refusal is the appliance's capacity (a licence or storage limit)."""
    body = provider_detail.get("body") if isinstance(provider_detail, dict) else None
    if not isinstance(body, dict):
        return False
    types = {body.get("type")}
    types.update(d.get("type") for d in body.get("detail") or [] if isinstance(d, dict))
    return bool(types & _CAPACITY_TYPES)


# --- the adapter ----------------------------------------------------------------


class PhonexiaProvider:
    name: ClassVar[str] = VENDOR
    # The appliance takes uploads only, so a client's source_url is downloaded first.
    needs_local_audio: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = PhonexiaOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        # The documents list no formats: the appliance converts "media files" itself
        # (channel_mode is "for conversion"); a file it cannot read is rejected.
        formats=("wav", "mp3", "flac", "ogg", "webm", "mp4", "aiff", "amr"),
        source_url=True,
        upload=True,
        callbacks=False,
        cancel=False,  # no DELETE or cancel is documented
        word_timestamps=True,
        diarization=False,  # channels, not speakers
        languages=None,  # RFC 5646 tags, licensed per appliance: the vendor decides
    )

    def __init__(self, base_url: str, http: httpx.AsyncClient, api_key: str | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def _send(self, method: str, url: str, operation: str, **kwargs: Any) -> httpx.Response:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        try:
            return await send(
                self._http,
                method,
                url,
                vendor=VENDOR,
                operation=operation,
                headers=headers,
                **kwargs,
            )
        except PermanentProviderError as exc:
            # A 403 is also how the appliance says its licensed capacity is used up.
            if capacity_exceeded(exc.provider_detail):
                raise RetryableProviderError(
                    f"phonexia {operation}: the appliance is at capacity",
                    provider_detail=exc.provider_detail,
                ) from None
            raise

    def check_job(self, language: str | None, options: BaseModel) -> None:
        if isinstance(options, PhonexiaOptions) and options.engine == "default" and not language:
            raise RefusedRequest(
                "language_required",
                "the default engine needs a language (an RFC 5646 tag such as en "
                'or cs-CZ); or use the option "engine": "whisper-enhanced", which detects it',
                field="language",
            )

    async def submit(self, request: SubmitRequest) -> ProviderUpdate:
        options = request.options
        if not isinstance(options, PhonexiaOptions):
            options = PhonexiaOptions.model_validate(options.model_dump())
        self.check_job(request.language, options)
        if request.audio_path is None:
            raise PermanentProviderError(
                "invalid_audio", "phonexia needs the audio itself, not only a link"
            )
        data: dict[str, str] = {}
        if (config := submit_config(options)) is not None:
            data["config"] = json.dumps(config)
        filename = request.filename or request.audio_path.name
        content_type = request.content_type or "application/octet-stream"
        async with open_audio(request.audio_path) as audio:
            response = await self._send(
                "POST",
                self._base + _PATHS[options.engine],
                "submit",
                params=submit_params(request.language, options),
                data=data,
                files={"file": (filename, audio, content_type)},
                # Lets an operator find our job in the appliance's logs.
                headers={"X-Correlation-Id": request.job_id},
            )
        location = response.headers.get("location") or response.headers.get("x-location")
        try:
            body = json_object(response, vendor=VENDOR, operation="submit")
        except RetryableProviderError:
            if not location:
                raise
            body = {}  # the header alone names the task
        task_id = submitted_task_id(body, location)
        if task_id is None:
            raise RetryableProviderError(
                "phonexia submit: the answer names no task", provider_detail={"body": body}
            )
        task = body.get("task")
        state = task.get("state") if isinstance(task, dict) else None
        if state in ("rejected", "failed"):
            return task_update(body, task_id)
        # Accepted; even a task done at once is fetched, with its result, by the first poll.
        return ProviderUpdate("processing", task_id, state if isinstance(state, str) else None)

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        """The task's state (and result), from the endpoint of the engine the job asked for."""
        if not isinstance(options, PhonexiaOptions):  # the worker validates with options_model
            options = PhonexiaOptions()
        url = f"{self._base}{_PATHS[options.engine]}/{quote(provider_job_id, safe='')}"
        response = await self._send("GET", url, "status")
        return task_update(
            json_object(response, vendor=VENDOR, operation="status"), provider_job_id
        )

    async def cancel(self, provider_job_id: str) -> None:
        # No cancel is documented: the task runs out at the vendor; the job is canceled here.
        return None


def build(settings: Settings, http: httpx.AsyncClient) -> PhonexiaProvider:
    if not settings.phonexia_base_url:
        raise ValueError("PHONEXIA_BASE_URL is not set")
    key = settings.phonexia_api_key
    return PhonexiaProvider(
        settings.phonexia_base_url, http, api_key=key.get_secret_value() if key else None
    )
