"""The harness for fake vendor servers and the gateways that talk to them.

A fake is a Starlette app served by uvicorn on 127.0.0.1 in a thread: real
HTTP both ways. It records every request, can be told to fail the next calls
of one operation (500s, 429 with Retry-After, ...), and calls the gateway's
callbacks over real HTTP when the vendor would (unless told not to).

    class FakeDaglo(FakeVendor):
        def routes(self) -> list[Route]: ...      # the vendor's paths
        # in a handler: `if (fault := self.fault("submit")): return fault`

    with FakeDaglo() as fake:                     # started; fake.base_url
        gateway, key = vendor_gateway(fake, DAGLO_API_KEY="k", DAGLO_BASE_URL=fake.base_url)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.postgres import free_port

TERMINAL = {"completed", "failed", "canceled"}


@dataclass
class Recorded:
    operation: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, Any] = field(default_factory=dict)  # multipart fields; files as bytes
    json: Any = None


@dataclass
class Fault:
    status: int
    headers: dict[str, str]
    body: Any


class FakeVendor:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.callbacks_enabled = True
        self.callbacks_sent: list[tuple[str, int]] = []  # (url, status the gateway answered)
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- for subclasses ---------------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    async def record(self, operation: str, request: Request) -> Recorded:
        """Read and remember a request (its form or JSON body parsed when there is one)."""
        body = await request.body()
        recorded = Recorded(
            operation=operation,
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            for key, value in form.multi_items():
                recorded.form[key] = await value.read() if hasattr(value, "read") else value
        elif content_type.startswith("application/json") and body:
            recorded.json = await request.json()
        self.requests.append(recorded)
        return recorded

    def fault(self, operation: str) -> Response | None:
        """The injected answer for this call of ``operation``, if one is queued."""
        queue = self._faults.get(operation)
        if not queue:
            return None
        fault = queue.popleft()
        if isinstance(fault.body, (dict, list)):
            return JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)
        return Response(fault.body or b"", status_code=fault.status, headers=fault.headers)

    async def call_back(self, url: str, payload: Any) -> None:
        """POST to the gateway's callback URL, as the vendor would."""
        if not self.callbacks_enabled or not url:
            return
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(url, json=payload)
        self.callbacks_sent.append((url, response.status_code))

    def call_back_later(self, url: str, payload: Any, delay: float = 0.05) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            await self.call_back(url, payload)

        asyncio.get_running_loop().create_task(later())

    # -- for tests --------------------------------------------------------------

    def fail(
        self,
        operation: str,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        for _ in range(times):
            self._faults[operation].append(Fault(status, headers or {}, body))

    def clear_faults(self) -> None:
        """Answer normally again: the faults still queued are dropped."""
        self._faults.clear()

    def calls(self, operation: str) -> list[Recorded]:
        return [r for r in self.requests if r.operation == operation]

    def start(self) -> FakeVendor:
        port = free_port()
        config = uvicorn.Config(
            Starlette(routes=self.routes()), host="127.0.0.1", port=port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake vendor did not start")
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once terminal (fails the test if it is not within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        job: dict[str, Any] = client.get(
            f"/jobs/{job_id}", params={"wait": max(0, min(remaining, 30))}
        ).json()
        if job["status"] in TERMINAL or remaining <= 0:
            assert job["status"] in TERMINAL, f"job still {job['status']} after {timeout} s: {job}"
            return job
