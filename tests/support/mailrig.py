"""Real mail and calendar servers for tests, on 127.0.0.1 with throwaway state.

- Dovecot (Debian's ``dovecot-imapd`` + ``dovecot-lmtpd``): IMAP and LMTP, Maildir, plain logins
  from a passwd-file; its master runs as root, mail as ``nobody`` (FIELD-NOTES: mail directories
  0755, ``auth_username_format = %Ln`` for LMTP, ``auto = subscribe`` for Sent).
- SMTP: aiosmtpd with AUTH, delivering into Dovecot over LMTP (``tests/support/smtp_to_lmtp.py``).
- CalDAV: Radicale (PyPI) with htpasswd users and a ``work`` calendar per user.

Radicale comes with the dev dependencies. Dovecot is a Debian package: without it the rig runs
Radicale only and the mail tests skip, saying so — except where ``SOLO_REQUIRE_MAIL=1`` (set by
``.ci/run``, which installs ``dovecot-imapd dovecot-lmtpd``): there they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx
from imapclient import IMAPClient

ROOT = Path(__file__).resolve().parents[2]
USERS = ("solo", "dana", "carla")
DOVECOT = Path("/usr/sbin/dovecot")
DOMAIN = "example.test"


def free_port() -> int:
    """A port nobody listens on now (the servers cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environment() -> dict[str, str]:
    """The environment of a server process: ours, without libfaketime. The servers are the
    outside world, with their own clocks (a real mail server's is not shifted with ours); under
    ``faketime`` Dovecot stalled for minutes at a time on CI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p and "faketime" not in p]
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    else:
        env.pop("LD_PRELOAD", None)
    return {**env, "PYTHONUNBUFFERED": "1"}


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s:\n{log.read_text()[-2000:]}")


DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
auth_username_format = %Ln
mail_location = maildir:{root}/mail/%n
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {root}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/mail/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# Failed logins (the bad-credentials tests) would otherwise slow every later login from
# 127.0.0.1 for a while: the auth penalty is off.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
"""


@dataclass
class MailRig:
    """Dovecot + SMTP (+ Radicale) for one test session.

    Attributes:
        root: the rig's state directory (every directory above it must be traversable by
            Dovecot's unprivileged users: the default is a fresh one under the temp dir).
        imap_port, smtp_port, lmtp_port, caldav_port: where each listens on 127.0.0.1.
    """

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="solo-rig-")))
    imap_port: int = field(default_factory=free_port)
    lmtp_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    caldav_port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=lambda: {u: f"{u}-pass" for u in USERS})
    spare: int = 200
    """Users made at start for :meth:`add_user` (a passwd file rewritten within the second it
    was read is not always read again)."""
    _procs: list[subprocess.Popen] = field(default_factory=list)

    mail: bool = False
    """Whether Dovecot and the SMTP server run (Radicale always does)."""

    def start(self) -> MailRig:
        """Start Radicale, and Dovecot with the SMTP server when Dovecot is installed; raise
        with the server's log if one does not come up."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.users |= {f"u{n}": f"u{n}-pass" for n in range(self.spare)}
        self._handed_out = 0
        self._write_users()
        self._start_radicale()
        if DOVECOT.exists():
            self._start_mail()
        return self

    def _start_mail(self) -> None:
        (self.root / "mail").mkdir(mode=0o755, exist_ok=True)
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        users = self.root / "users"
        conf = self.root / "dovecot.conf"
        conf.write_text(DOVECOT_CONF.format(root=self.root, imap_port=self.imap_port,
                                            lmtp_port=self.lmtp_port))
        self._spawn([str(DOVECOT), "-F", "-c", str(conf)], "dovecot.out", self.imap_port)
        _wait_port(self.lmtp_port, self._procs[-1], self.root / "dovecot.out")
        self._spawn([sys.executable, "-m", "tests.support.smtp_to_lmtp", "--port",
                     str(self.smtp_port), "--lmtp-port", str(self.lmtp_port), "--users",
                     str(users)], "smtp.log", self.smtp_port)
        self.mail = True

    def _start_radicale(self) -> None:
        htpasswd = self.root / "htpasswd"
        self._spawn([sys.executable, "-m", "radicale", "--server-hosts",
                     f"127.0.0.1:{self.caldav_port}", "--storage-filesystem-folder",
                     str(self.root / "caldav"), "--auth-type", "htpasswd",
                     "--auth-htpasswd-filename", str(htpasswd), "--auth-htpasswd-encryption",
                     "plain", "--auth-delay", "0", "--logging-level", "warning"],
                    "radicale.log", self.caldav_port)
        for user in USERS:
            self.make_calendar(user, "work")

    def _write_users(self) -> None:
        (self.root / "users").write_text(
            "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        (self.root / "htpasswd").write_text(
            "".join(f"{u}:{p}\n" for u, p in self.users.items()))

    def add_user(self, prefix: str = "") -> str:
        """A mailbox and ``work`` calendar nobody used yet; its name (``prefix`` is only for
        the reader of a test)."""
        if self._handed_out >= self.spare:
            raise RuntimeError(f"the rig has only {self.spare} spare users")
        name = f"u{self._handed_out}"
        self._handed_out += 1
        self.make_calendar(name, "work")
        return name

    def _spawn(self, argv: list[str], log_name: str, port: int) -> None:
        log = self.root / log_name
        with log.open("ab") as out:  # never a pipe: a full pipe blocks the server
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                    env=server_environment(), start_new_session=True)
        self._procs.append(proc)
        _wait_port(port, proc, log)

    def stop(self) -> None:
        """Stop every server (Dovecot's master would sleep 1 s on SIGTERM: kill it)."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._procs.clear()

    # -- what tests look at -------------------------------------------------------------------

    def address(self, user: str) -> str:
        """``user@example.test``."""
        return f"{user}@{DOMAIN}"

    def imap(self, user: str) -> IMAPClient:
        """A logged-in IMAP client for ``user`` (close it with ``logout()``)."""
        client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client

    def messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """Every message in ``user``'s ``folder``, raw."""
        client = self.imap(user)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            fetched = client.fetch(uids, ["RFC822"]) if uids else {}
            return [fetched[uid][b"RFC822"] for uid in sorted(fetched)]
        finally:
            client.logout()

    def with_message_id(self, user: str, message_id: str, folder: str = "INBOX") -> int:
        """How many messages in ``user``'s ``folder`` carry ``message_id``."""
        client = self.imap(user)
        try:
            client.select_folder(folder, readonly=True)
            return len(client.search(["HEADER", "Message-ID", message_id]))
        finally:
            client.logout()

    def deliver(self, user: str, raw: bytes) -> None:
        """Put ``raw`` into ``user``'s INBOX as new mail (IMAP APPEND, no flags)."""
        client = self.imap(user)
        try:
            client.append("INBOX", raw)
        finally:
            client.logout()

    def calendar_url(self, user: str, calendar: str = "work") -> str:
        """The CalDAV collection URL of ``user``'s ``calendar``."""
        return f"http://127.0.0.1:{self.caldav_port}/{user}/{calendar}/"

    def make_calendar(self, user: str, calendar: str) -> None:
        """MKCALENDAR (201, or 405 when it exists)."""
        response = httpx.request("MKCALENDAR", self.calendar_url(user, calendar),
                                 auth=(user, self.users[user]), timeout=30)
        if response.status_code not in (201, 405):
            raise RuntimeError(f"MKCALENDAR: {response.status_code} {response.text[:300]}")

    def calendar_objects(self, user: str, calendar: str = "work") -> list[str]:
        """The iCalendar text of every object in the calendar."""
        body = ('<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" '
                'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/></d:prop>'
                '<c:filter><c:comp-filter name="VCALENDAR"/></c:filter></c:calendar-query>')
        response = httpx.request("REPORT", self.calendar_url(user, calendar), content=body,
                                 headers={"Depth": "1", "Content-Type": "application/xml"},
                                 auth=(user, self.users[user]), timeout=30)
        response.raise_for_status()
        import xml.etree.ElementTree as ET

        tree = ET.fromstring(response.content)
        return [node.text or "" for node in tree.iter("{urn:ietf:params:xml:ns:caldav}"
                                                      "calendar-data")]

    def email_section(self, user: str = "solo", *, smtp_port: int | None = None,
                      poll_seconds: int = 3600) -> str:
        """The ``[connectors.email]`` TOML for ``user`` (``smtp_port`` may point at a proxy)."""
        return (f'[connectors.email]\nimap_host = "127.0.0.1"\nimap_port = {self.imap_port}\n'
                f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp_port or self.smtp_port}\n'
                f'security = "none"\nusername = "{user}"\npassword = "{self.users[user]}"\n'
                f'address = "{self.address(user)}"\nsent_folder = "Sent"\n'
                f"poll_seconds = {poll_seconds}\n")

    def calendar_section(self, user: str = "solo") -> str:
        """The ``[connectors.calendar]`` TOML for ``user``."""
        return (f'[connectors.calendar]\nurl = "http://127.0.0.1:{self.caldav_port}/{user}/"\n'
                f'username = "{user}"\npassword = "{self.users[user]}"\ncalendar = "work"\n')


def mail(sender: str, to: str, subject: str, body: str, message_id: str) -> bytes:
    """A plain-text message as raw bytes, ready for :meth:`MailRig.deliver`."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return message.as_bytes()
