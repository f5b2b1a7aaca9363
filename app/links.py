"""The URLs we give vendors: our callback endpoint and the media of an upload."""

from __future__ import annotations

from app.config import Settings
from app.signing import LinkSigner

CALLBACK_PURPOSE = "callback"
MEDIA_PURPOSE = "media"


def _base(settings: Settings) -> str | None:
    return settings.public_base_url.rstrip("/") if settings.public_base_url else None


def callback_url(settings: Settings, signer: LinkSigner, provider: str, job_id: str) -> str | None:
    """Where ``provider`` may notify us about ``job_id``; None without PUBLIC_BASE_URL."""
    base = _base(settings)
    if base is None:
        return None
    query = signer.query(CALLBACK_PURPOSE, job_id, settings.callback_link_ttl_seconds)
    return f"{base}/callbacks/{provider}/{job_id}?{query}"


def media_url(settings: Settings, signer: LinkSigner, job_id: str) -> str | None:
    """A link from which a vendor can fetch the upload; None without PUBLIC_BASE_URL."""
    base = _base(settings)
    if base is None:
        return None
    query = signer.query(MEDIA_PURPOSE, job_id, settings.media_link_ttl_seconds)
    return f"{base}/media/{job_id}?{query}"
