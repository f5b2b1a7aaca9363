"""The normalised transcript of CONTRACT.md.

What a vendor did not return stays ``None``: a renderer or a client may cope
with a missing time, but never with an invented one.
"""

from pydantic import BaseModel, Field


class Word(BaseModel):
    start: float | None = None
    end: float | None = None
    text: str
    confidence: float | None = None


class Segment(BaseModel):
    start: float | None = None
    end: float | None = None
    text: str
    channel: int | None = None
    speaker: str | None = None
    words: list[Word] = Field(default_factory=list)


class Transcript(BaseModel):
    text: str
    language: str | None = None
    duration: float | None = None
    provider: str
    segments: list[Segment] = Field(default_factory=list)
