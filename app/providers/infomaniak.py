"""Infomaniak AI: Whisper behind an OpenAI-like, asynchronous batch API.

    POST {base}/1/ai/{product_id}/openai/audio/transcriptions  -> {"batch_id": "..."}
    GET  {base}/1/ai/{product_id}/results/{batch_id}
         -> {"status": "pending|processing|success|failed|cancelled", "url", "file_name",
             "file_size", "data"}
    GET  the result's ``url``, or {base}/1/ai/{product_id}/results/{batch_id}/download

The documents leave open where the transcript is (vendor-docs/NOTES.md, section 4),
so every variant is accepted, in this order: inline in ``data`` (a JSON object,
a JSON string or plain text), then the result's ``url``, then, when that is a
404, the product-scoped download path that third-party clients use. A body is
verbose_json, json (``{"text"}``), plain text, or SRT/WebVTT (as asked for), and
infomaniak_transcript.py reads it.
There is no cancel endpoint and no callback: the job is polled.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import PurePath
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from app.audio.sniff import media_type
from app.config import Settings
from app.providers.base import (
    AudioFormat,
    Capabilities,
    PermanentProviderError,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.http import json_object, send
from app.providers.infomaniak_transcript import (
    NAME,
    UnexpectedPayload,
    inline_payload,
    parse_body,
    result_from_payload,
)
from app.providers.upload import open_audio

log = logging.getLogger(__name__)

# "50mo max" (an older copy of the page says 25): the newer figure, read as MiB so
# that a file in the gap between 50 MB and 50 MiB is left for the vendor to judge.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
_VENDOR_EXTENSIONS = {"mp3", "mp4", "aac", "wav", "flac", "ogg", "opus", "wma", "m4a"}
# The vendor's status words; anything else keeps the job processing (and is logged).
STATUS_MAP: dict[str, Literal["processing", "completed", "failed"]] = {
    "pending": "processing",
    "processing": "processing",
    "success": "completed",
    "failed": "failed",
    "cancelled": "failed",  # the client did not cancel (we never ask the vendor to)
    "canceled": "failed",
}
_FAILURE_CODES = {"cancelled": "provider_canceled", "canceled": "provider_canceled"}

# The reference's `language` "Possible values", in its order (its page runs them
# together: "afamarasaz…yuezh"; they are Whisper's codes, haw and yue the only
# three-letter ones). The reference marks file and model required, not language: a job
# may leave it out, and Whisper then detects the language itself.
LANGUAGES = (
    "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs",
    "cy", "da", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu",
    "ha", "haw", "he", "hi", "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jw", "ka",
    "kk", "km", "kn", "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi", "mk", "ml",
    "mn", "mr", "ms", "mt", "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt",
    "ro", "ru", "sa", "sd", "si", "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw",
    "ta", "te", "tg", "th", "tk", "tl", "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo",
    "yue", "zh",
)  # fmt: skip
# BCP-47 subtags that Whisper spells differently (sent as the code on the right).
_LANGUAGE_ALIASES = {"jv": "jw", "nb": "no", "iw": "he"}


class InfomaniakOptions(BaseModel):
    """The documented request fields other than ``file`` and ``language``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: Literal["whisper", "whisperV2"] = "whisper"
    # verbose_json by default: the only format with segment (and word) times.
    response_format: Literal["verbose_json", "json", "text", "srt", "vtt"] = "verbose_json"
    timestamp_granularities: list[Literal["segment", "word"]] | None = Field(
        default=None, min_length=1, max_length=2
    )
    prompt: str | None = Field(default=None, max_length=4000)
    chunk_length: int | None = Field(default=None, ge=2, le=30)
    no_speech_threshold: float | None = Field(default=None, ge=0, le=1)
    append_punctuations: str | None = Field(default=None, max_length=100)
    prepend_punctuations: str | None = Field(default=None, max_length=100)
    # Subtitle shaping: only the srt and vtt outputs show it (kept as an artifact).
    highlight_words: bool | None = None
    max_line_count: int | None = Field(default=None, ge=1, le=1000)
    max_line_width: int | None = Field(default=None, ge=1, le=1000)
    max_words_per_line: int | None = Field(default=None, ge=1, le=1000)


# --- pure converters -------------------------------------------------------------


def whisper_language(tag: str) -> str:
    """A BCP-47 tag as Whisper's ISO-639-1 code: en-US -> en."""
    primary = tag.replace("_", "-").split("-")[0].lower()
    return _LANGUAGE_ALIASES.get(primary, primary)


