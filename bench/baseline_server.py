"""The baseline for bench/create_jobs.py: the least a service can do with an upload.

A bare Starlette endpoint streams the request body to a file and inserts one
row, on the same PostgreSQL, under the same uvicorn. The gateway does more
(multipart parsing, sha256, format sniffing, auth, a job and a task row,
NOTIFY): the benchmark shows what that costs.
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DSN = os.environ["BASELINE_DSN"]
STORAGE = Path(os.environ["BASELINE_STORAGE"])


async def upload(request: Request) -> JSONResponse:
    upload_id = uuid.uuid4().hex
    path = STORAGE / upload_id
    size = 0
    with path.open("wb") as file:
        async for chunk in request.stream():
            file.write(chunk)
            size += len(chunk)
    async with request.app.state.pool.acquire() as conn:
        await conn.execute("INSERT INTO uploads (id, size) VALUES ($1, $2)", upload_id, size)
    return JSONResponse({"id": upload_id, "size": size}, status_code=202)


@asynccontextmanager
async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
    STORAGE.mkdir(parents=True, exist_ok=True)
    app.state.pool = await asyncpg.create_pool(DSN, min_size=2, max_size=10)
    await app.state.pool.execute(
        "CREATE TABLE IF NOT EXISTS uploads (id text PRIMARY KEY, size bigint)"
    )
    yield
    await app.state.pool.close()


app = Starlette(routes=[Route("/upload", upload, methods=["POST"])], lifespan=lifespan)
