import asyncio
import multiprocessing
import shutil
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from app.audio.convert import ffmpeg_available
from app.providers.base import (
    AudioFormat,
    NoOptions,
    PermanentProviderError,
    RetryableProviderError,
    SubmitRequest,
)
from app.providers.local import (
    LocalProvider,
    RawSegment,
    Recognition,
    build_transcript,
    local_capabilities,
)
from app.transcripts import Transcript
from tests.providers.helpers import submit_request_for

DATA = Path(__file__).parents[1] / "data"
MONO = DATA / "hello-16k-mono.wav"
STEREO = DATA / "hello-44k-stereo.wav"


def request(
    path: Path | None,
    fmt: AudioFormat | None = "wav",
    language: str | None = None,
    job_id: str = "job-1",
) -> SubmitRequest:
    # No upload name or type: the local adapter goes by the file and its format alone.
    return submit_request_for(
        path, job_id=job_id, audio_format=fmt, filename=None, content_type=None, language=language
    )


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    # One pool for the module: each worker process takes a second or so to start.
    local = LocalProvider(processes=2)
    yield local
    local.close()


@pytest.mark.parametrize(("path", "frames"), [(MONO, 51728), (STEREO, 142576)])
async def test_transcribes_the_committed_speech(
    provider: LocalProvider, path: Path, frames: int
) -> None:
    update = await provider.submit(request(path, job_id="job-7"))

    assert update.status == "completed"
    assert update.provider_job_id == "job-7"
    assert update.result is not None
    transcript = update.result.transcript
    assert transcript.provider == "local"
    assert transcript.language == "en"
    assert transcript.duration == pytest.approx(
        frames / (16000 if path == MONO else 44100), abs=0.01
    )

    words = [word for segment in transcript.segments for word in segment.words]
    texts = [word.text for word in words]
    assert {"hello", "world"} <= set(texts)
    assert transcript.text == " ".join(texts)
    assert not any(text.startswith(("<", "[")) or "(" in text for text in texts)
    times = [t for word in words for t in (word.start, word.end) if t is not None]
    assert len(times) == 2 * len(words)
    assert times == sorted(times)
    assert transcript.duration is not None
    assert times[0] >= 0 and times[-1] <= transcript.duration
    assert all(word.confidence is not None and 0 <= word.confidence <= 1 for word in words)

    raw = update.result.raw
    assert raw["engine"] == "pocketsphinx"
    assert "hello" in raw["hypothesis"]
    assert {"<s>", "hello"} <= {segment["word"] for segment in raw["segments"]}


async def test_the_same_audio_gives_the_same_transcript_every_time(
    provider: LocalProvider,
) -> None:
    # Two engine processes, several clips each: the engine's own dither drew from
    # one random stream per process, and the words and times moved between runs.
    results = []
    for n in range(6):
        update = await provider.submit(request(MONO, job_id=f"job-{n}"))
        assert update.result is not None
        results.append(update.result.transcript)
    assert results[0].text == "hello world it is a used"  # the README's first transcription

    def words(transcript: Transcript) -> list[tuple[str, float | None, float | None]]:
        return [(w.text, w.start, w.end) for s in transcript.segments for w in s.words]

    # The words and their times are the same; a confidence moves in its fourth
    # decimal with what the engine process decoded before.
    assert all(words(t) == words(results[0]) for t in results[1:]), {t.text for t in results}
    for t in results[1:]:
        for ours, first in zip(t.segments, results[0].segments, strict=True):
            for word, before in zip(ours.words, first.words, strict=True):
                assert word.confidence == pytest.approx(before.confidence, abs=0.01)


async def test_a_clip_too_short_for_a_frame_is_an_empty_transcript(
    provider: LocalProvider, tmp_path: Path
) -> None:
    short = tmp_path / "short.wav"
    with wave.open(str(short), "wb") as out:  # 400 samples: 25 ms
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x01\x00" * 400)
    update = await provider.submit(request(short))
    assert update.status == "completed" and update.result is not None
    assert update.result.transcript.text == "" and update.result.transcript.segments == []


async def test_the_event_loop_runs_during_recognition(provider: LocalProvider) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await provider.submit(request(STEREO))
    finally:
        task.cancel()
    # Recognising 3 s of speech takes well over 0.1 s; a blocked loop would tick once.
    assert ticks >= 10


async def test_sniffs_the_format_when_the_gateway_did_not(provider: LocalProvider) -> None:
    update = await provider.submit(request(MONO, fmt=None))
    assert update.result is not None
    assert "hello" in update.result.transcript.text


async def test_corrupt_audio_is_a_permanent_error(provider: LocalProvider, tmp_path: Path) -> None:
    header_only = tmp_path / "cut.wav"
    header_only.write_bytes(MONO.read_bytes()[:44])

    with pytest.raises(PermanentProviderError) as caught:
        await provider.submit(request(header_only))
    assert caught.value.code == "invalid_audio"
    assert "no audio samples" in caught.value.message

    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    with pytest.raises(PermanentProviderError, match="not audio in a format") as caught:
        await provider.submit(request(text, fmt=None))
    assert caught.value.code == "invalid_audio"


