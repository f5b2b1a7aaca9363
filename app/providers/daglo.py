"""Daglo (ActionPower) asynchronous speech recognition.

    POST {base}/stt/v1/async/transcripts        multipart `file`, or JSON `audio.source.url`
                                                (204: done, empty result)
    GET  {base}/stt/v1/async/transcripts/{rid}  status, progress, sttResults[] (204: empty result)

Auth is ``Authorization: Bearer <token>``. Daglo fetches a source URL itself, so
URL jobs are never downloaded by the gateway. There is no cancel endpoint.
Daglo POSTs progress and the final status to ``callback.url``; the gateway only
takes that as a hint to poll now. Daglo allows 20 requests a second per endpoint
(then 429), so every request waits for its turn here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from itertools import groupby
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr

from app.audio.sniff import sniff_format
from app.config import Settings
from app.providers.base import (
    AudioFormat,
    Capabilities,
    PermanentProviderError,
    ProviderResult,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.daglo_files import (
    CONTENT_TYPES,
    HEAD_BYTES,
    UNSUPPORTED,
    refusal,
    upload_extension,
    upload_name,
)
from app.providers.daglo_options import LANGUAGES, DagloOptions, resolve_language
from app.providers.http import json_object, send
from app.providers.pacing import spacing
from app.providers.upload import open_audio
from app.transcripts import Segment, Transcript, Word

log = logging.getLogger(__name__)

VENDOR = "daglo"
TRANSCRIPTS_PATH = "/stt/v1/async/transcripts"

# --- request ------------------------------------------------------------------


def request_fields(request: SubmitRequest, options: DagloOptions) -> dict[str, Any]:
    """The body fields other than the audio (the same for both content types)."""
    stt = options.sttConfig.model_dump(exclude_none=True) if options.sttConfig else {}
    language = resolve_language(request.language, stt.get("language"))
    if language is not None:
        stt["language"] = language
    fields: dict[str, Any] = {}
    if stt:
        fields["sttConfig"] = stt
    nlp = options.nlpConfig.model_dump(exclude_none=True) if options.nlpConfig else {}
    if nlp:
        fields["nlpConfig"] = nlp
    if request.callback_url:
        # `callback`, not the deprecated `callbackUrl` string.
        fields["callback"] = {"url": request.callback_url}
    # Daglo echoes `custom` in every GET: it carries what fetch() needs to read the
    # result but cannot see (fetch gets the rid and the options, not the job's id or
    # language).
    custom: dict[str, Any] = {"gateway_job_id": request.job_id}
    if language is not None and language != "mixed":
        custom["language"] = language
    channels = stt.get("multiChannel", {}).get("channelCount", 1)
    if channels > 1:
        custom["channel_count"] = channels
    fields["custom"] = custom
    return fields


def json_body(source_url: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"audio": {"source": {"url": source_url}}, **fields}


def multipart_fields(fields: dict[str, Any]) -> dict[str, str]:
    # The spec does not say how nested objects travel in multipart/form-data:
    # each goes as one form field holding its JSON text.
    return {name: json.dumps(value, ensure_ascii=False) for name, value in fields.items()}


# --- status and results --------------------------------------------------------

STATUSES: dict[str, Literal["processing", "completed", "failed"]] = {
    "ai_requested": "processing",
    "uploaded": "processing",
    "file_processing": "processing",
    "transcribing": "processing",
    "post_processing": "processing",
    "transcribed": "completed",
    # In the OpenAPI enum but not in the guide's list.
    "input_error": "failed",
    "transcript_error": "failed",
    "file_error": "failed",
}

# code, retryable (the same request may succeed later), what happened
_FAILURES: dict[str, tuple[str, bool, str]] = {
    "input_error": ("invalid_request", False, "daglo refused the request's input"),
    "file_error": ("invalid_audio", False, "daglo found an error in the audio file"),
    "transcript_error": ("provider_failed", True, "daglo failed while transcribing"),
}
_MESSAGE_CHARS = 500


def failure(status: str, body: dict[str, Any]) -> PermanentProviderError:
    code, retryable, what = _FAILURES[status]
    message = body.get("message")
    text = f"{what} ({status})"
    if isinstance(message, str) and message.strip():
        text += f": {message.strip()[:_MESSAGE_CHARS]}"
    return PermanentProviderError(
        code,
        text,
        retryable=retryable,
        provider_detail={"status": status, "message": message},
    )


def seconds(value: Any) -> float | None:
    """A protobuf-style ``{seconds: "1", nanos: 419999999}`` in seconds (ms precision).

    Missing fields are proto3 zeros; a missing time stays None.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"a time is not an object: {value!r}")
    whole, nanos = value.get("seconds", 0), value.get("nanos", 0)
    if isinstance(whole, bool) or isinstance(nanos, bool):
        raise ValueError("a time holds a boolean")
    return round(int(whole) + int(nanos) / 1e9, 3)


