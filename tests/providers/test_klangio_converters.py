"""The Klangio adapter's pure functions on the documents' payloads: statuses, options, results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from app.config import Settings
from app.providers.base import PermanentProviderError
from app.providers.klangio import (
    STATUS_MAP,
    KlangioProvider,
    announced_outputs,
    build,
    build_result,
    check_language,
    detail_text,
    empty_transcript,
    failure,
    redact,
    upload_name_and_type,
)
from app.providers.klangio_options import (
    OUTPUTS,
    KlangioOptions,
    transcription_form,
    transcription_params,
)
from tests.providers.helpers import PAYLOADS
from tests.providers.klangio_support import KEY, payload, submit_request


@pytest.mark.parametrize(
    ("word", "ours"),
    [
        ("IN_QUEUE", "processing"),
        ("IN_PROGRESS", "processing"),
        ("COMPLETED", "completed"),
        ("FAILED", "failed"),
        ("CANCELLED", "failed"),
        ("TIMED_OUT", "failed"),
    ],
)
def test_every_status_word_maps(word: str, ours: str) -> None:
    assert STATUS_MAP.get(word) == ours


def test_the_status_payloads_use_known_words() -> None:
    for path in (PAYLOADS / "klangio").glob("status_*.json"):
        assert json.loads(path.read_text())["status"] in STATUS_MAP, path.name


def test_options_defaults_and_refusals() -> None:
    options = KlangioOptions()
    assert (options.model, options.outputs, options.title, options.composer) == (
        "universal",
        ["midi", "mxml"],
        None,
        None,
    )
    refused: list[dict[str, Any]] = [
        {"modle": "guitar"},  # unknown key
        {"model": "kazoo"},  # not in the enum
        {"outputs": ["json"]},  # named by one third-party client only
        {"outputs": ["xml"]},  # the path, not the output's name
        {"outputs": []},
        {"title": ""},
    ]
    for bad in refused:
        with pytest.raises(pydantic.ValidationError):
            KlangioOptions.model_validate(bad)
    assert KlangioOptions(outputs=["pdf", "midi", "pdf"]).outputs == ["pdf", "midi"]
    assert KlangioOptions(model="piano_arrangement").model == "piano_arrangement"


def test_options_schema_lists_the_enums() -> None:
    schema = KlangioOptions.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]["outputs"]["items"]["enum"]) == set(OUTPUTS)
    assert {"universal", "guitar", "piano", "drums"} <= set(schema["properties"]["model"]["enum"])
    assert all(field.get("description") for field in schema["properties"].values())


def test_request_fields_follow_the_documents() -> None:
    options = KlangioOptions(model="guitar", title="Awesome recording", composer="John Doe")
    assert transcription_params(options, "https://gw/cb?expires=1&sig=x") == {
        "model": "guitar",
        "title": "Awesome recording",
        "composer": "John Doe",
        "webhook_url": "https://gw/cb?expires=1&sig=x",
    }
    assert transcription_params(KlangioOptions(), None) == {"model": "universal"}
    assert transcription_form(KlangioOptions(outputs=["midi", "pdf", "gp5"])) == {
        "outputs": ["midi", "pdf", "gp5"]
    }


def test_a_downloaded_source_gets_a_name_and_type(tmp_path: Path) -> None:
    downloaded = submit_request(tmp_path, filename=None, content_type=None, audio_format="mp3")
    assert upload_name_and_type(downloaded) == ("job-1.mp3", "audio/mpeg")
    assert upload_name_and_type(submit_request(tmp_path)) == ("riff.wav", "audio/wav")


def test_language_is_refused() -> None:
    check_language(None)
    with pytest.raises(PermanentProviderError) as err:
        check_language("en")
    assert err.value.code == "unsupported_language"


@pytest.mark.parametrize(
    ("name", "announced"),
    [
        ("create_transcription.json", {"midi", "gp5", "pdf"}),
        ("create_transcription_getting_started.json", {"mxml", "midi"}),
        ("create_no_flags_constructed.json", None),
    ],
)
def test_gen_flags_of_both_create_shapes(name: str, announced: set[str] | None) -> None:
    assert announced_outputs(payload(name)) == announced


def test_old_flag_name_announces_quantized_midi() -> None:
    assert announced_outputs({"gen_midi": False, "gen_midi_unq": True}) == {"midi_quant"}


def test_the_transcript_is_empty_not_invented() -> None:
    assert empty_transcript().model_dump() == {
        "text": "",
        "language": None,
        "duration": None,
        "provider": "klangio",
        "segments": [],
    }


def test_result_keeps_the_files_and_the_raw_payload() -> None:
    result = build_result(
        payload("status_completed.json"),
        {"midi_quant": ("midi_unq", b"MThd-q"), "mxml": ("xml", b"<score/>")},
        ["gp5"],
    )
    assert [(a.name, a.content_type, a.data) for a in result.artifacts] == [
        ("midi_quant", "audio/midi", b"MThd-q"),
        ("mxml", "application/vnd.recordare.musicxml+xml", b"<score/>"),
    ]
    assert result.raw == {
        "status": {"status": "COMPLETED"},
        "outputs": {"midi_quant": "midi_unq", "mxml": "xml"},
        "missing_outputs": ["gp5"],
    }
    assert result.transcript == empty_transcript()


def test_failure_keeps_the_vendor_reason_and_body() -> None:
    plain = failure("FAILED", payload("status_failed.json"))
    assert (plain.code, plain.message) == ("provider_failed", "klangio reported the job FAILED")
    assert plain.provider_detail == {"status": "FAILED"} and not plain.retryable
    detailed = failure("FAILED", payload("status_failed_third_party.json"))
    assert detailed.message == "klangio reported the job FAILED: Audio could not be decoded"
    timed_out = failure("TIMED_OUT", payload("status_timed_out_third_party.json"))
    assert timed_out.code == "provider_timeout" and timed_out.retryable
    assert timed_out.message.endswith(": Processing took too long")
    assert failure("CANCELLED", {"status": "CANCELLED"}).code == "provider_canceled"


def test_fastapi_details_read_as_text() -> None:
    assert detail_text(payload("error_401_third_party.json")) == "Invalid API key"
    assert detail_text(payload("error_422_third_party.json")) == "query.model: field required"
    assert detail_text({"message": "other shape"}) is None
    assert detail_text("plain text") is None


def test_redact_reaches_nested_strings() -> None:
    echoed = {"detail": [{"loc": ["header", "kl-api-key"], "input": KEY, "n": 1}], "k": [KEY]}
    assert KEY not in json.dumps(redact(echoed, KEY))
    assert redact(echoed, KEY)["detail"][0]["n"] == 1


def test_build_takes_its_settings() -> None:
    values: dict[str, Any] = {
        "_env_file": None,
        "klangio_api_key": KEY,
        "klangio_base_url": "http://127.0.0.1:9/",
    }
    settings = Settings(**values)
    provider = build(settings, httpx.AsyncClient())
    assert isinstance(provider, KlangioProvider)
    assert provider.capabilities.languages == ()
    assert provider.capabilities.callbacks and not provider.capabilities.cancel
    assert provider.needs_local_audio
    assert "wav" in provider.capabilities.formats and "mp3" in provider.capabilities.formats
