"""Klangio (api.klang.io): music transcription into MIDI, MusicXML, PDF and Guitar Pro.

Klangio hears notes, not words: a completed job's transcript is empty (no text,
no segments, nothing invented) and its results are the files asked for with
``outputs``, stored as the job's artifacts under the same names.

The workflow, from vendor-docs/klangio.txt and NOTES.md §1::

    POST /transcription?model=…&title=…&composer=…&webhook_url=…
         multipart: file, outputs (one field per value)    -> {"job_id", "gen_*": bool, …}
    GET  /job/{id}/status                                  -> {"status": "IN_QUEUE" | …}
    GET  /job/{id}/{midi | midi_quant | midi_unq | xml | pdf | gp5}   -> the file

Every call carries the header ``kl-api-key``. Klangio keeps results for 14
days, so they are downloaded as soon as the status says COMPLETED. The webhook
body is undocumented; it only makes the gateway poll sooner.

The job's provider_job_id is Klangio's own job id. Only the outputs the job asked
for are downloaded (each extra format may cost quota, and what Klangio answers
for a format it was not asked for is undocumented).

COMPLETED means "result files can be fetched", yet a file may still be missing
(its result path answers 404), and Klangio may not make a requested file at all
(the documents' own create answer has ``gen_gp5`` false for a request of gp5).
Then the job stays processing for PARTIAL_GRACE_SECONDS from the first such
look, looked at again every PARTIAL_POLL_SECONDS. After that it completes with
what is there, the rest listed in ``missing_outputs``; with no file at all it
fails (provider_failed, naming the outputs), never a vendor fault retried until
the deadline, since each retry would count against Klangio's circuit breaker.

This module is the adapter: the HTTP calls, the status mapping, the downloads
and the failure messages. The options model, the output-format table and the
create request's fields are in ``app.providers.klangio_options``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from app.audio.sniff import media_type
from app.config import Settings
from app.providers.base import (
    Artifact,
    AudioFormat,
    Capabilities,
    PermanentProviderError,
    ProviderError,
    ProviderResult,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.http import json_object, send
from app.providers.klangio_grace import FirstSeen
from app.providers.klangio_options import (
    OUTPUTS,
    KlangioOptions,
    OutputFormat,
    transcription_form,
    transcription_params,
)
from app.providers.upload import open_audio
from app.transcripts import Transcript

log = logging.getLogger(__name__)

VENDOR = "klangio"
AUTH_HEADER = "kl-api-key"

OurStatus = Literal["processing", "completed", "failed"]

STATUS_MAP: dict[str, OurStatus] = {
    "IN_QUEUE": "processing",
    "IN_PROGRESS": "processing",
    "COMPLETED": "completed",
    "FAILED": "failed",
    # Not on Klangio's pages: third-party clients read these two from its OpenAPI.
    "CANCELLED": "failed",
    "TIMED_OUT": "failed",
}

# Terminal failure word -> (our error code, may the same request succeed again?)
FAILURES: dict[str, tuple[str, bool]] = {
    "FAILED": ("provider_failed", False),  # "processing of job was not possible"
    "CANCELLED": ("provider_canceled", False),
    "TIMED_OUT": ("provider_timeout", True),  # Klangio's own limit, not the input's fault
}

# A result path answering one of these does not have the file: 404/410, or 422
# from a FastAPI route whose format enum lacks this path variant. Any other
# refusal is an error.
_NOT_THERE = {404, 410, 422}

# How long a COMPLETED job with some or all of its files missing waits for them.
# COMPLETED is documented as "result files can be fetched", so a file missing
# then is either a moment behind the others (worth a short wait) or never coming
# (the documents' own create answer has gen_gp5 false for a request of gp5), and
# a job of the second kind pays the whole grace. A minute gives a late file six
# looks, delays a job by no more than that, and stays far inside
# PROVIDER_DEADLINE_SECONDS (900 s). A job with no file at all by then fails.
PARTIAL_GRACE_SECONDS = 60.0
# How often to look meanwhile: about six looks in the grace, each a status GET
# and the downloads.
PARTIAL_POLL_SECONDS = 10.0


def klangio_capabilities() -> Capabilities:
    # Klangio lists no input formats: every format the gateway recognises is passed
    # on, and a refusal fails the job with Klangio's own detail.
    formats: tuple[AudioFormat, ...] = get_args(AudioFormat)
    return Capabilities(
        formats=formats,
        source_url=True,  # downloaded by the gateway: Klangio takes only the file itself
        upload=True,
        callbacks=True,
        cancel=False,  # Klangio documents no way to cancel or delete a job
        languages=(),  # music has no language parameter
    )


# --- pure conversions ----------------------------------------------------------


def check_language(language: str | None) -> None:
    if language is not None:
        raise PermanentProviderError(
            "unsupported_language",
            f"klangio transcribes music and takes no language (got {language!r}); leave it out",
        )


def upload_name_and_type(request: SubmitRequest) -> tuple[str, str]:
    """The file part's name and type; a downloaded source_url has neither of its own."""
    fmt = request.audio_format
    filename = request.filename or f"{request.job_id}.{fmt or 'bin'}"
    content_type = request.content_type or media_type(fmt)
    return filename, content_type