def _speaker(word: dict[str, Any]) -> str | None:
    speaker = word.get("speaker")
    return None if speaker is None or speaker == "" else str(speaker)


def _entry_segments(entry: dict[str, Any], channel: int | None) -> list[Segment]:
    """One sttResults entry as segments: words grouped by segmentId and speaker."""
    transcript = entry.get("transcript") or ""
    words = entry.get("words") or []
    if not isinstance(transcript, str) or not isinstance(words, list):
        raise ValueError("an sttResults entry has an unexpected shape")
    if not all(isinstance(w, dict) for w in words):
        raise ValueError("words is not a list of objects")
    if not words:
        text = transcript.strip()
        return [Segment(text=text, channel=channel)] if text else []
    segments = []
    # segmentId appears in Daglo's examples (not the schema); speaker with diarization.
    for (_, speaker), group in groupby(words, key=lambda w: (w.get("segmentId"), _speaker(w))):
        items = [
            Word(start=seconds(w.get("startTime")), end=seconds(w.get("endTime")), text=text)
            for w in group
            if (text := str(w.get("word") or "").strip())
        ]
        if items:
            segments.append(
                Segment(
                    start=items[0].start,
                    end=items[-1].end,
                    text=" ".join(w.text for w in items),
                    channel=channel,
                    speaker=speaker,
                    words=items,
                )
            )
    return segments


def echoed_custom(body: dict[str, Any]) -> dict[str, Any]:
    """Our `custom`, as Daglo echoes it: an object, or (the multipart encoding of
    nested fields is not documented, and an upload sends it as JSON text) that text."""
    echoed = body.get("custom")
    if isinstance(echoed, str):
        try:
            echoed = json.loads(echoed)
        except ValueError:
            return {}
    return echoed if isinstance(echoed, dict) else {}


def channels_asked(options: BaseModel) -> int:
    """How many channels the job asked Daglo to transcribe apart (1 if not asked)."""
    stt = options.sttConfig if isinstance(options, DagloOptions) else None
    multi = stt.multiChannel if stt else None
    return multi.channelCount if multi else 1


def build_transcript(body: dict[str, Any], channels: int = 1) -> Transcript:
    """A GET (or callback) body as our transcript; raises ValueError on a shape we
    do not know. ``channels``: as the job's options asked. Daglo gives no duration,
    confidence or detected language."""
    results = body.get("sttResults") or []
    custom = echoed_custom(body)
    if not isinstance(results, list) or not all(isinstance(e, dict) for e in results):
        raise ValueError("sttResults is not a list of objects")
    # With multiChannel each entry is one channel, in order: known from the job's
    # options, or from our own `custom` echoed back.
    echoed_channels = custom.get("channel_count")
    multichannel = channels > 1 or (isinstance(echoed_channels, int) and echoed_channels > 1)
    segments: list[Segment] = []
    texts: list[str] = []
    for index, entry in enumerate(results):
        segments += _entry_segments(entry, index if multichannel else None)
        transcript = entry.get("transcript")
        if isinstance(transcript, str) and transcript.strip():
            texts.append(transcript.strip())
    language = custom.get("language")
    return Transcript(
        text=("\n" if multichannel else " ").join(texts),
        language=language if isinstance(language, str) else None,
        duration=None,
        provider=VENDOR,
        segments=segments,
    )


def update_from_status(rid: str, body: dict[str, Any], channels: int = 1) -> ProviderUpdate:
    """A GET body as our update (raises ValueError on a shape we do not know);
    ``channels`` as in ``build_transcript``."""
    status = body.get("status")
    if not isinstance(status, str):
        raise ValueError("the answer has no status")
    ours = STATUSES.get(status)
    if ours is None:
        log.warning("daglo job %s has an unknown status %r: still processing", rid, status)
        ours = "processing"
    if ours == "completed":
        result = ProviderResult(transcript=build_transcript(body, channels), raw=body)
        return ProviderUpdate(ours, provider_job_id=rid, provider_status=status, result=result)
    if ours == "failed":
        error = failure(status, body)
        return ProviderUpdate(ours, provider_job_id=rid, provider_status=status, error=error)
    return ProviderUpdate(ours, provider_job_id=rid, provider_status=status)


# "20 requests/sec per endpoint, then HTTP 429" (NOTES.md, from the OpenAPI's
# info.description): each request waits for its turn, or a burst of progress
# callbacks would be a burst of GETs. DAGLO_REQUESTS_PER_SECOND can change it.
RATE_LIMIT = 20
# "Audio duration: Within 4 hours" (daglo.txt, "Verifying audio format is supported").
MAX_DURATION_SECONDS = 4 * 3600


# --- the adapter -----------------------------------------------------------------