def form_fields(options: InfomaniakOptions, language: str | None) -> dict[str, str | list[str]]:
    """The multipart fields besides the file, as the vendor spells them."""
    fields: dict[str, str | list[str]] = {}
    for name, value in options.model_dump(exclude_none=True).items():
        if name == "timestamp_granularities":
            fields["timestamp_granularities[]"] = list(value)  # OpenAI's array spelling
        elif isinstance(value, bool):
            fields[name] = "true" if value else "false"
        else:
            fields[name] = str(value)
    if language:
        fields["language"] = whisper_language(language)
    return fields


def batch_id_of(body: dict[str, Any]) -> str | None:
    """The batch id, at the top level (the example) or in Infomaniak's usual envelope."""
    for holder in (body, body.get("data")):
        if isinstance(holder, dict):
            value = holder.get("batch_id")
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    return None


def unwrap_results(body: dict[str, Any]) -> dict[str, Any]:
    """The results object, also when wrapped as {"result": "success", "data": {...}}."""
    data = body.get("data")
    if "status" not in body and body.get("result") == "success" and isinstance(data, dict):
        return data
    return body


def failure_of(word: str, body: dict[str, Any]) -> PermanentProviderError:
    code = _FAILURE_CODES.get(word.lower(), "provider_failed")
    reason = body.get("data")
    message = f"{NAME} reported the transcription as {word}"
    if isinstance(reason, str) and reason.strip():
        message += f": {reason.strip()[:200]}"
    return PermanentProviderError(code, message, provider_detail=body)


def refusal_in(body: dict[str, Any], operation: str) -> PermanentProviderError | None:
    """Infomaniak's {"result": "error", "error": {...}} envelope, even on a 2xx."""
    if body.get("result") != "error":
        return None
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    message = f"{NAME} {operation} refused" + (f": {code}" if isinstance(code, str) else "")
    return PermanentProviderError("provider_rejected", message, provider_detail=body)


# --- the adapter -----------------------------------------------------------------


