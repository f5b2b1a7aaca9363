"""A real gateway on 127.0.0.1 for tests: uvicorn in a thread, or a real subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from app import clients
from app.config import Settings
from app.db import create_engine, create_session_factory
from app.http_protocol import guarded_protocol
from app.main import create_app
from tests.support.postgres import free_port

REPO = Path(__file__).resolve().parents[2]


def gateway_settings(database_url: str, storage_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "storage_dir": storage_dir,
        "allow_private_urls": True,
        "worker_poll_seconds": 0.5,
        "poll_min_seconds": 0.2,  # the fakes answer at once: no need to wait 1 s a poll
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 2.0,
        "task_lease_seconds": 30.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def _create_client(database_url: str, name: str) -> clients.NewClient:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            new = await clients.create_client(session, name)
            await session.commit()
            return new
    finally:
        await engine.dispose()


def create_client(database_url: str, name: str) -> clients.NewClient:
    """A new client: its API key and webhook secret (call from synchronous code only)."""
    return asyncio.run(_create_client(database_url, name))


def create_key(database_url: str, name: str) -> str:
    """A new client's API key (call from synchronous code only)."""
    return create_client(database_url, name).api_key


@dataclass
class ThreadedGateway:
    settings: Settings
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, api_key: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_threaded(settings: Settings, port: int | None = None) -> ThreadedGateway:
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        # The protocol `stt-gateway serve` runs, with its limits on request headers
        http=guarded_protocol(
            settings.request_header_timeout_seconds, settings.max_request_header_bytes
        ),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    return ThreadedGateway(settings, f"http://127.0.0.1:{port}", server, thread)


def gateway_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a gateway subprocess needs for these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "STORAGE_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        STORAGE_DIR=str(settings.storage_dir),
        ALLOW_PRIVATE_URLS="true",
        WORKER_POLL_SECONDS=str(settings.worker_poll_seconds),
        POLL_MIN_SECONDS=str(settings.poll_min_seconds),
        RETRY_BASE_SECONDS=str(settings.retry_base_seconds),
        RETRY_MAX_SECONDS=str(settings.retry_max_seconds),
        TASK_LEASE_SECONDS=str(settings.task_lease_seconds),
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


class GatewayProcess:
    """``stt-gateway serve`` (or ``worker``) as a real process, killable with SIGKILL."""

    def __init__(
        self, env: dict[str, str], log_path: Path, *args: str, port: int | None = None
    ) -> None:
        # The same port as a killed process: links given to vendors still reach it.
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = args or ("serve", "--port", str(self.port))
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True) -> GatewayProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *self.args],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready and self.args[0] == "serve":
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-3000:]}")
                time.sleep(0.1)
            raise RuntimeError("gateway did not become healthy")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
