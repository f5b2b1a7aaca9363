"""Any OpenAI-compatible transcription upstream: OpenAI itself, Groq, a self-hosted Whisper.

``POST {base}/audio/transcriptions`` answers with the whole transcript, so the
call is made inside ``submit`` and the job completes there (no polling, no
vendor job to fetch or cancel). The audio is uploaded as multipart ``file``.

We ask for ``verbose_json`` with word and segment timestamps. Upstreams differ
in what they give back: whisper-1 and Groq give segments (and words when
asked), the gpt-4o models take only ``json`` and give ``{"text"}``, and some
self-hosted servers give text alone. Whatever is missing stays empty.

This module is the adapter: the request, the upload and the error mapping. The
parsing of the answer into a transcript is in ``app.providers.openai_transcript``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app.audio.sniff import media_type
from app.config import Settings
from app.providers.base import (
    AudioFormat,
    Capabilities,
    PermanentProviderError,
    ProviderError,
    ProviderResult,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.early_upload import EarlyUpload, UploadForm, multi_dict
from app.providers.http import json_object, send
from app.providers.openai_transcript import VENDOR, build_transcript
from app.providers.upload import open_audio
from app.storage import write_backs

log = logging.getLogger(__name__)

OPERATION = "transcribe"
# A long recording can take minutes to transcribe; the answer comes on the same connection.
TIMEOUT = httpx.Timeout(600, connect=10)

# The API reference's file types. The upstream goes by the file name's extension,
# so a name without one of these gets the extension of the format we sniffed.
_ACCEPTED_EXTENSIONS = frozenset(
    {"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"}
)
_EXTENSIONS: dict[AudioFormat, str] = {
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "ogg": "ogg",
    "webm": "webm",
    "mp4": "m4a",  # an MP4 container from a speech pipeline is almost always audio-only
}
# "For gpt-4o-transcribe and gpt-4o-mini-transcribe, the only supported format is json"
# (and timestamp_granularities needs verbose_json): asking for more is a 400.
_JSON_ONLY_MODEL_PREFIXES = ("gpt-4o",)
# A 400 naming one of these means the upstream (or model) cannot do verbose_json:
# ask again for plain json rather than fail the job.
_VERBOSE_PARAMS = frozenset(
    {"response_format", "timestamp_granularities", "timestamp_granularities[]"}
)

# What a 400 about the file itself says (OpenAI: "Invalid file format. Supported formats:
# [...]", "Audio file might be corrupted or unsupported"; others say much the same).
_UNSUPPORTED_MEDIA = re.compile(
    r"file format|corrupt|could not be decoded|unsupported (?:file|audio|format)"
    r"|not a valid audio",
    re.IGNORECASE,
)
_TOO_LARGE = re.compile(r"content size limit|too large|exceeds the maximum", re.IGNORECASE)
_MESSAGE_CHARS = 300


class OpenAIOptions(BaseModel):
    """Options of the ``openai`` provider, passed to the upstream as they are."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="whisper-1",
        min_length=1,
        max_length=200,
        description="The upstream's model: whisper-1, gpt-4o-transcribe, "
        "whisper-large-v3 (Groq), or what a self-hosted server names",
    )
    prompt: str | None = Field(
        default=None, description="Text to guide the style or continue a previous segment"
    )
    temperature: float | None = Field(
        default=None, ge=0, le=1, description="Sampling temperature, 0 to 1"
    )


def request_language(language: str | None) -> str | None:
    """The job's BCP-47 tag as the API's ISO-639-1 ``language``: "en-US" is "en"."""
    if not language:
        return None
    return language.replace("_", "-").split("-")[0].lower() or None


def wants_json_only(model: str) -> bool:
    return model.lower().startswith(_JSON_ONLY_MODEL_PREFIXES)


def form_fields(
    options: OpenAIOptions, language: str | None, *, verbose: bool
) -> list[tuple[str, str]]:
    """The multipart fields other than the file, in the API reference's names."""
    fields = [("model", options.model)]
    code = request_language(language)
    if code:
        fields.append(("language", code))
    if options.prompt:
        fields.append(("prompt", options.prompt))
    if options.temperature is not None:
        fields.append(("temperature", str(options.temperature)))
    if verbose:
        fields.append(("response_format", "verbose_json"))
        # An array field in a form: the name with brackets, once per value.
        fields += [("timestamp_granularities[]", g) for g in ("word", "segment")]
    else:
        fields.append(("response_format", "json"))
    return fields


