"""What the watchdog (:mod:`bot.watchdog`) looks after besides chat adapters: the mail poller and
each MCP server, in the same terms (liveness, what to expect, a probe, a cure).

The mail poller tells the operator itself what a poll finds the server doing (the login refused,
no answer, working again: :mod:`graph.mail_inbox`, with backoff); what it cannot tell is that it
stopped looking. :class:`MailPollerWatch` is that: no look at the mailbox for longer than a poll
may take, or a poll that runs past its deadline → a fresh poll, and a notice.

An MCP server that hangs (a stuck process, a server that stopped reading its input) is found by
nothing until a call times out. :class:`McpServerWatch` pings it when it has been quiet; no
answer → a fresh session (and a fresh process for a stdio server) and a notice.
"""

from __future__ import annotations

from bot.adapters.base import Liveness, Watch
from bot.jobs import JobsLoop
from connectors.mailbox import DEADLINE_TIMEOUTS
from connectors.mcp import McpServer
from memory.models import utcnow

MCP_QUIET_SECONDS = 120.0
"""An MCP server quiet this long is pinged (an idle one answers and is left alone)."""
MCP_PING_SECONDS = 10.0


class MailPollerWatch:
    """The IMAP poller (``email``) under the watchdog.

    Args:
        jobs: the jobs loop that polls (its ``mail`` is set).
        poll_timeout: the mail server's timeout, seconds (a poll's deadline is a few of them).
    """

    name = "email"
    title = "Mail polling"

    def __init__(self, jobs: JobsLoop, poll_timeout: float) -> None:
        self._jobs = jobs
        self._deadline = poll_timeout * DEADLINE_TIMEOUTS

    @property
    def liveness(self) -> Liveness:
        """When the poller last looked at the mailbox, and last read new mail."""
        return self._jobs.mail_liveness

    def watch(self) -> Watch:
        """The poller looks every second, a poll at most its deadline: a minute more is
        suspect."""
        return Watch(quiet_seconds=self._deadline + 60.0)

    async def probe(self) -> str | None:
        """Whether the poller looks: None, else what it does instead."""
        now = utcnow()
        started = self._jobs.mail_poll_started
        if started is not None and (now - started).total_seconds() > self._deadline:
            return f"a poll has run for {(now - started).total_seconds():.0f} s"
        quiet = self.liveness.quiet(now)
        if quiet > self.watch().quiet_seconds:
            return f"the mailbox was not looked at for {quiet / 60:.0f} min"
        return None

    async def reconnect(self) -> None:
        """Drop a poll that does not finish and poll afresh."""
        await self._jobs.restart_mail_poll()

    def take_incident(self) -> str | None:
        """Nothing: what a poll finds, the poller tells itself."""
        return None

    def down_notice(self, problem: str, last: str) -> str:
        """What the operator hears when the poller stopped."""
        return (f"Mail polling stopped ({problem}); it last looked {last}. Started a fresh "
                "poll; mail waits on the server meanwhile, nothing is lost.")


class McpServerWatch:
    """One MCP server (``mcp:NAME``) under the watchdog.

    Args:
        server: the supervised session with it.
    """

    def __init__(self, server: McpServer) -> None:
        self._server = server
        self.name = f"mcp:{server.name}"
        self.title = f"MCP server {server.name}"

    @property
    def liveness(self) -> Liveness:
        """Since the current session opened: its last answer and its last tool result."""
        server = self._server
        return Liveness(since=server.connected_at, event_at=server.called_at,
                        alive_at=server.answered_at)

    def watch(self) -> Watch:
        """Quiet for two minutes → a ping."""
        return Watch(quiet_seconds=MCP_QUIET_SECONDS)

    async def probe(self) -> str | None:
        """A ping: None when it answers, else what is wrong."""
        return await self._server.ping(min(MCP_PING_SECONDS, self._server.config.timeout))

    async def reconnect(self) -> None:
        """A fresh session (the supervisor opens it, with its own backoff)."""
        self._server.restart()

    def take_incident(self) -> str | None:
        """Nothing to tell after the fact."""
        return None

    def down_notice(self, problem: str, last: str) -> str:
        """What the operator hears when the server stopped answering."""
        return (f"{self.title} stopped answering ({problem}); it last answered {last}. "
                "Starting it afresh; its tools wait until it works.")
