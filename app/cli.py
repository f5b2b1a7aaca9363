"""The ``stt-gateway`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from app.config import get_settings

log = logging.getLogger("app")


def _setup_logging() -> None:
    from app.logs import configure_logging

    configure_logging(get_settings())


def _migrate_quietly() -> None:
    from app.migrate import upgrade_to_head

    upgrade_to_head(get_settings().database_url)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.http_protocol import guarded_protocol
    from app.main import create_app

    _setup_logging()
    _migrate_quietly()
    settings = get_settings().model_copy(update={"run_worker": not args.no_worker})
    asyncio.run(_hint_when_no_keys())
    level = settings.log_level.lower()
    uvicorn.run(
        create_app(settings, freeze_heap=True),
        host=args.host,
        port=args.port,
        # Longer than the idle expiry of common clients' pools (httpx: 5 s, the
        # same as uvicorn's default), so a client never reuses a connection
        # that the server is closing at that instant.
        timeout_keep_alive=65,
        http=guarded_protocol(
            settings.request_header_timeout_seconds, settings.max_request_header_bytes
        ),
        log_level=level,
        log_config=None,  # uvicorn's loggers go through configure_logging's handler
        access_log=level in ("debug", "info"),
    )
    return 0


async def _hint_when_no_keys() -> None:
    from app import clients

    async def check(session: Any) -> None:
        if not await clients.list_clients(session):
            log.warning("no API keys yet: create one with `stt-gateway keys create --name me`")

    await _with_session(check)


def cmd_worker(_args: argparse.Namespace) -> int:
    from app.context import GatewayContext
    from app.runtime import run_worker_forever

    _setup_logging()
    _migrate_quietly()

    async def main() -> None:
        ctx = GatewayContext.build(get_settings())
        try:
            await run_worker_forever(ctx)
        finally:
            await ctx.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    _setup_logging()
    _migrate_quietly()
    return 0


async def _with_session(action: Callable[[Any], Awaitable[None]]) -> None:
    from app.db import create_engine, create_session_factory

    engine = create_engine(get_settings().database_url)
    try:
        async with create_session_factory(engine)() as session:
            await action(session)
            await session.commit()
    finally:
        await engine.dispose()


def cmd_keys(args: argparse.Namespace) -> int:
    from app import clients

    _migrate_quietly()
    outcome: dict[str, Any] = {}

    async def create(session: Any) -> None:
        new = await clients.create_client(session, args.name)
        outcome["out"] = {
            "name": new.name,
            "api_key": new.api_key,
            "webhook_secret": new.webhook_secret,
        }

    async def listing(session: Any) -> None:
        outcome["out"] = [
            {
                "name": c.name,
                "key_prefix": c.key_prefix,
                "created_at": c.created_at.isoformat(),
                "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
            }
            for c in await clients.list_clients(session)
        ]

    async def revoke(session: Any) -> None:
        await clients.revoke_client(session, args.name)
        outcome["out"] = {"name": args.name, "revoked": True}

    async def rotate(session: Any) -> None:
        hours = get_settings().webhook_secret_overlap_hours
        secret = await clients.rotate_webhook_secret(session, args.name, timedelta(hours=hours))
        outcome["out"] = {"name": args.name, "webhook_secret": secret,
                          "previous_secret_valid_hours": hours}  # fmt: skip

    actions = {"create": create, "list": listing, "revoke": revoke, "rotate-secret": rotate}
    try:
        asyncio.run(_with_session(actions[args.keys_command]))
    except (clients.ClientNameTaken, clients.ClientNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(outcome["out"], indent=2 if args.keys_command == "list" else None))
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from app.client_cli import transcribe

    return transcribe(args)


def cmd_openapi(args: argparse.Namespace) -> int:
    from app.config import Settings
    from app.main import create_app
    from app.openapi_doc import render

    # Defaults only, never the environment: the document depends on no setting.
    text = render(create_app(Settings.model_construct()).openapi())
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def client_name(text: str) -> str:
    """A client's name as ``keys create`` takes it: 1 to 200 printable characters."""
    name = text.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise argparse.ArgumentTypeError(
            "a client name is 1 to 200 printable characters, not blank"
        )
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stt-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="migrate if needed, then serve the API (and the worker)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--no-worker", action="store_true", help="serve only; run `stt-gateway worker` apart"
    )
    serve.set_defaults(func=cmd_serve)

    commands.add_parser("worker", help="run only the background worker").set_defaults(
        func=cmd_worker
    )
    commands.add_parser("migrate", help="alembic upgrade head on DATABASE_URL").set_defaults(
        func=cmd_migrate
    )

    keys = commands.add_parser("keys", help="manage client API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a client; prints its key once")
    create.add_argument("--name", required=True, type=client_name)
    key_commands.add_parser("list", help="list clients (never their keys)")
    revoke = key_commands.add_parser("revoke", help="revoke a client's key at once")
    revoke.add_argument("name")
    rotate = key_commands.add_parser(
        "rotate-secret", help="issue a new webhook secret; the old one signs too for 24 h"
    )
    rotate.add_argument("name")
    keys.set_defaults(func=cmd_keys)

    tr = commands.add_parser("transcribe", help="transcribe a file through a running gateway")
    tr.add_argument("file", nargs="?", help="the audio file to upload")
    tr.add_argument("--url", help="transcribe audio at this URL instead of a file")
    tr.add_argument("--provider", default="local")
    tr.add_argument("--language")
    tr.add_argument("--format", choices=["text", "srt", "vtt", "json"], default="text")
    tr.add_argument(
        "--gateway", help="the gateway's URL (env STT_GATEWAY_URL; default http://127.0.0.1:8000)"
    )
    tr.add_argument("--api-key", help="your API key (env STT_API_KEY)")
    tr.add_argument("--timeout", type=float, default=600, help="seconds to wait for the transcript")
    tr.set_defaults(func=cmd_transcribe)

    spec = commands.add_parser("openapi", help="print the OpenAPI document (as openapi.json)")
    spec.add_argument("--output", help="write it to this file instead")
    spec.set_defaults(func=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