def created_job_id(body: dict[str, Any]) -> str:
    job_id = body.get("job_id")
    if not isinstance(job_id, str) or not job_id.strip():
        raise RetryableProviderError(
            "klangio submit: the answer has no job_id", provider_detail=body
        )
    return job_id


def announced_outputs(body: dict[str, Any]) -> set[str] | None:
    """The outputs a create answer's gen_* flags announce; None when it has no flags."""
    flagged = [f for f in OUTPUTS.values() if any(isinstance(body.get(g), bool) for g in f.flags)]
    if not flagged:
        return None
    return {f.name for f in flagged if any(body.get(g) is True for g in f.flags)}


def status_word(body: dict[str, Any]) -> str:
    word = body.get("status")
    if not isinstance(word, str) or not word:
        raise RetryableProviderError(
            "klangio status: the answer has no status", provider_detail=body
        )
    return word


def our_status(word: str, klangio_id: str) -> OurStatus:
    status = STATUS_MAP.get(word)
    if status is None:
        log.warning("klangio job %s has an unknown status %r: still processing", klangio_id, word)
        return "processing"
    return status


def failure(word: str, body: dict[str, Any]) -> PermanentProviderError:
    """The job failed at Klangio: a code per word, with Klangio's reason when it gives one."""
    code, retryable = FAILURES.get(word, ("provider_failed", False))
    reason = next(
        (
            body[key].strip()[:500]
            for key in ("error", "error_description", "detail", "message")
            if isinstance(body.get(key), str) and body[key].strip()
        ),
        None,
    )
    message = f"klangio reported the job {word}"
    return PermanentProviderError(
        code,
        f"{message}: {reason}" if reason else message,
        provider_detail=body,
        retryable=retryable,
    )


def empty_transcript() -> Transcript:
    """Klangio returns notes, not words: the transcript holds nothing it did not say."""
    return Transcript(text="", language=None, duration=None, provider=VENDOR, segments=[])


def build_result(
    status_body: dict[str, Any],
    files: dict[str, tuple[str, bytes]],
    missing: list[str],
) -> ProviderResult:
    """``files``: output name -> (the path that answered, its bytes), in request order."""
    return ProviderResult(
        transcript=empty_transcript(),
        raw={
            "status": status_body,
            "outputs": {name: path for name, (path, _) in files.items()},
            "missing_outputs": missing,
        },
        artifacts=[
            Artifact(name, OUTPUTS[name].content_type, data) for name, (_, data) in files.items()
        ],
    )


