"""Klangio's options, as a job gives them, and what they become in a request.

``KlangioOptions`` is the model the gateway validates a job's options with; the
``OUTPUTS`` table says, for each output format, where its file is fetched from,
which create-answer flags announce it, and its content type;
``transcription_params`` and ``transcription_form`` turn the options into the
query and form fields of ``POST /transcription``. The adapter is
``app.providers.klangio``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, field_validator

# The official pages show "universal" and "guitar"; the rest is the OpenAPI enum
# as several independent third-party clients copy it (NOTES.md §1).
ModelName = Literal[
    "universal",
    "guitar",
    "piano",
    "bass",
    "vocal",
    "lead",
    "detect",
    "drums",
    "multi",
    "wind",
    "string",
    "piano_arrangement",
]
OutputName = Literal["midi", "midi_quant", "mxml", "pdf", "gp5"]


@dataclass(frozen=True)
class OutputFormat:
    name: OutputName  # the ``outputs`` value, and the artifact's name
    paths: tuple[str, ...]  # under /job/{id}/, tried in this order
    flags: tuple[str, ...]  # the create answer's gen_* fields that announce it
    content_type: str


OUTPUTS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat("midi", ("midi",), ("gen_midi",), "audio/midi"),
        # Clients call /midi_quant, Klangio's MIDI page says /midi_unq; the newer create
        # answer names the flag gen_midi_quant, the older gen_midi_unq.
        OutputFormat(
            "midi_quant",
            ("midi_quant", "midi_unq"),
            ("gen_midi_quant", "gen_midi_unq"),
            "audio/midi",
        ),
        # Asked for as "mxml", fetched from /xml.
        OutputFormat("mxml", ("xml",), ("gen_xml",), "application/vnd.recordare.musicxml+xml"),
        OutputFormat("pdf", ("pdf",), ("gen_pdf",), "application/pdf"),
        OutputFormat("gp5", ("gp5",), ("gen_gp5",), "application/octet-stream"),
    )
}


class KlangioOptions(BaseModel):
    """Klangio's own parameters of ``POST /transcription``."""

    model_config = {"extra": "forbid"}

    model: ModelName = Field(
        default="universal",
        description=(
            "The instrument model. Klangio's pages show 'universal' (the general model) "
            "and 'guitar'; the other values are its OpenAPI enum as third-party clients "
            "copy it."
        ),
    )
    outputs: list[OutputName] = Field(
        default=["midi", "mxml"],  # pydantic copies a mutable default for each instance
        min_length=1,
        description=(
            "The files to make, each stored as an artifact of that name: midi, midi_quant "
            "(quantized MIDI), mxml (MusicXML), pdf (sheet music), gp5 (Guitar Pro 5). "
            "Each extra format may cost Klangio quota."
        ),
    )
    title: str | None = Field(
        default=None, min_length=1, description="The title printed on the score"
    )
    composer: str | None = Field(
        default=None, min_length=1, description="The composer printed on the score"
    )

    @field_validator("outputs")
    @classmethod
    def _once_each(cls, value: list[OutputName]) -> list[OutputName]:
        return list(dict.fromkeys(value))


# --- the request ----------------------------------------------------------------


def transcription_params(options: KlangioOptions, callback_url: str | None) -> dict[str, str]:
    """The query string of ``POST /transcription``."""
    params: dict[str, str] = {"model": options.model}
    if options.title is not None:
        params["title"] = options.title
    if options.composer is not None:
        params["composer"] = options.composer
    if callback_url is not None:
        params["webhook_url"] = callback_url
    return params


def transcription_form(options: KlangioOptions) -> dict[str, list[str]]:
    """The fields beside the file: httpx sends a list as one ``outputs`` field per value."""
    return {"outputs": list(options.outputs)}
