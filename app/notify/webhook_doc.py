"""The client webhooks as the OpenAPI document's ``webhooks`` section describes them.

Nothing here is served: these are the requests the gateway sends to a job's
``callback_url`` (app.notify.sender), declared so that readers and client
generators see the body and the Standard Webhooks headers to verify.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

from app.jobs.schemas import JobOut
from app.notify.endpoints import WebhookEvent

_VERIFY = (
    "Signed by the Standard Webhooks scheme with the client's `webhook_secret` "
    "(`whsec_…`): `webhook-signature` is `v1,` and the base64 HMAC-SHA256, keyed by "
    "the base64-decoded secret after `whsec_`, of `{webhook-id}.{webhook-timestamp}.{body}`; "
    "for 24 h after `keys rotate-secret` it carries a signature by each secret. "
    "Answer 2xx; anything else, or no answer in time, is retried with exponential "
    "backoff for at least 24 hours, with the same `webhook-id`."
)


class WebhookPayload(BaseModel):
    """The body of every client webhook."""

    type: Literal["job.completed", "job.failed", "job.canceled"]
    timestamp: datetime = Field(description="When the event happened (UTC)")
    data: JobOut = Field(description="The job as `GET /jobs/{id}` shows it then")


def document_webhooks(app: FastAPI) -> None:
    for event in WebhookEvent:
        _declare(app, event.value)


def _declare(app: FastAPI, event: str) -> None:
    @app.webhooks.post(
        event,
        operation_id=f"webhook_{event.replace('.', '_')}",
        summary=f"`{event}`: sent to the job's callback_url",
        description=_VERIFY,
        tags=["webhooks"],
    )
    def webhook(
        body: WebhookPayload,
        webhook_id: Annotated[str, Header(description="The event's id, the same on retries")],
        webhook_timestamp: Annotated[int, Header(description="Unix seconds of this attempt")],
        webhook_signature: Annotated[
            str, Header(description="`v1,<base64>`; several, space-separated, after a rotation")
        ],
    ) -> None:
        """Never called: the signature of the request the gateway sends."""