def detail_text(body: Any) -> str | None:
    """A FastAPI-style ``{"detail": …}`` (a string, or a list of ``{loc, msg}``) as text."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail.strip()[:500] or None
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict) and isinstance(item.get("msg"), str):
                loc = item.get("loc")
                where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
                parts.append(f"{where}: {item['msg']}" if where else item["msg"])
        return "; ".join(parts)[:500] or None
    return None


def redact(value: Any, secret: str) -> Any:
    """``value`` with ``secret`` cut out of every string (a vendor may echo a header)."""
    if isinstance(value, str):
        return value.replace(secret, "[redacted]")
    if isinstance(value, dict):
        return {k: redact(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret) for v in value]
    return value


# --- the adapter -----------------------------------------------------------------


class KlangioProvider:
    name: ClassVar[str] = VENDOR
    capabilities: ClassVar[Capabilities] = klangio_capabilities()
    options_model: ClassVar[type[BaseModel]] = KlangioOptions
    needs_local_audio: ClassVar[bool] = True  # POST /transcription takes a file, not a URL

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str,
        base_url: str,
        *,
        grace_seconds: float | None = None,
        poll_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._key = api_key
        self._base = base_url.rstrip("/")
        # The module constants are read here, not bound as defaults, so a test can set them.
        self._grace = PARTIAL_GRACE_SECONDS if grace_seconds is None else grace_seconds
        self._partial_poll = PARTIAL_POLL_SECONDS if poll_seconds is None else poll_seconds
        self._partial_since = FirstSeen(clock=clock)  # klangio id -> first partial look

    async def submit(self, request: SubmitRequest) -> ProviderUpdate:
        check_language(request.language)
        if request.audio_path is None:
            raise PermanentProviderError("invalid_audio", "klangio needs the audio file itself")
        options = request.options
        if not isinstance(options, KlangioOptions):  # the worker validates with options_model
            raise TypeError(f"klangio options must be KlangioOptions, not {type(options)}")
        filename, content_type = upload_name_and_type(request)
        async with open_audio(request.audio_path) as audio:
            response = await self._call(
                "POST",
                f"{self._base}/transcription",
                "submit",
                params=transcription_params(options, request.callback_url),
                data=transcription_form(options),
                files={"file": (filename, audio, content_type)},
            )
        body = self._json(response, "submit")
        klangio_id = created_job_id(body)
        announced = announced_outputs(body)
        if announced is not None and (skipped := set(options.outputs) - announced):
            # The documents' own example announces less than it asks for: fetch all anyway.
            log.warning("klangio job %s announces no %s", klangio_id, ", ".join(sorted(skipped)))
        # The create answer carries no status word: None rather than a guess.
        return ProviderUpdate(status="processing", provider_job_id=klangio_id)

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        """The job's status at Klangio; once COMPLETED, the files of ``options.outputs``."""
        if not isinstance(options, KlangioOptions):  # the worker validates with options_model
            options = KlangioOptions()
        klangio_id = provider_job_id
        response = await self._call("GET", self._job_url(klangio_id, "status"), "status")
        body = self._json(response, "status")
        word = status_word(body)
        status = our_status(word, klangio_id)
        update = ProviderUpdate(
            status=status, provider_job_id=provider_job_id, provider_status=word
        )
        if status == "failed":
            return replace(update, error=failure(word, body))
        if status == "completed":
            outputs = [OUTPUTS[name] for name in options.outputs]
            result, wait = await self._results(klangio_id, outputs, body)
            if result is None:
                # Processing, not a retryable error, even with no file at all: each
                # retry would count against the task's attempts and Klangio's circuit
                # breaker, and a minute of retries opens the breaker (5 in a row by
                # default) for every job.
                return replace(update, status="processing", poll_after=wait)
            return replace(update, result=result)
        return update

    async def cancel(self, provider_job_id: str) -> None:
        # No cancel endpoint: the gateway cancels its own job and stops polling.
        return None

    async def _results(
        self, klangio_id: str, outputs: list[OutputFormat], status_body: dict[str, Any]
    ) -> tuple[ProviderResult | None, float]:
        """The files of ``outputs``, in that order; only those are downloaded.

        (None, seconds to the next look) while some or all are missing and the grace
        runs. Raises PermanentProviderError when the grace is over with none there:
        Klangio may not make an output it was asked for (gen_* false)."""
        files: dict[str, tuple[str, bytes]] = {}
        missing: list[str] = []
        for output in outputs:
            found = await self._download(klangio_id, output)
            if found is None:
                missing.append(output.name)
            else:
                files[output.name] = found
        if not missing:
            self._partial_since.forget(klangio_id)
            return build_result(status_body, files, missing), 0.0
        # Not forgotten once the grace is over: a second fetch of the job (its result
        # failed to be stored) then completes at once instead of waiting again.
        waited = self._partial_since.waited(klangio_id)
        if waited < self._grace:
            log.info(
                "klangio job %s is COMPLETED without %s yet: looking again",
                klangio_id,
                ", ".join(missing),
            )
            # The last look comes as the grace ends, not up to an interval after it.
            return None, min(self._partial_poll, self._grace - waited)
        if not files:
            # The job's own fault, as asked: the same request would get nothing again.
            self._partial_since.forget(klangio_id)
            raise PermanentProviderError(
                "provider_failed",
                f"klangio completed the job but made none of the outputs asked for"
                f" ({', '.join(missing)}) after {waited:.0f} s; ask for other outputs",
                provider_detail=status_body,
            )
        log.warning(
            "klangio job %s has no %s after %.0f s: completed without",
            klangio_id,
            ", ".join(missing),
            waited,
        )
        return build_result(status_body, files, missing), 0.0

    async def _download(self, klangio_id: str, output: OutputFormat) -> tuple[str, bytes] | None:
        """(the path that answered, the file), or None when no path has it."""
        for path in output.paths:
            try:
                response = await self._call(
                    "GET", self._job_url(klangio_id, path), f"result {path}"
                )
            except PermanentProviderError as exc:
                detail = exc.provider_detail
                if isinstance(detail, dict) and detail.get("status_code") in _NOT_THERE:
                    continue
                raise
            if not response.content:  # not written yet: as missing, so the grace applies
                continue
            return path, response.content
        return None

    def _job_url(self, klangio_id: str, tail: str) -> str:
        # quote(): a job id is data, it must not step out of /job/{id}/.
        return f"{self._base}/job/{quote(klangio_id, safe='')}/{tail}"

    async def _call(self, method: str, url: str, operation: str, **kwargs: Any) -> httpx.Response:
        """One call with the key; errors carry Klangio's ``detail`` in words, never the key."""
        try:
            return await send(
                self._http,
                method,
                url,
                vendor=VENDOR,
                operation=operation,
                headers={AUTH_HEADER: self._key},
                **kwargs,
            )
        except ProviderError as exc:
            raise self._clean(exc) from None

    def _json(self, response: httpx.Response, operation: str) -> dict[str, Any]:
        try:
            return json_object(response, vendor=VENDOR, operation=operation)
        except ProviderError as exc:
            raise self._clean(exc) from None

    def _clean(self, exc: ProviderError) -> ProviderError:
        detail = exc.provider_detail
        body = detail.get("body") if isinstance(detail, dict) else None
        said = detail_text(body)
        message = f"{exc.message}: {said}" if said else exc.message
        if len(self._key) >= 8:  # a shorter "key" would mangle ordinary words
            message, detail = redact(message, self._key), redact(detail, self._key)
        if isinstance(exc, RetryableProviderError):
            return RetryableProviderError(
                message, retry_after=exc.retry_after, provider_detail=detail
            )
        if isinstance(exc, PermanentProviderError):
            return PermanentProviderError(
                exc.code, message, provider_detail=detail, retryable=exc.retryable
            )
        return exc


def build(settings: Settings, http: httpx.AsyncClient) -> KlangioProvider:
    if settings.klangio_api_key is None:
        raise ValueError("KLANGIO_API_KEY is not set")
    return KlangioProvider(
        http, settings.klangio_api_key.get_secret_value(), settings.klangio_base_url
    )