def _options_of(request: SubmitRequest) -> OpenAIOptions:
    options = request.options
    if isinstance(options, OpenAIOptions):
        return options
    return OpenAIOptions.model_validate(options.model_dump())


def _upload_form(request: SubmitRequest, options: OpenAIOptions, *, verbose: bool) -> UploadForm:
    """What a post of ``request`` sends besides the file's bytes."""
    return UploadForm(
        tuple(form_fields(options, request.language, verbose=verbose)),
        upload_name(request),
        upload_content_type(request),
    )


def upload_name(request: SubmitRequest) -> str:
    """A file name whose extension the upstream recognises (it goes by the extension)."""
    name = request.filename
    if not name and request.source_url:
        name = unquote(PurePosixPath(urlsplit(request.source_url).path).name)
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1] or "audio"
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in _ACCEPTED_EXTENSIONS:
        return name
    extension = _EXTENSIONS.get(request.audio_format) if request.audio_format else None
    return f"{name}.{extension}" if extension else name


def upload_content_type(request: SubmitRequest) -> str:
    if request.content_type:
        return request.content_type
    return media_type(request.audio_format)


# --- errors ---


def _error_envelope(error: ProviderError) -> dict[str, Any]:
    """``{"message", "type", "param", "code"}`` from the upstream's error body, or {}."""
    detail = error.provider_detail
    body = detail.get("body") if isinstance(detail, dict) else None
    envelope = body.get("error") if isinstance(body, dict) else None
    return envelope if isinstance(envelope, dict) else {}


def _status(error: PermanentProviderError) -> int | None:
    detail = error.provider_detail
    status = detail.get("status_code") if isinstance(detail, dict) else None
    return status if isinstance(status, int) else None


def refine_refusal(error: PermanentProviderError) -> PermanentProviderError:
    """A 4xx from http.send, with a code and message that say what the upstream disliked."""
    envelope = _error_envelope(error)
    message = envelope.get("message")
    if not isinstance(message, str) or not message.strip():
        return error
    code = error.code
    # Only a 400 about the file (param "file", or none named) is about the audio.
    if _status(error) == 400 and envelope.get("param") in (None, "file"):
        if _TOO_LARGE.search(message):
            code = "input_too_large"
        elif _UNSUPPORTED_MEDIA.search(message):
            code = "unsupported_media"
    if code == "provider_auth":
        # The upstream's words about a key add nothing the client can act on.
        return error
    text = " ".join(message.split())[:_MESSAGE_CHARS]
    return PermanentProviderError(
        code, f"{error.message}: {text}", provider_detail=error.provider_detail
    )


def quota_exhausted(error: RetryableProviderError) -> PermanentProviderError | None:
    """OpenAI's 429 ``insufficient_quota``: out of credits, which no retry soon mends."""
    envelope = _error_envelope(error)
    if "insufficient_quota" not in (envelope.get("code"), envelope.get("type")):
        return None
    return PermanentProviderError(
        "provider_quota",
        f"{VENDOR} {OPERATION} refused: the upstream account is out of quota",
        provider_detail=error.provider_detail,
    )


def _is_verbose_refusal(error: PermanentProviderError) -> bool:
    return _status(error) == 400 and _error_envelope(error).get("param") in _VERBOSE_PARAMS