class InfomaniakProvider:
    name: ClassVar[str] = NAME
    # Uploads only: a client's source_url is downloaded by the gateway first.
    needs_local_audio: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = InfomaniakOptions
    # The vendor's list is mp3, mp4, aac, wav, flac, ogg, opus, wma, m4a; these are
    # the ones the gateway recognises (m4a is mp4, Opus comes in Ogg).
    capabilities: ClassVar[Capabilities] = Capabilities(
        formats=("mp3", "mp4", "wav", "flac", "ogg"),
        word_timestamps=True,
        # A job without a language is still taken (the intake checks only a given one).
        languages=(*LANGUAGES, *_LANGUAGE_ALIASES),
        max_upload_bytes=MAX_UPLOAD_BYTES,  # a file from a source_url is checked at submit
    )
    unsupported_format_hint: ClassVar[str] = (
        "Infomaniak takes MP3, MP4/M4A, WAV, FLAC and Ogg/Opus audio."
    )

    def __init__(
        self, *, api_key: str, product_id: str, base_url: str, http: httpx.AsyncClient
    ) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._base = base_url.rstrip("/")
        self._product = f"{self._base}/1/ai/{quote(product_id, safe='')}"
        self._http = http

    def __repr__(self) -> str:  # never the token
        return f"InfomaniakProvider(base_url={self._base!r})"

    async def submit(self, request: SubmitRequest) -> ProviderUpdate:
        path = request.audio_path
        if path is None:
            raise PermanentProviderError("invalid_audio", f"{NAME} needs the audio file itself")
        size = (await asyncio.to_thread(path.stat)).st_size
        if size > MAX_UPLOAD_BYTES:
            raise PermanentProviderError(
                "input_too_large",
                f"{NAME} takes files up to 50 MB; this one has {size} bytes",
                provider_detail={"size": size, "limit": MAX_UPLOAD_BYTES},
            )
        options = request.options
        if not isinstance(options, InfomaniakOptions):
            raise PermanentProviderError("invalid_options", f"not {NAME} options")
        # The reference shows a JSON body with `file` as a string, yet says the input
        # is OpenAI's; OpenAI's transcription endpoint takes multipart, and a string
        # cannot carry the audio, so the file goes as a multipart part.
        async with open_audio(path) as audio:
            response = await send(
                self._http,
                "POST",
                f"{self._product}/openai/audio/transcriptions",
                vendor=NAME,
                operation="submit",
                headers=self._headers,
                data=form_fields(options, request.language),
                files={"file": (_upload_name(request), audio, _upload_type(request))},
            )
        body = json_object(response, vendor=NAME, operation="submit")
        if (refused := refusal_in(body, "submit")) is not None:
            raise refused
        batch_id = batch_id_of(body)
        if batch_id is None:
            raise RetryableProviderError(
                f"{NAME} submit: no batch_id in the answer", provider_detail=body
            )
        return ProviderUpdate(status="processing", provider_job_id=batch_id)

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        batch = quote(provider_job_id, safe="")
        response = await send(
            self._http,
            "GET",
            f"{self._product}/results/{batch}",
            vendor=NAME,
            operation="status",
            headers=self._headers,
        )
        body = json_object(response, vendor=NAME, operation="status")
        if (refused := refusal_in(body, "status")) is not None:
            raise refused
        body = unwrap_results(body)
        word = body.get("status")
        if not isinstance(word, str):
            raise RetryableProviderError(f"{NAME} status: no status word", provider_detail=body)
        ours = STATUS_MAP.get(word.lower())
        if ours is None:
            log.warning("%s: unknown status %r for batch %s", NAME, word, provider_job_id)
            ours = "processing"
        if ours == "processing":
            return ProviderUpdate(
                status="processing", provider_job_id=provider_job_id, provider_status=word
            )
        if ours == "failed":
            return ProviderUpdate(
                status="failed",
                provider_job_id=provider_job_id,
                provider_status=word,
                error=failure_of(word, body),
            )
        try:
            inline = inline_payload(body.get("data"))
            payload = inline if inline is not None else await self._download(batch, body)
            raw = body if inline is not None else {"results": body, "download": payload}
            result = result_from_payload(payload, raw)
        except UnexpectedPayload as exc:
            raise RetryableProviderError(f"{NAME} result: {exc}", provider_detail=body) from None
        return ProviderUpdate(
            status="completed", provider_job_id=provider_job_id, provider_status=word, result=result
        )

    async def cancel(self, provider_job_id: str) -> None:
        # No cancel endpoint is documented: the job is canceled here, the batch runs out.
        return None

    async def _download(self, batch: str, body: dict[str, Any]) -> dict[str, Any] | str:
        product_path = f"{self._product}/results/{batch}/download"
        url = body.get("url")
        documented = self._on_base(url) if isinstance(url, str) else None
        if documented is not None and documented != product_path:
            try:
                return await self._get_result(documented)
            except PermanentProviderError as exc:
                if exc.code != "provider_not_found":
                    raise
                # A 404 at the documented link: try the path third-party clients use.
        return await self._get_result(product_path)

    async def _get_result(self, url: str) -> dict[str, Any] | str:
        response = await send(
            self._http,
            "GET",
            url,
            vendor=NAME,
            operation="download",
            headers=self._headers,
            # httpx drops the Authorization header when a redirect leaves the host.
            follow_redirects=True,
        )
        if response.status_code != 200:
            raise UnexpectedPayload(f"the download answered HTTP {response.status_code}")
        return parse_body(response.text)

    def _on_base(self, url: str) -> str | None:
        """The result link on the configured base URL. The documents show it on
        api.infomaniak.com; keeping its path but our scheme and host lets proxies and
        tests work, and the token is never sent to a host the operator did not set."""
        parts = urlsplit(url)
        if not parts.path.startswith("/"):
            return None
        return self._base + parts.path + (f"?{parts.query}" if parts.query else "")


def _upload_name(request: SubmitRequest) -> str:
    """A file name whose extension tells the vendor the container (Whisper servers look)."""
    if request.filename:
        name = PurePath(request.filename.replace("\\", "/")).name
        if name.rpartition(".")[2].lower() in _VENDOR_EXTENSIONS:
            return name
    return f"audio.{request.audio_format}" if request.audio_format else "audio"


def _upload_type(request: SubmitRequest) -> str:
    given = request.content_type or ""
    if given.startswith(("audio/", "video/")):
        return given
    fmt: AudioFormat | None = request.audio_format
    return media_type(fmt)


def build(settings: Settings, http: httpx.AsyncClient) -> InfomaniakProvider:
    """The registry's factory (called only when the key and the product id are set)."""
    if settings.infomaniak_api_key is None or not settings.infomaniak_product_id:
        raise ValueError("infomaniak needs INFOMANIAK_API_KEY and INFOMANIAK_PRODUCT_ID")
    return InfomaniakProvider(
        api_key=settings.infomaniak_api_key.get_secret_value(),
        product_id=settings.infomaniak_product_id,
        base_url=settings.infomaniak_base_url,
        http=http,
    )
