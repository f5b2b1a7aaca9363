"""A real gateway on loopback transcribes real speech with the offline engine."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SPEECH_WAV, SPEECH_WAV_STEREO
from tests.support.gateway import create_key
from tests.support.static_server import StaticServer


def _upload(client, path, **fields):  # type: ignore[no-untyped-def]
    with path.open("rb") as audio:
        return client.post("/jobs", files={"file": (path.name, audio, "audio/wav")}, data=fields)


@pytest.mark.parametrize("speech", [SPEECH_WAV, SPEECH_WAV_STEREO], ids=["16k-mono", "44k-stereo"])
def test_upload_is_transcribed_with_word_timings(
    database_url, make_settings, start_gateway, speech
):
    gateway = start_gateway(make_settings(database_url))
    key = create_key(database_url, "acme")
    with gateway.client(key) as client:
        created = _upload(client, speech, language="en", metadata='{"order": 7}')
        assert created.status_code == 202, created.text
        job = created.json()
        assert created.headers["location"] == f"/jobs/{job['id']}"
        assert job["status"] == "queued"
        assert job["source"]["size"] == speech.stat().st_size
        assert job["metadata"] == {"order": 7}

        done = client.get(f"/jobs/{job['id']}", params={"wait": 60}).json()
        assert done["status"] == "completed", done
        assert done["completed_at"] is not None

        transcript = client.get(f"/jobs/{job['id']}/transcript").json()
        words = [w for seg in transcript["segments"] for w in seg["words"]]
        spoken = {w["text"] for w in words}
        assert {"hello", "world"} <= spoken, transcript["text"]
        assert transcript["provider"] == "local"
        assert 2.0 < transcript["duration"] < 4.0
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and starts[0] >= 0
        assert all(w["end"] >= w["start"] for w in words)

        text = client.get(f"/jobs/{job['id']}/transcript", params={"format": "text"})
        assert text.headers["content-type"].startswith("text/plain")
        assert "hello world" in text.text

        srt = client.get(f"/jobs/{job['id']}/transcript", params={"format": "srt"}).text
        assert re.match(r"1\n00:00:0\d,\d{3} --> 00:00:0\d,\d{3}\n.*hello", srt)

        vtt = client.get(f"/jobs/{job['id']}/transcript", params={"format": "vtt"}).text
        assert vtt.startswith("WEBVTT\n\n") and "hello" in vtt


def test_job_from_source_url_is_fetched_and_transcribed(postgres_url, make_settings, start_gateway):
    audio_server = StaticServer(SPEECH_WAV.read_bytes())
    try:
        gateway = start_gateway(make_settings(postgres_url))
        key = create_key(postgres_url, "acme")
        with gateway.client(key) as client:
            created = client.post(
                "/jobs", json={"source_url": audio_server.url, "provider": "local"}
            )
            assert created.status_code == 202, created.text
            assert created.json()["source"] == {"type": "url", "url": audio_server.url}
            done = client.get(f"/jobs/{created.json()['id']}", params={"wait": 60}).json()
            assert done["status"] == "completed", done
            text = client.get(f"/jobs/{done['id']}/transcript", params={"format": "text"}).text
            assert "hello" in text
            assert audio_server.requests == 1
    finally:
        audio_server.close()


def test_source_url_that_is_not_audio_fails_the_job(postgres_url, make_settings, start_gateway):
    html = StaticServer(b"<html><body>not audio</body></html>", content_type="text/html")
    try:
        gateway = start_gateway(make_settings(postgres_url))
        key = create_key(postgres_url, "acme")
        with gateway.client(key) as client:
            created = client.post("/jobs", json={"source_url": html.url})
            done = client.get(f"/jobs/{created.json()['id']}", params={"wait": 30}).json()
            assert done["status"] == "failed"
            assert done["error"]["code"] == "unsupported_media"
            assert "not audio" in done["error"]["message"]
    finally:
        html.close()
