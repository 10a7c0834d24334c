"""The ``solo`` command: ``chat``, ``serve``, ``understand``, ``doctor``, ``mcp``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from bot.adapters.console import ConsoleAdapter
from bot.app import SoloApp, freeze_startup_heap
from bot.datadir import PRIVATE_UMASK
from bot.web import WebListener
from bot.wiring import build_adapters, build_memory, build_understander, open_state, secret_value
from config import ConfigError, Settings, load_settings
from graph.timefmt import when_text
from memory.embeddings import StaticEmbeddings
from memory.models import utcnow
from memory.stores import Storage

log = logging.getLogger(__name__)
MIN_TOKEN = 16
"""The shortest ``SOLO_MCP_TOKEN`` ``solo mcp --http`` accepts."""


# Per-request logs of HTTP clients would print URLs that carry the Telegram token.
QUIET_LOGGERS = ("httpx", "httpcore", "alembic", "aiohttp.access", "slack_bolt", "slack_sdk",
                 "telegram")


def _configure_logging(*, to_file: Path | None, level: int) -> None:
    """JSON lines (structlog) for every stdlib logger, to ``to_file`` or stderr."""
    handler: logging.Handler
    if to_file is not None:
        to_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(to_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=structlog.processors.JSONRenderer(),
        foreign_pre_chain=[structlog.processors.TimeStamper(fmt="iso", utc=True),
                           structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.format_exc_info]))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


async def _open(settings: Settings, prog: str) -> SoloApp | None:
    """The app, or None after one line on stderr when the configuration cannot be built."""
    try:
        return await SoloApp.open(settings)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


async def run_chat(settings: Settings) -> int:
    """The terminal session: reconcile, show pending cards, then converse until EOF."""
    app = await _open(settings, "solo")
    if app is None:
        return 2
    try:
        console = ConsoleAdapter(timezone=app.timezone)
        if console.interactive:
            print("Solo OS — terminal session. /help lists commands; Ctrl-D quits.", flush=True)
        # Finish what a crash left and show what waits before reading the first line.
        await app.add_adapter(console, start=False)
        await app.reconcile()
        await app.jobs.housekeeping()
        await app.deliver(await app.director.pending_cards())
        await app.start_adapters()
        await app.jobs.schedule_daily_summary()
        scheduler = asyncio.create_task(app.jobs.run())
        await console.wait_closed()
        scheduler.cancel()
    finally:
        await app.aclose()
    return 0


HOUSEKEEPING_SECONDS = 30
PRUNE_EVERY_SWEEPS = 120  # hourly


async def run_serve(settings: Settings) -> int:
    """The service: adapters from config, reconciler, until SIGTERM/SIGINT."""
    if not settings.configured_adapters():
        print("solo serve: no chat adapter configured; set [telegram] token "
              "(SOLO_TELEGRAM__TOKEN) or [slack] bot_token (SOLO_SLACK__BOT_TOKEN)",
              file=sys.stderr)
        return 2
    try:
        adapters = build_adapters(settings, timezone=ZoneInfo(settings.operator.timezone))
    except ValueError as exc:
        print(f"solo serve: {exc}", file=sys.stderr)
        return 2
    app = await _open(settings, "solo serve")
    if app is None:
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    web: WebListener | None = None
    try:
        for adapter in adapters:
            await app.add_adapter(adapter, start=False)
        await app.reconcile()
        await app.jobs.housekeeping()
        try:
            await app.start_adapters()
        except Exception as exc:
            print(f"solo serve: could not start: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        await app.jobs.schedule_daily_summary()
        if settings.console.port and not secret_value(settings.console.password):
            # Secure by default: nothing listens until the operator sets a password.
            print("solo serve: [console] port is set but no password: the console and playbook "
                  "webhooks are off (set [console] password)", file=sys.stderr)
        elif settings.console.port:
            listener = WebListener(app, settings.console.host, settings.console.port,
                                   password=secret_value(settings.console.password))
            try:
                await listener.start()
            except OSError as exc:
                print(f"solo serve: cannot listen on {settings.console.host}:"
                      f"{settings.console.port} ([console] host, port): {exc}", file=sys.stderr)
                return 1
            web = listener
        scheduler = asyncio.create_task(app.jobs.run())
        watchdog = asyncio.create_task(app.watchdog.run())
        sweeps_task = asyncio.create_task(app.run_sweeps())
        freeze_startup_heap()
        # Said only once everything is in place: tests (and operators) wait for this line.
        log.info("serving %s", ", ".join(a.name for a in adapters))
        print(f"solo serve: running ({', '.join(a.name for a in adapters)})", file=sys.stderr,
              flush=True)
        sweeps = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), HOUSEKEEPING_SECONDS)
            except TimeoutError:
                sweeps += 1
                if sweeps % PRUNE_EVERY_SWEEPS == 0:
                    await app.jobs.housekeeping()
        scheduler.cancel()
        watchdog.cancel()
        sweeps_task.cancel()
    finally:
        if web is not None:
            await web.stop()
        await app.aclose()
    return 0


async def run_understand(settings: Settings, text: str) -> int:
    """Print what the configured understander makes of ``text`` (``-``: one message per stdin
    line), as one JSON object per message. With a model configured, calls are metered like any
    other; a failure prints ``{"error": ...}`` for that line."""
    lines = sys.stdin if text == "-" else [text]
    if not settings.llm.model:
        understander = build_understander(settings, StaticEmbeddings())
        for line in lines:
            intent = await understander.understand(line.rstrip("\n"))
            print(json.dumps(intent.to_dict(), ensure_ascii=False), flush=True)
        return 0
    app = await _open(settings, "solo understand")
    if app is None:
        return 2
    try:
        for number, line in enumerate(lines):
            context = {"plan_id": f"understand-{number}", "actor": "cli", "channel": "cli"}
            try:
                result = (await app.director.deps.understander.understand(
                    line.rstrip("\n"), context)).to_dict()
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(result, ensure_ascii=False), flush=True)
    finally:
        await app.aclose()
    return 0


async def run_doctor(settings: Settings) -> int:
    """Check storage, chat adapters, the model, speech to text, and the mail (IMAP and SMTP
    logins) and calendar (CalDAV) servers; say what to fix."""
    problems = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal problems
        problems += not ok
        print(f"{'ok ' if ok else 'FAIL'} {what}" + ("" if ok else f" — {fix}"), flush=True)

    app = None
    try:
        app = await SoloApp.open(settings)
        report(True, f"storage: {app.storage.backend}, schema up to date")
    except Exception as exc:
        report(False, "storage", f"{type(exc).__name__}: {exc}; check [storage] database_url")
    try:
        adapters = build_adapters(settings, timezone=ZoneInfo(settings.operator.timezone))
        names = ", ".join(a.name for a in adapters) or "none (solo chat only)"
        report(True, f"chat adapters configured: {names}")
    except ValueError as exc:
        report(False, "chat adapters", str(exc))
    report(True, f"understanding: {settings.llm.model or 'offline local understander'}")
    if app is not None:
        now = utcnow()
        zone = ZoneInfo(settings.operator.timezone)
        reads = app.storage.reads
        heard = {f"{channel}: last event": at
                 for channel, at in (await reads.last_event_by_channel()).items()}
        if app.jobs.mail is not None:
            heard["email: last mail read"] = await reads.last_mail_read()
        heard.update((f"{name}: last tool call", at)
                     for name, at in (await reads.last_call_by_connector()).items()
                     if name.startswith("mcp:"))
        for what, at in sorted(heard.items()):
            report(True, f"{what} {(now - at).total_seconds() / 60:.0f} min ago "
                         f"({when_text(at, zone)})" if at is not None else f"{what}: none yet")
        try:
            if hasattr(app.voice.transcriber, "_load"):
                await asyncio.to_thread(app.voice.transcriber._load)
                report(True, f"speech to text: Whisper {settings.voice.model}, weights verified")
            else:
                report(True, f"speech to text: {settings.voice.model} at "
                             f"{settings.voice.base_url or 'the provider default'}")
        except Exception as exc:
            report(False, "speech to text", f"{exc}; check [voice] model")
        checks = [("email", "[connectors.email] hosts, ports, security, username and "
                            "password"),
                  ("calendar", "[connectors.calendar] url, calendar, username and password")]
        checks += [(name, f"[connectors.mcp.{name.removeprefix('mcp:')}] command or url")
                   for name in sorted(app.director.deps.connectors) if name.startswith("mcp:")]
        for name, section in checks:
            connector = app.director.deps.connectors.get(name)
            if connector is None:
                report(True, f"{name}: not configured")
                continue
            found = await connector.check()
            report(not found, f"{name}: logins work" if not found else name,
                   "; ".join(found) + f" — check {section}")
        await app.aclose()
    return 1 if problems else 0


async def run_mcp(settings: Settings, *, port: int | None, host: str) -> int:
    """``solo mcp``: Solo OS as an MCP server (see :mod:`bot.mcp_server`) over stdio, or over
    streamable HTTP on ``host:port`` behind the bearer token in ``SOLO_MCP_TOKEN``."""
    # Imported here: the MCP SDK's import (0.7 s) is paid only by `solo mcp`.
    from bot.mcp_server import build_server as build_mcp_server
    from bot.mcp_server import require_token

    token = os.environ.get("SOLO_MCP_TOKEN", "")
    if port is not None and len(token) < MIN_TOKEN:
        print(f"solo mcp: --http needs SOLO_MCP_TOKEN set to a secret of at least {MIN_TOKEN} "
              "characters (every request must carry it as a bearer token)", file=sys.stderr)
        return 2
    async with AsyncExitStack() as stack:
        db = await open_state(settings, stack)
        memory = await build_memory(settings, db, stack)
        server = build_mcp_server(storage=Storage(db), memory=memory,
                                  timezone=ZoneInfo(settings.operator.timezone))
        if port is None:
            await server.run_stdio_async()
            return 0
        import uvicorn

        app = require_token(server.streamable_http_app(host=host), token)
        print(f"solo mcp: serving http://{host}:{port}/mcp", file=sys.stderr, flush=True)
        await uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                            log_level="warning")).serve()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``solo`` console script."""
    # Everything this process writes (databases, their WAL files, notes, logs, model files) is
    # readable by its owner only.
    os.umask(PRIVATE_UMASK)
    parser = argparse.ArgumentParser(prog="solo", description="Solo OS")
    parser.add_argument("--config", help="TOML config file (default: $SOLO_CONFIG)")
    # The same option on every subcommand, so `solo serve --config PATH` works as well as
    # `solo --config PATH serve`; SUPPRESS keeps a subcommand from resetting the earlier value.
    config_after = argparse.ArgumentParser(add_help=False)
    config_after.add_argument("--config", default=argparse.SUPPRESS,
                              help="TOML config file (default: $SOLO_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("chat", parents=[config_after], help="talk to Solo OS in this terminal")
    sub.add_parser("serve", parents=[config_after],
                   help="run the service with the configured chat adapters")
    sub.add_parser("doctor", parents=[config_after],
                   help="check storage, adapters, model and speech to text")
    understand = sub.add_parser("understand", parents=[config_after],
                                help="print the intent of TEXT as JSON")
    understand.add_argument("text", help="a message, or - to read one per line from stdin")
    mcp = sub.add_parser("mcp", parents=[config_after],
                         help="serve Solo OS to outside agents over MCP (stdio by default)")
    mcp.add_argument("--http", type=int, metavar="PORT",
                     help="serve streamable HTTP on PORT instead (needs SOLO_MCP_TOKEN)")
    mcp.add_argument("--host", default="127.0.0.1", help="with --http (default 127.0.0.1)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"solo: {exc}", file=sys.stderr)
        return 2
    if args.command == "understand":
        return asyncio.run(run_understand(settings, args.text))
    if args.command == "mcp":
        # stdout is the protocol's channel over stdio: the log goes to a file.
        _configure_logging(to_file=settings.storage.data_dir / "solo-mcp.log",
                           level=logging.INFO)
        return asyncio.run(run_mcp(settings, port=args.http, host=args.host))
    if args.command == "doctor":
        _configure_logging(to_file=None, level=logging.WARNING)
        return asyncio.run(run_doctor(settings))
    if args.command == "chat":
        _configure_logging(to_file=settings.storage.data_dir / "solo.log", level=logging.INFO)
        try:
            return asyncio.run(run_chat(settings))
        except KeyboardInterrupt:
            return 130
    _configure_logging(to_file=None, level=logging.INFO)
    return asyncio.run(run_serve(settings))


if __name__ == "__main__":
    sys.exit(main())