class DagloProvider:
    name: ClassVar[str] = VENDOR
    needs_local_audio: ClassVar[bool] = False  # Daglo fetches a source_url itself
    options_model: ClassVar[type[BaseModel]] = DagloOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        # Sent under the extension Daglo lists for what the file holds (daglo_files);
        # Ogg other than Opus, and Matroska other than WebM, are refused: at creation
        # when the upload's first bytes show it (refuses_upload), else at submit.
        formats=("wav", "mp3", "flac", "ogg", "webm", "mp4", "aiff", "amr"),
        source_url=True,
        upload=True,
        callbacks=True,
        cancel=False,
        word_timestamps=True,
        diarization=True,
        languages=tuple(LANGUAGES),
        max_duration_seconds=MAX_DURATION_SECONDS,
    )

    def __init__(
        self,
        api_key: SecretStr,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        requests_per_second: float = RATE_LIMIT,
    ) -> None:
        self._api_key = api_key
        self._url = base_url.rstrip("/") + TRANSCRIPTS_PATH
        self._http = http
        self._submits = spacing(f"POST {self._url}", requests_per_second)
        self._statuses = spacing(f"GET {self._url}/{{rid}}", requests_per_second)

    def refuses_upload(self, fmt: AudioFormat, head: bytes) -> str | None:
        return refusal(fmt, head)

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Accept": "application/json",
        }

    def check_job(self, language: str | None, options: BaseModel) -> None:
        if isinstance(options, DagloOptions) and options.sttConfig:
            resolve_language(language, options.sttConfig.language)

    async def submit(self, request: SubmitRequest) -> ProviderUpdate:
        options = request.options
        if not isinstance(options, DagloOptions):
            options = DagloOptions.model_validate(options.model_dump(exclude_unset=True))
        fields = request_fields(request, options)
        if request.audio_path is not None:
            response = await self._upload(request, fields)
        elif request.source_url is not None:
            await self._submits.wait()
            response = await send(
                self._http,
                "POST",
                self._url,
                vendor=VENDOR,
                operation="submit",
                headers=self._headers(),
                json=json_body(request.source_url, fields),
            )
        else:
            raise PermanentProviderError("invalid_request", "the job has neither audio nor a URL")
        if response.status_code == 204:
            # Documented for the POST too: done at once, with nothing to fetch later.
            return _empty_result(None)
        body = json_object(response, vendor=VENDOR, operation="submit")
        rid = body.get("rid")
        if not isinstance(rid, str) or not rid:
            raise RetryableProviderError(
                "daglo submit: the answer has no rid", provider_detail={"body": body}
            )
        # The POST answer carries no status word: provider_status waits for the first GET.
        return ProviderUpdate("processing", provider_job_id=rid)

    async def _upload(self, request: SubmitRequest, fields: dict[str, Any]) -> httpx.Response:
        assert request.audio_path is not None
        async with open_audio(request.audio_path) as audio:
            head = (await asyncio.to_thread(audio.read, HEAD_BYTES))[:HEAD_BYTES]
            audio.seek(0)
            fmt = request.audio_format or sniff_format(head)
            extension = upload_extension(fmt, head) if fmt else None
            if extension is None:
                raise PermanentProviderError(
                    "unsupported_media",
                    UNSUPPORTED.get(fmt or "", "daglo does not take this file's format"),
                )
            filename = upload_name(request.filename, request.job_id, extension)
            await self._submits.wait()
            return await send(
                self._http,
                "POST",
                self._url,
                vendor=VENDOR,
                operation="submit",
                headers=self._headers(),
                data=multipart_fields(fields),
                files={"file": (filename, audio, CONTENT_TYPES[extension])},
            )

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        await self._statuses.wait()
        response = await send(
            self._http,
            "GET",
            f"{self._url}/{quote(provider_job_id, safe='')}",
            vendor=VENDOR,
            operation="status",
            headers=self._headers(),
        )
        if response.status_code == 204:
            return _empty_result(provider_job_id)
        body = json_object(response, vendor=VENDOR, operation="status")
        try:
            return update_from_status(provider_job_id, body, channels_asked(options))
        except (ValueError, TypeError) as exc:
            raise RetryableProviderError(
                f"daglo status: an answer of unexpected shape ({exc})"[:_MESSAGE_CHARS]
            ) from None

    async def cancel(self, provider_job_id: str) -> None:
        # Daglo has no cancel or delete endpoint: the gateway's job is canceled and
        # Daglo's run finishes on its own.
        return None


def _empty_result(rid: str | None) -> ProviderUpdate:
    """Daglo's 204: "transcription is complete, but the result is empty"."""
    empty = Transcript(text="", provider=VENDOR)
    return ProviderUpdate(
        "completed",
        provider_job_id=rid,
        provider_status="transcribed",
        result=ProviderResult(transcript=empty, raw=None),
    )


def build(settings: Settings, http: httpx.AsyncClient) -> DagloProvider:
    if settings.daglo_api_key is None:
        raise ValueError("DAGLO_API_KEY is not set")
    return DagloProvider(
        settings.daglo_api_key,
        settings.daglo_base_url,
        http,
        requests_per_second=settings.daglo_requests_per_second,
    )
