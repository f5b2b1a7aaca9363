"""A fake OpenAI-compatible transcription upstream for bench/vs_litellm.py.

    python -m uvicorn bench.fake_openai_upstream:app --port P --log-level warning

``POST /v1/audio/transcriptions`` reads the whole body and answers a fixed
small JSON at once: the cost of a real transcription is left out, so what a
gateway in front of it adds is all that is measured. A bare ASGI app (no
framework, no multipart parsing) keeps the upstream itself as cheap as can be.
``GET /stats`` says how many requests and body bytes it has taken, so the
benchmark can check that each gateway forwarded every file whole.
"""

from __future__ import annotations

import json
from typing import Any

TEXT = "the quick brown fox jumps over the lazy dog"
ANSWER = json.dumps({"text": TEXT, "language": "english", "duration": 1.0}).encode()

_stats = {"requests": 0, "bytes": 0}


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    if method == "POST" and path == "/v1/audio/transcriptions":
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        _stats["requests"] += 1
        _stats["bytes"] += size
        await _respond(send, 200, ANSWER)
    elif method == "GET" and path == "/stats":
        await _respond(send, 200, json.dumps(_stats).encode())
    else:
        await _respond(send, 404, b'{"error": {"message": "not found"}}')