@pytest.mark.skipif(ffmpeg_available(), reason="needs a machine without ffmpeg")
async def test_mp3_without_ffmpeg_is_a_permanent_error(
    provider: LocalProvider, tmp_path: Path
) -> None:
    mp3 = tmp_path / "in.mp3"
    mp3.write_bytes(b"ID3\x04" + bytes(100))

    with pytest.raises(PermanentProviderError, match="ffmpeg") as caught:
        await provider.submit(request(mp3, fmt="mp3"))
    assert caught.value.code == "invalid_audio"


@pytest.mark.parametrize("language", ["de", "fr-FR", "english", "es_US"])
async def test_refuses_other_languages(language: str) -> None:
    local = LocalProvider()
    with pytest.raises(PermanentProviderError) as caught:
        await local.submit(request(MONO, language=language))
    assert caught.value.code == "unsupported_language"
    assert not local._engines.started  # refused before any process was started


@pytest.mark.parametrize("language", ["en", "en-US", "en-GB", "EN", "en_AU"])
async def test_accepts_english_variants(provider: LocalProvider, language: str) -> None:
    update = await provider.submit(request(MONO, language=language))
    assert update.status == "completed"


async def test_missing_audio_is_a_permanent_error() -> None:
    with pytest.raises(PermanentProviderError) as caught:
        await LocalProvider().submit(request(None))
    assert caught.value.code == "invalid_audio"


async def test_a_dead_worker_is_retryable_and_the_pool_is_rebuilt() -> None:
    local = LocalProvider()
    try:
        before = set(multiprocessing.active_children())
        await local.submit(request(MONO))
        for worker in set(multiprocessing.active_children()) - before:
            worker.kill()
            worker.join()

        with pytest.raises(RetryableProviderError):
            await local.submit(request(MONO))
        update = await local.submit(request(MONO))
        assert update.status == "completed"
    finally:
        local.close()


# A gateway that starts its engine, says which process the engine runs in (at
# once, or once the engine is up), and waits to be killed.
_GATEWAY_WITH_ENGINE = """
import os, sys, time
from app.providers.local import start_engine
pool = start_engine().pool
started = pool.submit(os.getpid)
if sys.argv[1] == "starting":
    print(*pool._processes, flush=True)
else:
    print(started.result(timeout=120), flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's new parent may not reap it at once)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("engine_is", ["starting", "idle"])
def test_an_engine_process_leaves_when_its_gateway_is_killed(engine_is: str) -> None:
    # Killed while its engine was still starting, a gateway used to leave the
    # engine's process waiting for work forever (seen after kill -9 tests).
    gateway = subprocess.Popen(
        [sys.executable, "-c", _GATEWAY_WITH_ENGINE, engine_is],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
    )
    try:
        assert gateway.stdout is not None
        engine = int(gateway.stdout.readline())
        assert _running(engine)
    finally:
        gateway.kill()
        gateway.wait()
    deadline = time.monotonic() + 20
    while _running(engine) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(engine), "the engine process outlived its gateway"


async def test_fetch_is_not_supported_and_cancel_of_an_unknown_job_is_a_no_op() -> None:
    local = LocalProvider()
    with pytest.raises(PermanentProviderError) as caught:
        await local.fetch("job-1", NoOptions())
    assert caught.value.code == "not_supported"
    await local.cancel("job-1")  # not running here: nothing to do, and nothing raised
    assert not local._engines.started


def test_options_refuse_anything() -> None:
    assert LocalProvider.options_model.model_validate({}) is not None
    with pytest.raises(pydantic.ValidationError):
        LocalProvider.options_model.model_validate({"model": "large"})


def test_capabilities_follow_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    without = local_capabilities()
    assert without.formats == ("wav",)
    assert without.word_timestamps and without.upload and without.source_url
    assert without.languages == ("en",)
    assert without.cancel  # a canceled job's recognition is stopped

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    with_ffmpeg = local_capabilities()
    assert set(with_ffmpeg.formats) == {"wav", "mp3", "flac", "ogg", "webm", "mp4", "aiff", "amr"}

    monkeypatch.undo()
    assert LocalProvider.capabilities == (with_ffmpeg if ffmpeg_available() else without)
    assert "ffmpeg" in LocalProvider.unsupported_format_hint


def test_builds_words_and_pause_separated_segments() -> None:
    def seg(word: str, start: int, end: int, prob: float = 0.5) -> RawSegment:
        return RawSegment(word=word, start_frame=start, end_frame=end, prob=prob)

    recognition = Recognition(
        hypothesis="hello world turn on",
        frate=100,
        samples=16000 * 3,
        segments=[
            seg("<s>", 0, 9, 1.0002),
            seg("hello", 10, 49, 1.0003),  # posteriors can round above 1
            seg("<sil>", 50, 59),
            seg("world", 60, 99),
            seg("[NOISE]", 100, 169),  # 0.7 s without words: a new segment
            seg("turn", 170, 199, -0.1),
            seg("on(2)", 200, 219),
            seg("</s>", 220, 299),
        ],
    )

    transcript = build_transcript(recognition)

    assert transcript.text == "hello world turn on"
    assert transcript.duration == 3.0
    first, second = transcript.segments
    assert (first.start, first.end, first.text) == (0.1, 1.0, "hello world")
    assert (second.start, second.end, second.text) == (1.7, 2.2, "turn on")
    assert [(w.text, w.start, w.end, w.confidence) for w in second.words] == [
        ("turn", 1.7, 2.0, 0.0),
        ("on", 2.0, 2.2, 0.5),
    ]
    assert first.words[0].confidence == 1.0
    assert first.channel is None and first.speaker is None
