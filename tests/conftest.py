"""Shared fixtures: the loopback-only guard, settings in a temporary directory, the app on
both storage backends, and a webhook receiver."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest
import stamina
import time_machine

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from memory.db import open_database
from memory.embeddings import StaticEmbeddings
from memory.knowledge import Memory
from memory.vectors import SqliteNumpyIndex
from tests.fakes.openai import FakeOpenAI
from tests.fakes.webhooks import WebhookReceiver
from tests.support import local_model as local
from tests.support.mailrig import MailRig

POSTGRES_URL = os.environ.get("SOLO_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("SOLO_REQUIRE_POSTGRES") == "1"
REQUIRE_MAIL = os.environ.get("SOLO_REQUIRE_MAIL") == "1"
REQUIRE_LOCAL_MODEL = os.environ.get("SOLO_REQUIRE_LOCAL_MODEL") == "1"
FILESYSTEM_SERVER = os.environ.get("SOLO_TEST_MCP_FILESYSTEM", "")
REQUIRE_NODE = os.environ.get("SOLO_REQUIRE_NODE") == "1"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_loopback(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                raise ConnectionRefusedError(
                    f"tests may only connect to loopback, not {host!r}") from None
            return
        if not ip.is_loopback:
            raise ConnectionRefusedError(f"tests may only connect to loopback, not {host}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_loopback(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_loopback(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> None:
    """Fail any connection to a non-loopback address (asyncio included: it uses these calls)."""
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(autouse=True)
def fast_retries() -> None:
    """Keep stamina's real retry loop but without real waiting."""
    stamina.set_testing(True, attempts=5, cap=True)
    yield
    stamina.set_testing(False)


CLOCK_START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """The clock pinned for the whole test at ``CLOCK_START`` (a Monday), set-up and teardown
    included; the test moves it with ``clock.move_to(...)``. Request it before any fixture that
    opens the app, so no part of the test reads the real date."""
    with time_machine.travel(CLOCK_START, tick=False) as traveller:
        yield traveller


def backends() -> list:
    """SQLite always; PostgreSQL when a URL is given (a skip with the reason otherwise, and a
    failure instead of a skip when ``SOLO_REQUIRE_POSTGRES=1``, as on CI)."""
    reason = "PostgreSQL not available: set SOLO_TEST_POSTGRES_URL (.ci/run does)"
    pg = pytest.param("postgresql", marks=pytest.mark.postgres, id="postgresql")
    if not POSTGRES_URL and not REQUIRE_POSTGRES:
        pg = pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.skip(reason)],
                          id="postgresql")
    return ["sqlite", pg]


async def fresh_postgres_url(name: str) -> str:
    """A new, empty database on the test server, named ``name``."""
    if not POSTGRES_URL:
        pytest.fail("SOLO_REQUIRE_POSTGRES=1 but SOLO_TEST_POSTGRES_URL is not set")
    import psycopg

    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(params=backends())
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    return await fresh_postgres_url(f"solo_test_{os.getpid()}_{abs(hash(request.node.nodeid))}")


@pytest.fixture
async def memory(database_url: str) -> AsyncIterator[Memory]:
    """Memory (facts, notes, vectors) on a migrated empty database, on each backend."""
    db = open_database(database_url)
    await db.migrate()
    embeddings = StaticEmbeddings()
    yield Memory(db=db, index=SqliteNumpyIndex(db, dims=embeddings.dims), embeddings=embeddings)
    await db.aclose()


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI-compatible model server on 127.0.0.1."""
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def servers() -> Iterator[MailRig]:
    """Radicale, and real Dovecot (IMAP + LMTP) with an SMTP server delivering into it where
    Dovecot is installed, for the whole session; tests take fresh users (``add_user``)."""
    rig = MailRig().start()
    yield rig
    rig.stop()


@pytest.fixture
def caldav_rig(servers: MailRig) -> MailRig:
    """The rig, for tests that need only the calendar server."""
    return servers


def unavailable(message: str, *, required: bool) -> NoReturn:
    """A server a test needs is not here: skip saying ``message``, or fail where CI requires
    it (a skip there would hide that the test never ran)."""
    if required:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def mail_rig(servers: MailRig) -> MailRig:
    """The rig with its mail servers running: skipped (saying why) where Dovecot is not
    installed, failing instead where ``SOLO_REQUIRE_MAIL=1`` (CI)."""
    if not servers.mail:
        message = ("Dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd; "
                   ".ci/run does it): mail tests cannot run")
        unavailable(message, required=REQUIRE_MAIL)
    return servers


@pytest.fixture
def filesystem_server() -> str:
    """The npm reference server ``@modelcontextprotocol/server-filesystem`` (its executable, from
    ``SOLO_TEST_MCP_FILESYSTEM``; ``.ci/run`` installs it with npm): skipped (saying why) where it
    is not installed, failing instead where ``SOLO_REQUIRE_NODE=1`` (CI, which installs it)."""
    if not FILESYSTEM_SERVER or not Path(FILESYSTEM_SERVER).exists():
        message = ("the npm MCP reference server is not installed: npm install "
                   "@modelcontextprotocol/server-filesystem and set SOLO_TEST_MCP_FILESYSTEM to "
                   "its node_modules/.bin/mcp-server-filesystem (.ci/run does)")
        unavailable(message, required=REQUIRE_NODE)
    return FILESYSTEM_SERVER


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a real small model (Qwen2.5-Coder 1.5B Instruct, GGUF) behind
    llama-cpp-python's server: skipped (saying why) where ``.ci/local_model.sh`` has not
    prepared it, failing instead where ``SOLO_REQUIRE_LOCAL_MODEL=1`` (CI)."""
    if not (local.PYTHON and local.MODEL):
        message = ("no local model server: run .ci/local_model.sh and set "
                   "SOLO_TEST_LLAMA_PYTHON / SOLO_TEST_LLAMA_MODEL (.ci/run does)")
        unavailable(message, required=REQUIRE_LOCAL_MODEL)
    proc, base_url = local.start_model_server(
        local.PYTHON, local.MODEL, tmp_path_factory.mktemp("model") / "server.log")
    yield base_url
    proc.kill()
    proc.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1."""
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, receiver: WebhookReceiver) -> Settings:
    """Settings for one test: its own data dir and database, webhook ``crm`` → the receiver."""
    return Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data", "database_url": database_url},
        "connectors": {"webhooks": {"crm": {"url": receiver.url, "risk": "high"}},
                       "retry": {"attempts": 5}},
    })


@pytest.fixture
async def chat(settings: Settings) -> AsyncIterator[InMemoryAdapter]:
    """A running app with an in-memory adapter whose operator is ``operator``."""
    app = await SoloApp.open(settings)
    adapter = InMemoryAdapter()
    await app.add_adapter(adapter, operators={"operator"})
    adapter.app = app
    yield adapter
    await app.aclose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The crash campaigns and the injection corpus first (order kept otherwise): they are the
    longest files, and with the suite spread over cores (``dev.py test``) a long file handed out
    last would run alone at the end."""
    items.sort(key=lambda item: not (item.get_closest_marker("crash")
                                     or item.get_closest_marker("corpus")))