class OpenAIProvider:
    name: ClassVar[str] = VENDOR
    needs_local_audio: ClassVar[bool] = True  # a multipart upload: URLs are fetched first
    options_model: ClassVar[type[BaseModel]] = OpenAIOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        # The API takes flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav and webm.
        formats=("wav", "mp3", "flac", "ogg", "webm", "mp4"),
        source_url=True,
        upload=True,
        callbacks=False,
        cancel=False,
        synchronous=True,
        word_timestamps=True,  # with whisper-1 and most Whisper servers; not gpt-4o
        diarization=False,
        languages=None,  # the upstream decides (Whisper knows about a hundred)
    )

    def __init__(self, api_key: SecretStr, base_url: str, http: httpx.AsyncClient) -> None:
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/audio/transcriptions"
        self._http = http
        self._early: dict[str, EarlyUpload] = {}  # by job id, until its submit takes it

    async def submit(self, request: SubmitRequest) -> ProviderUpdate:
        if request.audio_path is None:
            raise PermanentProviderError(
                "invalid_audio", "the openai provider uploads the audio and has none for this job"
            )
        options = _options_of(request)
        try:
            response = await self._transcribe(request, options)
        except PermanentProviderError as exc:
            raise refine_refusal(exc) from None
        except RetryableProviderError as exc:
            if quota := quota_exhausted(exc):
                raise quota from None
            raise
        body = json_object(response, vendor=VENDOR, operation=OPERATION)
        if not isinstance(body.get("text"), str):
            raise RetryableProviderError(
                f"{VENDOR} {OPERATION}: the answer has no text",
                provider_detail={"keys": sorted(body)[:20]},
            )
        return ProviderUpdate(
            status="completed",
            # No job on the upstream's side: its request id is what its support asks for.
            provider_job_id=response.headers.get("x-request-id") or request.job_id,
            provider_status="completed",
            result=ProviderResult(transcript=build_transcript(body), raw=body),
        )

    async def _transcribe(self, request: SubmitRequest, options: OpenAIOptions) -> httpx.Response:
        verbose = not wants_json_only(options.model)
        try:
            return await self._post(request, options, verbose=verbose)
        except PermanentProviderError as exc:
            if not (verbose and _is_verbose_refusal(exc)):
                raise
        # Nothing was transcribed: ask again for what every upstream can give.
        log.info("the openai upstream refused verbose_json for %s; asking for json", options.model)
        return await self._post(request, options, verbose=False)

    @property
    def early_uploads(self) -> int:
        return len(self._early)

    def start_early(self, request: SubmitRequest, file_bytes: int) -> EarlyUpload:
        """The first upload of ``request``'s job, started while the client's upload
        arrives (``file_bytes`` long, predicted); its submit sends the last bytes."""
        self.drop_early(request.job_id)
        options = _options_of(request)
        form = _upload_form(request, options, verbose=not wants_json_only(options.model))
        early = EarlyUpload(form, file_bytes, self._send_early)
        self._early[request.job_id] = early
        return early

    def drop_early(self, job_id: str) -> None:
        """Give up the job's early upload unless its submit took it (idempotent)."""
        early = self._early.pop(job_id, None)
        if early is not None:
            early.give_up()

    async def _send_early(
        self, body: AsyncIterator[bytes], length: int, content_type: str
    ) -> httpx.Response:
        headers = {"Content-Type": content_type, "Content-Length": str(length)}
        return await self._call(headers, content=body)

    async def _call(self, headers: dict[str, str], **body: Any) -> httpx.Response:
        """One POST of a transcription to the upstream, with the key."""
        return await send(
            self._http,
            "POST",
            self._url,
            vendor=VENDOR,
            operation=OPERATION,
            headers={"Authorization": f"Bearer {self._api_key.get_secret_value()}", **headers},
            timeout=TIMEOUT,
            **body,
        )

    async def _take_early(
        self, request: SubmitRequest, options: OpenAIOptions, verbose: bool
    ) -> httpx.Response | None:
        """The answer to the job's early upload, if one is waiting for its last bytes
        and holds what this post would send; else None (and it is given up)."""
        early = self._early.pop(request.job_id, None)
        if early is None:
            return None
        if _upload_form(request, options, verbose=verbose) != early.form:
            early.give_up()
            return None
        response = await early.release()
        if response is not None and request.audio_path is not None:
            write_backs.submit(request.audio_path)  # as open_audio does once it is sent
        return response

    async def _post(
        self, request: SubmitRequest, options: OpenAIOptions, *, verbose: bool
    ) -> httpx.Response:
        assert request.audio_path is not None
        if (early := await self._take_early(request, options, verbose)) is not None:
            return early
        form = _upload_form(request, options, verbose=verbose)
        async with open_audio(request.audio_path) as audio:
            return await self._call(
                {},
                data=multi_dict(form.fields),
                files={"file": (form.filename, audio, form.content_type)},
            )

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        raise PermanentProviderError(
            "not_supported", "openai jobs finish inside submit; there is nothing to fetch"
        )

    async def cancel(self, provider_job_id: str) -> None:
        # The upstream has no job to stop; a call under way just runs out.
        return None


def build(settings: Settings, http: httpx.AsyncClient) -> OpenAIProvider:
    """The registry's factory: enabled when OPENAI_API_KEY is set."""
    assert settings.openai_api_key is not None
    return OpenAIProvider(settings.openai_api_key, settings.openai_base_url, http)
