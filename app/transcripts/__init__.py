"""The normalised transcript every provider's result is turned into, and its renderers."""

from app.transcripts.model import Segment, Transcript, Word
from app.transcripts.render import (
    RENDERERS,
    TranscriptHasNoTimings,
    render_srt,
    render_text,
    render_vtt,
)

__all__ = [
    "RENDERERS",
    "Segment",
    "Transcript",
    "TranscriptHasNoTimings",
    "Word",
    "render_srt",
    "render_text",
    "render_vtt",
]
