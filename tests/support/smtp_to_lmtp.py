"""A real SMTP server for tests: aiosmtpd with AUTH, handing every accepted message to Dovecot
over LMTP before it answers ``250`` (so a mail is in the recipient's INBOX when the client hears
that it was accepted — and also when the client never hears it).

Run as ``python -m tests.support.smtp_to_lmtp --port P --lmtp-port L --users FILE``; ``FILE``
holds ``user:{PLAIN}password`` lines (Dovecot's passwd-file). It prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import sys
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class LmtpDelivery:
    """aiosmtpd handler: deliver to each local recipient through Dovecot's LMTP listener."""

    def __init__(self, lmtp_port: int) -> None:
        self.lmtp_port = lmtp_port

    async def handle_DATA(self, server, session, envelope) -> str:
        """Deliver, then answer; a failed delivery is a temporary failure the client retries."""
        try:
            await asyncio.to_thread(self._deliver, envelope)
        except (OSError, smtplib.SMTPException) as exc:
            return f"451 delivery failed: {exc}"
        return "250 OK delivered"

    def _deliver(self, envelope) -> None:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=30) as lmtp:
            # The stdlib LMTP client reads one reply after DATA: one transaction per recipient.
            for rcpt in envelope.rcpt_tos:
                lmtp.sendmail(envelope.mail_from, [rcpt.split("@")[0]], envelope.content)


def authenticator(users_file: Path):
    """Check AUTH PLAIN/LOGIN against the rig's users (the file is read on every login: the
    rig adds users while the server runs)."""
    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        users = {}
        for line in users_file.read_text().splitlines():
            name, _, secret = line.partition(":")
            users[name] = secret.split(":")[0].removeprefix("{PLAIN}")
        user, password = auth_data.login.decode(), auth_data.password.decode()
        return AuthResult(success=users.get(user.split("@")[0]) == password, handled=False)
    return check


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lmtp-port", type=int, required=True)
    parser.add_argument("--users", type=Path, required=True)
    args = parser.parse_args()
    controller = Controller(LmtpDelivery(args.lmtp_port), hostname="127.0.0.1", port=args.port,
                            authenticator=authenticator(args.users), auth_require_tls=False,
                            auth_required=True, auth_exclude_mechanism=["LOGIN"])
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
