"""One IMAP mailbox: find a message by Message-ID, file a sent message in Sent exactly once, and
fetch new mail by UID (resumable; nothing fetched twice).

imapclient is synchronous: every operation opens its own connection in a worker thread, so a
hung server costs one thread and a timeout, never the event loop, and no connection state
outlives an operation (a crash or a dropped connection leaves nothing half-open to reuse). The
socket timeout bounds each read, not a whole operation: a server that answers a byte at a time
would never trip it, so an operation also has a deadline (:data:`DEADLINE_TIMEOUTS` timeouts),
past which its socket is shut under the worker thread (even while it reads the greeting: the
socket is handed over as it is opened) and the operation fails as transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Literal, TypeVar

from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import IMAPClientError, LoginError

from connectors.base import AuthError, TransientError

T = TypeVar("T")
Security = Literal["ssl", "starttls", "none"]
MAX_BODY = 20_000
DEADLINE_TIMEOUTS = 4
"""How many socket timeouts one whole operation (connect, login, its work, logout) may take."""
_opening = threading.local()
"""Per worker thread: the list its connection's sockets go to as they are opened."""


def _handed_over(sock: socket.socket) -> socket.socket:
    getattr(_opening, "sockets", []).append(sock)
    return sock


class _PlainIMAP4(imap4.IMAP4WithTimeout):
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return _handed_over(super()._create_socket(timeout))


class _TlsIMAP4(tls.IMAP4_TLS):
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return _handed_over(super()._create_socket(timeout))


class _Client(IMAPClient):
    """imapclient's client, its socket handed over as soon as it is opened (imapclient 4.1's
    ``_create_IMAP4``, without the ``stream`` case this module never uses)."""

    def _create_IMAP4(self) -> imap4.IMAP4WithTimeout | tls.IMAP4_TLS:
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _TlsIMAP4(self.host, self.port, self.ssl_context, timeout)
        return _PlainIMAP4(self.host, self.port, timeout)


@dataclass(frozen=True, slots=True)
class MailAccount:
    """Where the operator's mail lives and how to log in (IMAP and SMTP share the login).

    Attributes:
        security: ``ssl`` (implicit TLS), ``starttls`` or ``none`` (loopback test servers).
        address: the operator's own address: From of every mail sent, and the envelope
            recipient of the copy that proves a send reached the server.
    """

    imap_host: str
    imap_port: int
    smtp_host: str
    smtp_port: int
    security: Security
    username: str
    password: str
    address: str
    sent_folder: str = "Sent"
    timeout: float = 30.0

    @property
    def domain(self) -> str:
        """The part of ``address`` after the ``@``."""
        return self.address.rpartition("@")[2] or "localhost"


@dataclass(frozen=True, slots=True)
class FetchedMail:
    """One message read from the mailbox (as data: nothing in it is ever an instruction).

    Attributes:
        uid: its IMAP UID in ``folder`` (with ``uidvalidity``, the durable position).
        bulk: it carries a mailing-list or automated-sender header.
    """

    folder: str
    uidvalidity: int
    uid: int
    message_id: str
    from_name: str
    from_addr: str
    to: tuple[str, ...]
    subject: str
    sent_at: datetime | None
    text: str
    references: tuple[str, ...] = ()
    bulk: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def parse_mail(raw: bytes, *, folder: str = "INBOX", uidvalidity: int = 0,
               uid: int = 0) -> FetchedMail:
    """A raw RFC 5322 message as :class:`FetchedMail` (plain text preferred over HTML)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    name, addr = parseaddr(str(message.get("From", "")))
    to = tuple(a for _, a in getaddresses([str(v) for v in message.get_all("To", [])]) if a)
    try:
        sent_at = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
        if sent_at is not None and sent_at.tzinfo is None:
            sent_at = sent_at.replace(tzinfo=UTC)
    except (TypeError, ValueError):
        sent_at = None
    references = tuple(str(message.get("References", "")).split())
    headers = {k.lower(): str(v)[:300] for k, v in message.items()
               if k.lower() in ("list-unsubscribe", "list-id", "precedence", "auto-submitted",
                                "reply-to", "x-mailer", "in-reply-to")}
    bulk = any(h in headers for h in ("list-unsubscribe", "list-id")) or \
        headers.get("precedence", "").lower() in ("bulk", "list", "junk") or \
        headers.get("auto-submitted", "no").lower() != "no"
    return FetchedMail(folder=folder, uidvalidity=uidvalidity, uid=uid,
                       message_id=str(message.get("Message-ID", "")).strip(),
                       from_name=name, from_addr=addr.lower(), to=to,
                       subject=str(message.get("Subject", "")).strip(), sent_at=sent_at,
                       text=body_text(message)[:MAX_BODY], references=references, bulk=bulk,
                       headers=headers)


def body_text(message: EmailMessage) -> str:
    """The readable text of a message: its text/plain part, else its HTML without tags."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, ValueError):
        text = part.get_payload(decode=True).decode("utf-8", "replace")
    if part.get_content_subtype() == "html":
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
        text = re.sub(r"<[^>]+>", " ", text)
        text = re.sub(r"[ \t]+", " ", text)
    return text.strip()


