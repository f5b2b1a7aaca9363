"""Is an uploaded WAV whole? Its header says how long it is; a cut-off upload is shorter.
And does it hold any audio at all (a header with no samples after it)?

Read from the file's first bytes and its size once it has all arrived, so the
check costs nothing while streaming. Sizes of 0 or 0xFFFFFFFF are the
streaming convention (a header written before the length was known): they say
nothing, and such a file is taken as it is. So is RF64, whose real sizes sit
in its ds64 chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

HEAD_BYTES = 512  # enough for the chunks that come before ``data`` in practice
UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def wav_truncation(head: bytes, size: int) -> str | None:
    """Why a WAV of ``size`` bytes that starts with ``head`` is cut short, or None."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    riff_size = int.from_bytes(head[4:8], "little")
    # One byte of slack: some writers leave out the pad byte after odd-sized data.
    if riff_size not in UNKNOWN_SIZES and riff_size + 8 > size + 1:
        return f"its header announces {riff_size + 8} bytes, but only {size} arrived"
    for offset, chunk_id, chunk_size in riff_chunks(head):
        if chunk_id != b"data":
            continue
        arrived = size - offset - 8
        if chunk_size not in UNKNOWN_SIZES and chunk_size > arrived:
            return (
                f"its header announces {chunk_size} bytes of samples, but only "
                f"{max(arrived, 0)} arrived"
            )
        break
    return None


def wav_without_samples(head: bytes, size: int) -> str | None:
    """Why a whole WAV of ``size`` bytes starting with ``head`` holds no audio (not
    one frame of samples in its ``data`` chunk), or None. A ``data`` size of 0 or
    0xFFFFFFFF says nothing (see above): then whatever follows counts."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    block_align = 1
    for offset, chunk_id, chunk_size in riff_chunks(head):
        if chunk_id == b"fmt " and len(head) >= offset + 22:
            block_align = max(int.from_bytes(head[offset + 20 : offset + 22], "little"), 1)
        elif chunk_id == b"data":
            arrived = max(size - offset - 8, 0)
            samples = arrived if chunk_size in UNKNOWN_SIZES else min(chunk_size, arrived)
            if samples < block_align:
                return f"its data chunk holds {samples} bytes, not one frame of samples"
            return None
    return None  # no data chunk within the first bytes: nothing to tell


def riff_chunks(head: bytes) -> Iterator[tuple[int, bytes, int]]:
    """(offset, id, size) of each RIFF chunk whose header lies within ``head``."""
    offset = 12
    while offset + 8 <= len(head):
        chunk_size = int.from_bytes(head[offset + 4 : offset + 8], "little")
        yield offset, head[offset : offset + 4], chunk_size
        offset += 8 + chunk_size + (chunk_size & 1)
