"""An in-memory provider whose answers a test scripts: worker paths without a vendor."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from app.config import Settings
from app.providers.base import (
    Capabilities,
    NoOptions,
    ProviderResult,
    ProviderUpdate,
    SubmitRequest,
)
from app.transcripts import Segment, Transcript, Word


class ScriptedProvider:
    name: ClassVar[str] = "scripted"
    capabilities: ClassVar[Capabilities] = Capabilities(
        formats=("wav",), callbacks=True, cancel=True, word_timestamps=True
    )
    options_model = NoOptions
    needs_local_audio: ClassVar[bool] = False

    # What the next calls answer (an update, or an exception to raise), and what was asked.
    submits: ClassVar[deque[Any]] = deque()
    fetches: ClassVar[deque[Any]] = deque()
    calls: ClassVar[list[tuple[str, Any]]] = []
    fetched_at: ClassVar[list[float]] = []  # time.monotonic() of each fetch
    # A vendor quicker than our writes: the operations ("submit", "fetch") whose
    # first call POSTs the job's callback link, and waits for the gateway's
    # answer (kept in ``callback_answers``), before answering itself.
    calls_back_during: ClassVar[set[str]] = set()
    callback_answers: ClassVar[list[int]] = []
    callback_link: ClassVar[str | None] = None

    @classmethod
    def reset(cls) -> None:
        cls.submits.clear()
        cls.fetches.clear()
        cls.calls.clear()
        cls.fetched_at.clear()
        cls.calls_back_during.clear()
        cls.callback_answers.clear()
        cls.callback_link = None

    async def submit(self, request: SubmitRequest) -> ProviderUpdate:
        self.calls.append(("submit", request))
        ScriptedProvider.callback_link = request.callback_url
        await self._call_back_during("submit")
        return _answer(self.submits, ProviderUpdate("processing", "v1", "running"))

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        self.calls.append(("fetch", provider_job_id))
        self.fetched_at.append(time.monotonic())
        await self._call_back_during("fetch")
        return _answer(self.fetches, ProviderUpdate("processing", provider_job_id, "running"))

    async def _call_back_during(self, operation: str) -> None:
        if operation not in self.calls_back_during:
            return
        self.calls_back_during.discard(operation)
        assert self.callback_link is not None, "the gateway gave no callback link"
        async with httpx.AsyncClient() as client:
            answer = await client.post(self.callback_link, json={"status": "done"})
        self.callback_answers.append(answer.status_code)

    async def cancel(self, provider_job_id: str) -> None:
        self.calls.append(("cancel", provider_job_id))


def _answer(script: deque[Any], default: ProviderUpdate) -> ProviderUpdate:
    answer = script.popleft() if script else default
    if isinstance(answer, Exception):
        raise answer
    assert isinstance(answer, ProviderUpdate)
    return answer


def completed(text: str = "hello world") -> ProviderUpdate:
    words = [Word(start=0.0, end=0.5, text="hello"), Word(start=0.6, end=1.0, text="world")]
    transcript = Transcript(
        text=text,
        provider="scripted",
        segments=[Segment(start=0.0, end=1.0, text=text, words=words)],
    )
    return ProviderUpdate("completed", "v1", "done", ProviderResult(transcript, raw={"text": text}))


def build(_settings: Settings, _http: httpx.AsyncClient) -> ScriptedProvider:
    return ScriptedProvider()
