"""How long an uploaded WAV lasts, from its header and its size.

Only WAV says so in its first bytes (its ``fmt `` chunk gives the bytes per
second, its ``data`` chunk the bytes of samples); other formats would need
decoding, so for them the length is unknown and no vendor limit is checked.
"""

from __future__ import annotations

from app.audio.truncation import UNKNOWN_SIZES, riff_chunks


def wav_seconds(head: bytes, size: int) -> float | None:
    """The duration of a WAV of ``size`` bytes starting with ``head``, or None."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    byte_rate = 0
    for offset, chunk_id, chunk_size in riff_chunks(head):
        if chunk_id == b"fmt " and len(head) >= offset + 20:
            byte_rate = int.from_bytes(head[offset + 16 : offset + 20], "little")
        elif chunk_id == b"data":
            if byte_rate <= 0:
                return None
            arrived = max(size - offset - 8, 0)
            samples = arrived if chunk_size in UNKNOWN_SIZES else min(chunk_size, arrived)
            return samples / byte_rate
    return None
