"""What every provider adapter is, and what it exchanges with the worker.

The worker owns the database and the HTTP client; an adapter only turns our
request into the vendor's and the vendor's answers into these types.

Errors an adapter raises::

    ProviderError
    ├── RetryableProviderError   timeouts, 5xx, 429: try again later (honour retry_after)
    └── PermanentProviderError   the vendor refused this input: the job fails
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from app.transcripts import Transcript

AudioFormat = Literal["wav", "mp3", "flac", "ogg", "webm", "mp4", "aiff", "amr"]


class ProviderError(Exception):
    """Base of the errors an adapter raises; ``message`` never holds a secret."""

    def __init__(self, message: str, *, provider_detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider_detail = provider_detail


class RetryableProviderError(ProviderError):
    def __init__(
        self, message: str, *, retry_after: float | None = None, provider_detail: Any = None
    ) -> None:
        super().__init__(message, provider_detail=provider_detail)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """The job fails. ``retryable``: the same request may succeed if the client
    sends it again (the vendor's own failure, not a refusal of the input)."""

    def __init__(
        self, code: str, message: str, *, provider_detail: Any = None, retryable: bool = False
    ) -> None:
        super().__init__(message, provider_detail=provider_detail)
        self.code = code
        self.retryable = retryable


class RefusedRequest(PermanentProviderError):
    """A job the vendor's rules refuse as asked, whatever the audio: ``field`` names
    the request field at fault, for the 422 when it is found at creation."""

    def __init__(self, code: str, message: str, *, field: str) -> None:
        super().__init__(code, message)
        self.field = field


class NoOptions(BaseModel):
    """For providers that take no options of their own: anything given is a 422."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, shown by ``GET /providers``."""

    formats: tuple[AudioFormat, ...]
    source_url: bool = True
    upload: bool = True  # False: the vendor fetches by URL only (uploads get a media link)
    callbacks: bool = False
    cancel: bool = False
    synchronous: bool = False  # the result comes back from submit itself (no polling)
    word_timestamps: bool = False
    diarization: bool = False
    # The language tags the vendor takes, as BCP-47 primary subtags ("en", "ko") or
    # full tags ("en-US"); a job asking for another is a 422 at creation.
    # None: open-ended (the vendor decides); (): the vendor takes no language.
    languages: tuple[str, ...] | None = None
    # The largest upload the vendor documents taking, in bytes; a larger one is a 413
    # at creation. None: the gateway's own MAX_UPLOAD_BYTES is the only limit.
    max_upload_bytes: int | None = None
    # The longest audio the vendor documents taking, in seconds; an upload known to
    # be longer (a WAV says how long it is) is a 413 at creation. None: no limit.
    max_duration_seconds: int | None = None


@dataclass(frozen=True)
class SubmitRequest:
    job_id: str
    audio_path: Path | None  # the stored upload (or downloaded source), when there is one
    audio_format: AudioFormat | None
    filename: str | None
    content_type: str | None
    source_url: str | None
    language: str | None
    options: BaseModel
    callback_url: str | None = None  # where the vendor may notify us, when PUBLIC_BASE_URL is set
    media_url: str | None = None  # a signed link to the upload, for URL-only vendors


@dataclass(frozen=True)
class Artifact:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ProviderResult:
    transcript: Transcript
    raw: Any = None  # the vendor's own payload, kept beside the transcript
    artifacts: list[Artifact] = field(default_factory=list)


@dataclass(frozen=True)
class ProviderUpdate:
    """The vendor's view of a job, from a submit or a status fetch.

    ``status`` is ours: ``processing`` (keep polling), ``completed`` (``result``
    is set) or ``failed`` (``error`` is set).
    """

    status: Literal["processing", "completed", "failed"]
    provider_job_id: str | None = None
    provider_status: str | None = None
    result: ProviderResult | None = None
    error: PermanentProviderError | None = None
    poll_after: float | None = None  # the vendor's hint, in seconds


class Provider(Protocol):
    """One vendor adapter. Stateless but for its settings and HTTP client."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    options_model: ClassVar[type[BaseModel]]
    needs_local_audio: ClassVar[bool]  # True: a source_url is downloaded before submit
    # Optional (read with getattr, default False): True when sending a submit
    # twice costs nothing, so the submit ledger can be skipped.
    # resubmit_is_free: ClassVar[bool]
    # Optional (read with getattr): a rule the vendor's request has beyond what
    # options_model and capabilities say, checked when the job is created (a 422)
    # as well as at submit. Raises RefusedRequest.
    # def check_job(self, language: str | None, options: BaseModel) -> None: ...
    # Optional (read with getattr): why the vendor cannot take an upload of format
    # ``fmt`` whose first bytes are ``head``, when those bytes already show it (a 415
    # at creation); None when they do not. Submit checks the whole file again.
    # def refuses_upload(self, fmt: AudioFormat, head: bytes) -> str | None: ...
    # Optional, for a synchronous provider that uploads the file (the OpenAI route
    # checks for all three, ``app.openai_compat.early_start.UploadsEarly``): start the
    # upload of a job while the client's arrives; its submit sends the last bytes.
    # def start_early(self, request: SubmitRequest, file_bytes: int) -> EarlyUpload: ...
    # def drop_early(self, job_id: str) -> None: ...
    # early_uploads: int  (a property: how many are under way)

    async def submit(self, request: SubmitRequest) -> ProviderUpdate: ...

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        """options: the job's options, validated by options_model (what was asked at submit)."""
        ...

    async def cancel(self, provider_job_id: str) -> None: ...
