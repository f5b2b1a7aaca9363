"""A client's webhook endpoint for benchmarks, in its own process.

    WEBHOOK_SECRET=whsec_… python bench/webhook_receiver.py --port 9000

``POST /hook`` checks each delivery's signature with the official
``standardwebhooks`` library and the client's secret (from the environment,
never the command line), answers 204, and records (job id, event type,
webhook-id, time.monotonic()) — the clock is the machine's, so another process
can compare it with its own. A delivery whose signature does not verify gets
a 401 and is only counted.

``GET /count`` answers the tallies so far; ``GET /records`` every record.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Record = tuple[str, str, str, float]  # job id, event type, webhook-id, time.monotonic()


def build_app(secret: str) -> Starlette:
    webhook = Webhook(secret)
    records: list[Record] = []
    events: Counter[str] = Counter()
    rejected: Counter[str] = Counter()

    async def hook(request: Request) -> Response:
        body = await request.body()
        try:
            event = webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            rejected["bad_signature"] += 1
            return Response(status_code=401)
        kind, job_id = str(event["type"]), str(event["data"]["id"])
        records.append((job_id, kind, request.headers["webhook-id"], time.monotonic()))
        events[kind] += 1
        return Response(status_code=204)

    async def count(_request: Request) -> Response:
        return JSONResponse({"events": dict(events), "rejected": dict(rejected)})

    async def all_records(_request: Request) -> Response:
        return JSONResponse({"records": records, "rejected": dict(rejected)})

    return Starlette(
        routes=[
            Route("/hook", hook, methods=["POST"]),
            Route("/count", count, methods=["GET"]),
            Route("/records", all_records, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build_app(os.environ["WEBHOOK_SECRET"])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
