"""Standard Webhooks signatures (https://www.standardwebhooks.com), as the
official ``standardwebhooks`` library makes and checks them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def signed_headers(
    msg_id: str, sent_at: datetime, body: str, secrets: Sequence[str]
) -> dict[str, str]:
    """The three ``webhook-*`` headers; one ``v1,`` signature per secret (a rotation
    sends the old and the new one side by side, space-separated, as the scheme allows)."""
    signatures = " ".join(Webhook(secret).sign(msg_id, sent_at, body) for secret in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
    }
