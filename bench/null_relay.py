"""The least a Python gateway can add: a bare relay, for bench/vs_litellm.py.

    UPSTREAM=http://127.0.0.1:P python -m uvicorn bench.null_relay:app --port Q

Takes the whole request body (as any gateway must before it can check it),
POSTs it unchanged to ``UPSTREAM`` + the request's path over aiohttp, and
answers what the upstream answered. No framework, no authentication, no
parsing, no disk and no database: on the same server stack as ours (uvicorn,
uvloop, httptools, aiohttp), what it adds over calling the upstream directly
is the floor under any gateway built on that stack, on this machine.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

_UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:8000")
_FORWARDED = ("content-type", "authorization")
_session: aiohttp.ClientSession | None = None


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        if _session is not None:
            await _session.close()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if _session is None:
        # Idle connections closed before the upstream's uvicorn closes them (5 s):
        # a POST on a connection closing under it would fail, not be retried.
        connector = aiohttp.TCPConnector(keepalive_timeout=3.0)
        _session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    body = await _body(receive)
    headers = {
        name.decode(): value.decode()
        for name, value in scope["headers"]
        if name.decode() in _FORWARDED
    }
    async with _session.request(
        scope["method"], _UPSTREAM + scope["path"], data=body, headers=headers
    ) as answer:
        content = await answer.read()
        status = answer.status
        content_type = answer.headers.get("content-type", "application/json")
    reply = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(content))]
    await send({"type": "http.response.start", "status": status, "headers": reply})
    await send({"type": "http.response.body", "body": content})
