"""Offline English recognition with pocketsphinx, for development and air-gapped use.

Recognition is CPU-bound and holds the GIL, so it runs in worker processes;
each keeps one loaded decoder for its whole life, as loading the model takes
longer than recognising a short clip. A job given up on (canceled, deleted,
past its deadline) has its process killed and replaced (``local_engines``).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypedDict

import httpx
import numpy as np
from pydantic import BaseModel

from app.audio.convert import UnsupportedAudio, decode_to_pcm16_mono, ffmpeg_available
from app.audio.sniff import SNIFF_BYTES, sniff_format
from app.config import Settings
from app.providers.base import (
    AudioFormat,
    Capabilities,
    NoOptions,
    PermanentProviderError,
    ProviderResult,
    ProviderUpdate,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.local_engines import Engine, EnginePool, EngineStopped
from app.transcripts import Segment, Transcript, Word

SAMPLE_RATE = 16000  # what the bundled acoustic model was trained on
SEGMENT_GAP = 0.5  # seconds of silence that start a new segment

_FILLER = re.compile(r"<.*>|\[.*\]|\+\+.*\+\+")  # <s>, </s>, <sil>, [NOISE], ++BREATH++
_VARIANT = re.compile(r"\(\d+\)$")  # the dictionary's alternative pronunciations: on(2)


def local_capabilities() -> Capabilities:
    formats: tuple[AudioFormat, ...] = ("wav",)
    if ffmpeg_available():
        formats += ("mp3", "flac", "ogg", "webm", "mp4", "aiff", "amr")
    return Capabilities(
        formats=formats,
        source_url=True,
        upload=True,
        word_timestamps=True,
        synchronous=True,
        cancel=True,  # the engine's work on a canceled job is stopped
        languages=("en",),
    )


class RawSegment(TypedDict):
    word: str
    start_frame: int
    end_frame: int
    prob: float


@dataclass(frozen=True)
class Recognition:
    """What a worker process sends back: plain data, cheap to pickle."""

    hypothesis: str
    frate: int  # frames per second of the frame numbers in segments
    samples: int  # at SAMPLE_RATE
    segments: list[RawSegment]


class LocalProvider:
    name: ClassVar[str] = "local"
    needs_local_audio: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel]] = NoOptions
    # Running it again costs nothing: a submit cut off by a crash is simply redone.
    resubmit_is_free: ClassVar[bool] = True
    # The engine runs in the gateway: the submit step cancels a submit whose job
    # is canceled or deleted meanwhile, which stops the engine's work on it.
    stop_when_job_ends: ClassVar[bool] = True
    # The protocol wants a class variable, so ffmpeg is looked for once, at import.
    capabilities: ClassVar[Capabilities] = local_capabilities()
    unsupported_format_hint: ClassVar[str] = (
        "The local provider decodes WAV itself; MP3, FLAC, Ogg, WebM, MP4, AIFF and AMR "
        "need ffmpeg on the gateway's PATH."
    )

    def __init__(self, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._engines = EnginePool(processes, start_engine)

    def close(self) -> None:
        self._engines.close()

    async def submit(self, request: SubmitRequest) -> ProviderUpdate:
        _check_language(request.language)
        if request.audio_path is None:
            raise PermanentProviderError(
                "invalid_audio", "the local provider needs the audio itself, not only a link"
            )
        try:
            # Canceled (the job was canceled or deleted, or ran past its deadline),
            # this stops the engine's work rather than let it hold the process.
            recognition = await self._engines.run(
                request.job_id, _recognise, request.audio_path, request.audio_format
            )
        except UnsupportedAudio as exc:
            raise PermanentProviderError("invalid_audio", str(exc)) from exc
        except FileNotFoundError:
            # Deleted with its job while it waited for the engine (or lost from storage).
            raise PermanentProviderError(
                "audio_missing", "the job's audio is no longer stored"
            ) from None
        except EngineStopped:
            raise PermanentProviderError(
                "canceled", "the job was canceled while the local engine worked on it"
            ) from None
        except BrokenProcessPool as exc:
            # The engine died (killed, out of memory); another has taken its place.
            raise RetryableProviderError("the local recognizer process died") from exc
        return ProviderUpdate(
            status="completed",
            provider_job_id=request.job_id,
            provider_status="done",
            result=ProviderResult(
                transcript=build_transcript(recognition),
                raw={
                    "engine": "pocketsphinx",
                    "hypothesis": recognition.hypothesis,
                    "segments": recognition.segments,
                },
            ),
        )

    async def fetch(self, provider_job_id: str, options: BaseModel) -> ProviderUpdate:
        raise PermanentProviderError(
            "not_supported", "local jobs finish inside submit; there is nothing to fetch"
        )

    async def cancel(self, provider_job_id: str) -> None:
        """Stop the engine working on the job, if this process runs it (the job id is
        its provider_job_id). The submit step also stops it, in whichever process
        runs it, as soon as it sees the job canceled or deleted."""
        self._engines.stop(provider_job_id)


def _check_language(language: str | None) -> None:
    if language is None:
        return
    if language.replace("_", "-").split("-")[0].lower() != "en":
        raise PermanentProviderError(
            "unsupported_language",
            f"the local provider only recognises English (en), not {language!r}",
        )


def build_transcript(recognition: Recognition) -> Transcript:
    """Turn pocketsphinx's segments into words and pause-separated segments."""
    duration = round(recognition.samples / SAMPLE_RATE, 3)
    groups: list[list[Word]] = []
    last_end = -math.inf
    for seg in recognition.segments:
        if _FILLER.fullmatch(seg["word"]):
            continue
        # end_frame is the word's last frame, so the word ends one frame later.
        start = min(round(seg["start_frame"] / recognition.frate, 3), duration)
        end = min(round((seg["end_frame"] + 1) / recognition.frate, 3), duration)
        if start - last_end > SEGMENT_GAP:  # always true for the first word
            groups.append([])
        text = _VARIANT.sub("", seg["word"])
        confidence = min(max(seg["prob"], 0.0), 1.0)
        groups[-1].append(Word(start=start, end=end, text=text, confidence=confidence))
        last_end = end

    return Transcript(
        text=" ".join(word.text for group in groups for word in group),
        language="en",
        duration=duration,
        provider=LocalProvider.name,
        segments=[
            Segment(
                start=group[0].start,
                end=group[-1].end,
                text=" ".join(word.text for word in group),
                words=group,
            )
            for group in groups
        ],
    )


