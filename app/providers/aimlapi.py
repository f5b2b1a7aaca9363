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

This module is the adapter: the HTTP calls, the status mapping and the failure
messages. The options model and the per-family request rules are in
``app.providers.aimlapi_options``, the payload parsing in
``app.providers.aimlapi_transcripts``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from app.config import Settings
from app.providers.aimlapi_options import AimlApiOptions, create_fields, model_family
from app.providers.aimlapi_transcripts import VENDOR, _str, to_transcript
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

log = logging.getLogger(__name__)

# Creating a job with a large upload answers only once the vendor has stored it.
_SUBMIT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
_MESSAGE_CHARS = 500

OurStatus = Literal["processing", "completed", "failed"]

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
