"""Reading new mail: fetch by UID from where the last poll stopped, store each message once with
its provenance, triage it, index it into memory, and tell the operator about mail that needs a
reply (with a ``Draft reply`` button).

Mail is data. This module has no connector that acts, and nothing it reads decides anything but
a triage label; a reply is only ever drafted when the operator presses the button or asks, and
then it is a step that waits for approval like any mail.

Health: a refused login is said once (until it works again); a server that does not answer is
retried with backoff (doubling from ``poll_seconds`` up to an hour) and said once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from connectors.base import AuthError, TransientError
from connectors.email import EmailConnector, is_own_message_id
from connectors.mailbox import FetchedMail
from graph.events import Reply
from graph.triage import triage
from memory.knowledge import Memory
from memory.models import utcnow
from memory.stores import Storage

BATCH = 50
MAX_BACKOFF = timedelta(hours=1)
FIRST_POLL = 20
"""On the very first poll only the newest messages are read: an old mailbox is not news."""


def memory_text(mail: FetchedMail) -> str:
    """How a mail is indexed (marked as mail from outside, so context shows where it came
    from)."""
    sender = f"{mail.from_name} <{mail.from_addr}>" if mail.from_name else mail.from_addr
    return f"Mail from {sender}, subject {mail.subject!r}:\n{mail.text[:1500]}"


class MailInbox:
    """Polls the email connector's INBOX.

    Args:
        storage: where mail and connector health are kept.
        email: the email connector (only its mailbox is read here).
        memory: where mail is indexed (None: not indexed).
        rules: the operator's triage rules (sender pattern → class).
        poll_seconds: the normal interval; the backoff starts from it.
        on_mail: called with each new mail that is not our own, before it is stored (so a
            crash in between re-reads it and calls again: the callee must be idempotent, as
            playbook runs keyed by the message are).
    """

    def __init__(self, *, storage: Storage, email: EmailConnector, memory: Memory | None,
                 rules: Mapping[str, str], poll_seconds: float,
                 on_mail: Callable[[FetchedMail], Awaitable[None]] | None = None) -> None:
        self.storage = storage
        self.email = email
        self.memory = memory
        self.rules = dict(rules)
        self.poll_seconds = poll_seconds
        self.on_mail = on_mail
        self.fetched = 0
        """How many messages the last poll read (an event for the watchdog when not 0)."""

    async def due(self, now: datetime | None = None) -> bool:
        """Whether a poll should run now (not while backing off after a failure)."""
        health = await self.storage.health.get(self.email.name)
        return health is None or health.retry_at is None or (now or utcnow()) >= health.retry_at

    async def poll(self, targets: list[tuple[str, str]]) -> list[Reply]:
        """Read what is new; the replies to send to ``targets`` (notices, health changes)."""
        notices: list[tuple[int, FetchedMail]] = []
        self.fetched = 0
        try:
            while True:
                validity, after = await self.storage.mail.cursor()
                if validity is None:
                    validity, after = await self._first_cursor()
                validity, batch = await self.email.mailbox.fetch_new(
                    uidvalidity=validity, after_uid=after, limit=BATCH)
                self.fetched += len(batch)
                for mail in batch:
                    stored = await self._store(mail)
                    if stored is not None:
                        notices.append((stored, mail))
                if len(batch) < BATCH:
                    break
        except AuthError as exc:
            return await self._announce(targets, "auth", str(exc), notices)
        except TransientError as exc:
            return await self._announce(targets, "down", str(exc), notices)
        return await self._announce(targets, "ok", "", notices)

    async def _first_cursor(self) -> tuple[int | None, int]:
        validity, newest = await self.email.mailbox.newest_uids(FIRST_POLL)
        return validity, max(newest - 1, 0) if newest else 0

    async def _store(self, mail: FetchedMail) -> int | None:
        """Store and index one message; its id if it needs a reply and is new."""
        own = is_own_message_id(mail.message_id)
        if self.on_mail is not None and not own:
            await self.on_mail(mail)
        verdict = triage(mail, self.rules)
        mail_id = await self.storage.mail.add({
            "folder": mail.folder, "uidvalidity": mail.uidvalidity, "uid": mail.uid,
            "message_id": mail.message_id, "from_name": mail.from_name,
            "from_addr": mail.from_addr, "recipients": list(mail.to), "subject": mail.subject,
            "sent_at": mail.sent_at, "body": mail.text, "references": list(mail.references),
            "triage": "ignore" if own else verdict.label, "triage_by": "own" if own else verdict.by,
            "notified": False})
        if mail_id is None or own:
            return None
        if self.memory is not None and verdict.label != "ignore":
            await self.memory.add([{
                "id": f"mail:{mail.folder}:{mail.uidvalidity}:{mail.uid}", "kind": "mail",
                "text": memory_text(mail), "created_at": mail.sent_at or utcnow(),
                "source": f"imap:{mail.folder}/{mail.uidvalidity}/{mail.uid} "
                          f"{mail.message_id}"}])
        return mail_id if verdict.label == "needs_reply" else None

    async def _announce(self, targets: list[tuple[str, str]], state: str, detail: str,
                        notices: list[tuple[int, FetchedMail]]) -> list[Reply]:
        """One notice per new mail needing a reply, and the health change if there is one."""
        replies = []
        for mail_id, mail in notices:
            if not await self.storage.mail.mark_notified(mail_id):
                continue
            text = (f"New mail needing a reply: #{mail_id} from "
                    f"{mail.from_name or mail.from_addr}: {mail.subject or '(no subject)'}")
            replies += [Reply("choice", channel, chat, text=text,
                              choices=[("Draft reply", f"run:/reply {mail_id}")])
                        for channel, chat in targets]
        retry_at = None
        if state != "ok":
            previous = await self.storage.health.get(self.email.name)
            failures = (previous.failures if previous and previous.state != "ok" else 0) + 1
            retry_at = utcnow() + min(timedelta(seconds=self.poll_seconds * 2 ** failures),
                                      MAX_BACKOFF)
        if await self.storage.health.record(self.email.name, state=state, detail=detail,
                                            retry_at=retry_at):
            text = {"auth": f"The mail server refused the login: {detail}. Fix [connectors.email]"
                            " username/password (solo doctor checks them); I keep trying, "
                            "quietly.",
                    "down": f"The mail server is not answering ({detail}); I keep trying with "
                            "backoff and will say when it works again.",
                    "ok": "Mail works again."}[state]
            replies += [Reply("message", channel, chat, text=text) for channel, chat in targets]
        return replies