# --- in the worker processes ---

_decoder: Any = None  # this process's pocketsphinx.Decoder
PARENT_CHECK_SECONDS = 1.0


def start_engine() -> Engine:
    """An engine process, started now (its pool's one worker)."""
    return Engine(_init_worker, (os.getpid(),))


def _exit_with_parent(parent: int) -> None:
    """A worker outliving its gateway (killed with -9, or a process that exited
    before the pool's shutdown reached it) would wait for tasks forever: it
    holds both ends of the pool's task pipe itself, so no end-of-file comes.
    Once the parent is gone (this process is re-parented), it leaves; also
    when the parent died while this process was still starting."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _init_worker(parent: int) -> None:
    global _decoder
    threading.Thread(
        target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True
    ).start()
    # Imported here so only the worker processes load the model.
    from pocketsphinx import Decoder

    # The same audio gives the same words whatever the process decoded before:
    # no dither of the engine's (it draws from one random stream for the process's
    # life: "a used", then "a youth"; _dithered adds the same noise to each clip),
    # and the cepstral mean of each clip itself ("batch"), not one carried over
    # from the clips before ("live").
    _decoder = Decoder(samprate=SAMPLE_RATE, dither=False, cmn="batch")


def _dithered(pcm: bytes) -> bytes:
    """``pcm`` (16-bit mono) with -1, 0 or +1 added to each sample, the same for
    the same audio. Stretches of digital silence (exact or near zeros, as
    synthesised or resampled audio has) give log-energy features of minus
    infinity, which can derail the whole utterance."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    noise = np.random.default_rng(0).integers(-1, 2, size=samples.size, dtype=np.int32)
    return np.clip(samples + noise, -32768, 32767).astype("<i2").tobytes()


def _recognise(path: Path, fmt: AudioFormat | None) -> Recognition:
    if fmt is None:
        with path.open("rb") as f:
            fmt = sniff_format(f.read(SNIFF_BYTES))
        if fmt is None:
            raise UnsupportedAudio("the file is not audio in a format the gateway recognises")
    pcm = _dithered(decode_to_pcm16_mono(path, fmt, SAMPLE_RATE))
    _decoder.start_utt()
    _decoder.process_raw(pcm, full_utt=True)
    _decoder.end_utt()
    hypothesis = _decoder.hyp()
    return Recognition(
        hypothesis=hypothesis.hypstr if hypothesis is not None else "",
        frate=int(_decoder.config["frate"]),
        samples=len(pcm) // 2,
        segments=[
            RawSegment(word=s.word, start_frame=s.start_frame, end_frame=s.end_frame, prob=s.prob)
            # None, not an empty list, when the clip is too short for one frame
            for s in _decoder.seg() or ()
        ],
    )


def build(settings: Settings, _http: httpx.AsyncClient) -> LocalProvider:
    """The registry's factory: the engine needs no HTTP client."""
    return LocalProvider(processes=settings.local_engine_processes)
