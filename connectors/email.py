"""Email over SMTP, exactly once: the Message-ID derives from the idempotency key, every send
also goes to the operator's own address, and Sent keeps one copy.

SMTP cannot deduplicate, and a connection that drops after the server accepted a message looks
to the client exactly like one that dropped before. What makes the difference observable is the
extra envelope recipient: the server delivers a copy to the operator's own mailbox (never shown
to the other recipients: it is not a header). Before every attempt, after an ambiguous failure
and on reconcile after a crash, the connector looks for the Message-ID in Sent and INBOX; found
means sent, and the copy is moved into Sent. So a retry or a restart sends again only when the
server never took the message. (With a server that delivers later than it answers, a reconcile
that runs within that delay could still miss the copy; ``settle_seconds`` covers the ordinary
case — see docs/connectors.md.)
"""

from __future__ import annotations

import asyncio
import hashlib
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses
from typing import Any

import aiosmtplib

from connectors.base import (
    Action,
    AuthError,
    Connector,
    Diff,
    PermanentError,
    Receipt,
    TransientError,
)
from connectors.mailbox import MailAccount, Mailbox
from connectors.retry import RetryPolicy

SEND_KIND = "email.send"
PREVIEW_CHARS = 600
MAX_BODY = 100_000


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the mail sent under ``idempotency_key``: the same on every retry and
    after every restart, and recognisably ours (``<solo.…@domain>``)."""
    return f"<solo.{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def is_own_message_id(message_id: str) -> bool:
    """Whether a Message-ID is one :func:`message_id_for` made (our own sent copy)."""
    return message_id.strip().startswith("<solo.")


def addresses(value: Any) -> list[str]:
    """A list of plain addresses from a string (``"a@x, B <b@y>"``) or a list of them."""
    items = [value] if isinstance(value, str) else list(value or [])
    return [addr for _, addr in getaddresses([str(v) for v in items]) if "@" in addr]


class EmailConnector(Connector):
    """Send mail as the operator (``email.send``: a new mail or a reply in a thread).

    Args:
        account: the mailbox (IMAP for Sent and the own copy, SMTP to send).
        retry: the retry policy for transient failures.
        settle_seconds: how long to look for the own copy after a send whose answer was lost.
    """

    name = "email"

    def __init__(self, *, account: MailAccount, retry: RetryPolicy,
                 settle_seconds: float = 5.0) -> None:
        self.account = account
        self.mailbox = Mailbox(account)
        self._retry = retry
        self._settle = settle_seconds

    def action(self, *, to: list[str], subject: str, body: str, cc: list[str] | None = None,
               in_reply_to: str = "", references: list[str] | None = None,
               quote: str = "") -> Action:
        """The action that sends this mail (a reply when ``in_reply_to`` is set)."""
        args: dict[str, Any] = {"to": to, "cc": cc or [], "subject": subject, "body": body}
        if in_reply_to:
            args |= {"in_reply_to": in_reply_to, "references": references or [in_reply_to],
                     "quote": quote}
        return Action(kind=SEND_KIND, connector=self.name, args=args)

    def _checked(self, action: Action) -> dict[str, Any]:
        if action.kind != SEND_KIND:
            raise PermanentError(f"email cannot perform {action.kind}")
        args = action.args
        to = addresses(args.get("to"))
        if not to:
            raise PermanentError("the mail has no valid recipient address")
        body = str(args.get("body") or "")
        if not body.strip():
            raise PermanentError("the mail is empty")
        if len(body) > MAX_BODY:
            raise PermanentError(f"the mail is {len(body)} characters; the limit is {MAX_BODY}")
        return {**args, "to": to, "cc": addresses(args.get("cc")),
                "subject": str(args.get("subject") or "").strip() or "(no subject)"}

    async def preview(self, action: Action) -> Diff:
        """The mail itself: From, To, Cc, Subject, the thread it answers, the body."""
        args = self._checked(action)
        body = args["body"]
        if len(body) > PREVIEW_CHARS:
            body = body[:PREVIEW_CHARS].rstrip() + \
                f"\n… ({len(args['body']) - PREVIEW_CHARS} more characters not shown)"
        fields: list[tuple[str, str | None, str]] = [
            ("From", None, self.account.address), ("To", None, ", ".join(args["to"]))]
        if args["cc"]:
            fields.append(("Cc", None, ", ".join(args["cc"])))
        fields.append(("Subject", None, args["subject"]))
        if args.get("in_reply_to"):
            fields.append(("In reply to", None, args["in_reply_to"]))
        fields.append(("Body", None, body))
        title = "Reply to " if args.get("in_reply_to") else "Email to "
        return Diff(title=title + ", ".join(args["to"]), fields=tuple(fields))

    def message(self, action: Action, idempotency_key: str) -> EmailMessage:
        """The mail ``action`` sends under ``idempotency_key`` (Message-ID from the key)."""
        args = self._checked(action)
        message = EmailMessage()
        message["From"] = formataddr(("", self.account.address))
        message["To"] = ", ".join(args["to"])
        if args["cc"]:
            message["Cc"] = ", ".join(args["cc"])
        message["Subject"] = args["subject"]
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = message_id_for(idempotency_key, self.account.domain)
        body = args["body"].rstrip() + "\n"
        if args.get("in_reply_to"):
            message["In-Reply-To"] = args["in_reply_to"]
            message["References"] = " ".join(args.get("references") or [args["in_reply_to"]])
            if args.get("quote"):
                quoted = "\n".join(f"> {line}" for line in str(args["quote"]).splitlines())
                body += f"\n{quoted}\n"
        message.set_content(body)
        return message

    async def execute(self, action: Action, *, idempotency_key: str) -> Receipt:
        """Send once under ``idempotency_key`` (retries look for the sent copy first)."""
        message = self.message(action, idempotency_key)
        return await self._retry.run(lambda: self._send_once(message, idempotency_key))

    def _receipt(self, message: EmailMessage, key: str, *, reconciled: bool) -> Receipt:
        return Receipt.for_key(connector=self.name, idempotency_key=key,
                               summary=f'emailed {message["To"]}: "{message["Subject"]}"',
                               ref=str(message["Message-ID"]), reconciled=reconciled)

    async def _send_once(self, message: EmailMessage, key: str) -> Receipt:
        message_id = str(message["Message-ID"])
        raw = message.as_bytes()
        if await self.mailbox.locate(message_id):
            await self.mailbox.file_sent(message_id, raw)
            return self._receipt(message, key, reconciled=True)
        recipients = [*addresses([message["To"], message.get("Cc", "")]), self.account.address]
        try:
            await self._smtp_send(message, recipients)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
                aiosmtplib.SMTPReadTimeoutError, ConnectionError) as exc:
            # The server may have taken the message before the connection went: look for the
            # copy it delivered to the operator before deciding to send again.
            if await self._copy_arrives(message_id):
                await self.mailbox.file_sent(message_id, raw)
                return self._receipt(message, key, reconciled=True)
            raise TransientError(f"SMTP: {type(exc).__name__}: {exc}") from exc
        await self.mailbox.file_sent(message_id, raw)
        return self._receipt(message, key, reconciled=False)

    async def _smtp_send(self, message: EmailMessage, recipients: list[str]) -> None:
        account = self.account
        try:
            await aiosmtplib.send(
                message, sender=account.address, recipients=recipients,
                hostname=account.smtp_host, port=account.smtp_port,
                username=account.username or None, password=account.password or None,
                use_tls=account.security == "ssl", start_tls=account.security == "starttls",
                timeout=account.timeout)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AuthError(f"SMTP login refused for {account.username}: {exc.message}") from exc
        except aiosmtplib.SMTPConnectError as exc:
            raise TransientError(f"SMTP {account.smtp_host}:{account.smtp_port}: {exc}") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(r.recipient for r in exc.recipients)
            raise PermanentError(f"the server refused the recipients: {refused}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise TransientError(f"SMTP {exc.code}: {exc.message}") from exc
            raise PermanentError(f"SMTP {exc.code}: {exc.message}") from exc
        except OSError as exc:
            raise TransientError(f"SMTP: {type(exc).__name__}: {exc}") from exc

    async def _copy_arrives(self, message_id: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle
        while True:
            try:
                if await self.mailbox.locate(message_id):
                    return True
            except TransientError:
                pass
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.25)

    async def reconcile(self, idempotency_key: str,
                        action: Action | None = None) -> Receipt | None:
        """The receipt if the mail keyed ``idempotency_key`` reached the server (a copy in Sent
        or in the operator's INBOX, then filed in Sent), else ``None``."""
        message_id = message_id_for(idempotency_key, self.account.domain)
        found = await self.mailbox.locate(message_id)
        if not found and not await self._copy_arrives(message_id):
            return None
        await self.mailbox.file_sent(message_id, None)
        return Receipt.for_key(connector=self.name, idempotency_key=idempotency_key,
                               summary=f"mail {message_id} was already sent",
                               ref=message_id, reconciled=True)

    async def check(self) -> list[str]:
        """Problems with the IMAP and SMTP logins, for ``solo doctor`` (empty: both work)."""
        problems = []
        try:
            await self.mailbox.check_login()
        except (AuthError, TransientError) as exc:
            problems.append(f"IMAP: {exc}")
        account = self.account
        try:
            smtp = aiosmtplib.SMTP(hostname=account.smtp_host, port=account.smtp_port,
                                   use_tls=account.security == "ssl",
                                   start_tls=account.security == "starttls",
                                   timeout=account.timeout)
            async with smtp:
                if account.username:
                    await smtp.login(account.username, account.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            problems.append(f"SMTP: login refused for {account.username}: {exc.message}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            problems.append(f"SMTP {account.smtp_host}:{account.smtp_port}: {exc}")
        return problems
