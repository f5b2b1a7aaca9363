"""The bytes decide what an upload is: the job shows, and the vendor is told, the
sniffed media type, whatever name and Content-Type the client sent."""

from __future__ import annotations

from tests.conftest import SPEECH_WAV
from tests.fakes.phonexia import FakePhonexia
from tests.providers import helpers
from tests.providers.helpers import Start
from tests.support.vendor import wait_for_job

fake = helpers.fake_vendor_fixture(FakePhonexia)


def test_a_wav_sent_as_mp3_is_stored_and_sent_as_audio_wav(
    vendor_gateway: Start, fake: FakePhonexia
) -> None:
    gateway, key = vendor_gateway(PHONEXIA_BASE_URL=fake.base_url)
    with gateway.client(key) as client, SPEECH_WAV.open("rb") as audio:
        created = client.post(
            "/jobs",
            files={"file": ("take.mp3", audio, "audio/mpeg")},
            data={"provider": "phonexia", "language": "en"},
        )
        assert created.status_code == 202, created.text
        assert created.json()["source"]["content_type"] == "audio/wav"
        assert created.json()["source"]["filename"] == "take.mp3"
        job = wait_for_job(client, created.json()["id"])
    assert job["status"] == "completed", job
    [submit] = fake.calls("submit")
    assert b"Content-Type: audio/wav" in submit.body
    assert b"audio/mpeg" not in submit.body
