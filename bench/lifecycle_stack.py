"""The processes of one bench/lifecycle.py topology: the vendors' fakes, the client
key, the webhook receiver and the gateway's serve and worker processes."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import REPO, stop_all
from bench.fake_vendors import VENDOR_SETTINGS, VENDORS
from tests.support.gateway import GatewayProcess
from tests.support.postgres import free_port


@dataclass
class Stack:
    """Everything one topology runs, and the processes whose CPU is counted."""

    api_urls: list[str] = field(default_factory=list)
    gateways: list[GatewayProcess] = field(default_factory=list)
    others: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    fakes: dict[str, str] = field(default_factory=dict)  # vendor -> base URL
    receiver_url: str = ""

    def gateway_pids(self) -> dict[str, int]:
        pids, numbers = {}, Counter[str]()
        for gateway in self.gateways:
            kind = gateway.args[0]  # serve | worker
            numbers[kind] += 1
            if gateway.proc is not None:
                pids[f"{kind}-{numbers[kind]}"] = gateway.proc.pid
        return pids

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.terminate()
        stop_all(list(self.others.values()))


def start_fakes(stack: Stack, work: Path, callback_delay: float) -> None:
    for vendor in VENDORS:
        log = (work / f"fake-{vendor}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "fake_vendors.py"), vendor,
             "--callback-delay", str(callback_delay)],
            stdout=subprocess.PIPE, stderr=log, cwd=REPO,
        )  # fmt: skip
        stack.others[f"fake-{vendor}"] = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {vendor} fake did not start: see {log.name}")
        stack.fakes.update(json.loads(line))


def create_client(env: dict[str, str]) -> dict[str, str]:
    """``stt-gateway keys create`` (it migrates the database first)."""
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", "--name", "bench"],
        env=env, cwd=REPO, capture_output=True, check=True,
    )  # fmt: skip
    created: dict[str, str] = json.loads(out.stdout)
    return created


def start_receiver(stack: Stack, work: Path, secret: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "webhook_receiver.py"), "--port", str(port)],
        env={**os.environ, "WEBHOOK_SECRET": secret},
        stdout=(work / "receiver.log").open("wb"), stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    stack.others["receiver"] = proc
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/count", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the webhook receiver did not start") from None
            time.sleep(0.1)
    stack.receiver_url = f"http://127.0.0.1:{port}"


def gateway_env(database_url: str, work: Path, stack: Stack, args: argparse.Namespace,
                public_port: int) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "STORAGE_"))}
    env.update(
        DATABASE_URL=database_url,
        STORAGE_DIR=str(work / "storage"),  # shared: a worker reads what a serve stored
        LOG_LEVEL="WARNING",
        ALLOW_PRIVATE_URLS="true",  # the receiver and the fakes are on loopback
        PUBLIC_BASE_URL=f"http://127.0.0.1:{public_port}",
        SIGNING_SECRET=secrets.token_hex(32),  # the same link key in every process
        LOCAL_PROVIDER="false",
        WORKER_CONCURRENCY=str(args.worker_concurrency),
        PROVIDER_MAX_IN_FLIGHT=str(args.worker_concurrency),  # the fakes need no cap
        # A connection for each task in flight and some for the requests: with the
        # default 20 the pool churned (0.26-0.30 new connections per job, against 0.06).
        DATABASE_POOL_SIZE=str(args.worker_concurrency + 8),
    )
    for vendor, url in stack.fakes.items():
        env.update(VENDOR_SETTINGS[vendor](url))
    return env


def start_gateways(topology: str, env: dict[str, str], work: Path, port: int,
                   stack: Stack) -> None:  # fmt: skip
    if topology == "A":
        stack.gateways.append(
            GatewayProcess(env, work / "serve-1.log", "serve", "--port", str(port), port=port)
        )
    else:
        second = free_port()
        stack.gateways += [
            GatewayProcess(env, work / "serve-1.log", "serve", "--no-worker", "--port",
                           str(port), port=port),
            GatewayProcess(env, work / "serve-2.log", "serve", "--no-worker", "--port",
                           str(second), port=second),
            GatewayProcess(env, work / "worker-1.log", "worker"),
            GatewayProcess(env, work / "worker-2.log", "worker"),
        ]  # fmt: skip
    for gateway in stack.gateways:
        gateway.start()
    stack.api_urls = [g.base_url for g in stack.gateways if g.args[0] == "serve"]
