"""Phonexia options as the query and config of a submit, and the task id of its answer."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from app.providers.phonexia import PhonexiaOptions, submit_config, submit_params, submitted_task_id
from tests.providers.phonexia_support import TASK, load


def test_options_build_the_documented_query_and_config() -> None:
    options = PhonexiaOptions.model_validate(
        {
            "channel_mode": "split",
            "channels": [0, 1],
            "preferred_phrases": ["good morning"],
            "additional_words": [
                {"spelling": "frumious", "pronunciations": ["f r u m i o s"]},
                {"spelling": "Phonexia"},
            ],
        }
    )
    assert submit_params("cs-CZ", options) == {
        "language": "cs-CZ",
        "channel_mode": "split",
        "channels": "0,1",
    }
    assert submit_config(options) == {
        "preferred_phrases": ["good morning"],
        "additional_words": [
            {"spelling": "frumious", "pronunciations": ["f r u m i o s"]},
            {"spelling": "Phonexia"},
        ],
    }
    assert submit_params(None, PhonexiaOptions()) == {}
    assert submit_config(PhonexiaOptions()) is None


@pytest.mark.parametrize(
    "options",
    [
        {"langauge": "en"},  # the vendor would silently ignore it: we refuse it
        {"dictionary": []},
        {"additional_words": [{"word": "frumious"}]},
        {"additional_words": [{"spelling": "frumious", "phonemes": "f r u"}]},
        {"additional_words": [{"spelling": "two words"}]},
        {"additional_words": []},
        {"preferred_phrases": [""]},
        {"channels": [-1]},
        {"channel_mode": "stereo"},
        {"engine": "whisper"},
        {"engine": "whisper-enhanced", "additional_words": [{"spelling": "x"}]},
        {"engine": "whisper-enhanced", "preferred_phrases": ["hello"]},
    ],
)
def test_options_refuse_unknown_keys_and_bad_values(options: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        PhonexiaOptions.model_validate(options)


def test_options_schema_is_closed() -> None:
    schema = PhonexiaOptions.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["AdditionalWord"]["additionalProperties"] is False
    assert schema["properties"]["engine"]["enum"] == ["default", "whisper-enhanced"]


def test_the_task_id_comes_from_the_body_or_the_poll_url() -> None:
    assert submitted_task_id(load("submit_accepted.json"), None) == TASK
    location = f"/api/technology/speech-to-text/{TASK}"
    assert submitted_task_id({}, location) == TASK
    assert submitted_task_id({"task": {}}, f"http://va:8000{location}/") == TASK
    assert submitted_task_id({}, None) is None
