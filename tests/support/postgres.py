"""A throwaway PostgreSQL server for the test session, and cheap per-test databases.

As root, initdb and pg_ctl refuse to run: they run as the ``postgres`` user.
Each test gets its own database cloned from a migrated template (about 50 ms),
so tests whose code commits never share state.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import asyncpg


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL is not installed: apt-get install postgresql (scripts/test.sh does it), "
        "or set TEST_POSTGRES_URL to a server the tests may create databases on"
    )


class PostgresServer:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="stt-pg-"))
        self.port = free_port()
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self) -> None:
        """Create the cluster on first use, then start the server."""
        if not (self.dir / "data").exists():
            if self._as_root:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.dir / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def admin(dsn: str, *statements: str) -> None:
    """Run statements outside any event loop of the caller (fixtures are synchronous)."""
    asyncio.run(_admin(dsn, *statements))


def sqlalchemy_url(admin_dsn: str, database: str) -> str:
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{database}"


def clone_database(admin_dsn: str, template: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin(admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def drop_database(admin_dsn: str, name: str) -> None:
    admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