class Mailbox:
    """IMAP operations on one account.

    Args:
        account: where and how to log in.
    """

    def __init__(self, account: MailAccount) -> None:
        self.account = account

    async def _run(self, work: Callable[[IMAPClient], T]) -> T:
        account = self.account
        opened: list[socket.socket] = []  # a STARTTLS socket replaces the first: both are kept
        task = asyncio.ensure_future(asyncio.to_thread(self._session, work, opened))
        deadline = account.timeout * DEADLINE_TIMEOUTS
        done, _ = await asyncio.wait({task}, timeout=deadline)
        if task in done:
            return task.result()
        # Too slow to time out: shut the socket so the worker's read fails and the thread ends.
        task.add_done_callback(lambda ended: ended.cancelled() or ended.exception())
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise TransientError(f"IMAP {account.imap_host}:{account.imap_port}: no whole answer "
                             f"within {deadline:g} s")

    def _session(self, work: Callable[[IMAPClient], T], opened: list[socket.socket]) -> T:
        account = self.account
        _opening.sockets = opened
        try:
            client = _Client(account.imap_host, port=account.imap_port,
                                ssl=account.security == "ssl", timeout=account.timeout,
                                ssl_context=ssl.create_default_context())
        except (OSError, IMAPClientError) as exc:
            raise TransientError(f"IMAP {account.imap_host}:{account.imap_port}: {exc}") from exc
        try:
            if account.security == "starttls":
                client.starttls(ssl.create_default_context())
                opened.append(client.socket())
            try:
                client.login(account.username, account.password)
            except LoginError as exc:
                raise AuthError(f"IMAP login refused for {account.username}: {exc}") from exc
            return work(client)
        except (TimeoutError, OSError, IMAPClientError) as exc:
            raise TransientError(f"IMAP: {type(exc).__name__}: {exc}") from exc
        finally:
            try:
                client.logout()
            except (OSError, IMAPClientError):
                pass

    async def check_login(self) -> None:
        """Log in and out (``solo doctor``); raises :class:`AuthError` or
        :class:`TransientError`."""
        def work(client: IMAPClient) -> None:
            client.select_folder("INBOX", readonly=True)
        await self._run(work)

    async def locate(self, message_id: str) -> list[tuple[str, int]]:
        """``(folder, uid)`` of every copy of ``message_id`` in Sent and INBOX."""
        def work(client: IMAPClient) -> list[tuple[str, int]]:
            return _find(client, message_id, (self.account.sent_folder, "INBOX"))
        return await self._run(work)

    async def file_sent(self, message_id: str, raw: bytes | None) -> bool:
        """Make Sent hold exactly one copy of ``message_id``: keep one already there, else move
        the copy delivered to the operator's own INBOX, else append ``raw``. True when a copy
        exists afterwards."""
        sent = self.account.sent_folder

        def work(client: IMAPClient) -> bool:
            if _find(client, message_id, (sent,)):
                return True
            inbox = _find(client, message_id, ("INBOX",))
            if inbox:
                client.select_folder("INBOX")
                uids = [uid for _, uid in inbox]
                client.add_flags(uids, [b"\\Seen"])
                if client.has_capability("MOVE"):
                    client.move(uids[:1], sent)
                    if uids[1:]:
                        client.delete_messages(uids[1:])
                else:
                    client.copy(uids[:1], sent)
                    client.delete_messages(uids)
                client.expunge()
                return True
            if raw is None:
                return False
            client.append(sent, raw, flags=[b"\\Seen"])
            return True
        return await self._run(work)

    async def fetch_new(self, *, folder: str = "INBOX", uidvalidity: int | None,
                        after_uid: int, limit: int = 50) -> tuple[int, list[FetchedMail]]:
        """Messages in ``folder`` with a UID above ``after_uid`` (all of them when the folder's
        UIDVALIDITY is not ``uidvalidity``), oldest first, at most ``limit``; read with PEEK, so
        nothing is marked seen. Returns the folder's UIDVALIDITY and the messages."""
        def work(client: IMAPClient) -> tuple[int, list[FetchedMail]]:
            info = client.select_folder(folder, readonly=True)
            validity = int(info[b"UIDVALIDITY"])
            start = after_uid if validity == uidvalidity else 0
            # "N:*" always matches the newest message, even below N: filter again.
            uids = sorted(u for u in client.search(["UID", f"{start + 1}:*"]) if u > start)
            uids = uids[:limit]
            if not uids:
                return validity, []
            fetched = client.fetch(uids, ["BODY.PEEK[]"])
            return validity, [parse_mail(fetched[uid][b"BODY[]"], folder=folder,
                                         uidvalidity=validity, uid=uid)
                              for uid in uids if uid in fetched]
        return await self._run(work)

    async def newest_uids(self, count: int, folder: str = "INBOX") -> tuple[int, int]:
        """The folder's UIDVALIDITY and the lowest UID among its ``count`` newest messages
        (0 when it is empty): where a first read starts."""
        def work(client: IMAPClient) -> tuple[int, int]:
            info = client.select_folder(folder, readonly=True)
            uids = sorted(client.search(["ALL"]))[-count:]
            return int(info[b"UIDVALIDITY"]), uids[0] if uids else 0
        return await self._run(work)


def _find(client: IMAPClient, message_id: str, folders: tuple[str, ...]
          ) -> list[tuple[str, int]]:
    found = []
    for folder in dict.fromkeys(folders):
        client.select_folder(folder, readonly=True)
        found += [(folder, uid) for uid in client.search(["HEADER", "Message-ID", message_id])]
    return found
