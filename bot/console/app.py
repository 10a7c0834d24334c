"""The console assembled: its context (the app, the web channel, sessions, templates), how it
acts through the operator gate, and its routes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bot.console.channel import ACTOR, CHANNEL, CHAT, Said, WebChannel
from bot.console.guard import Guard
from bot.console.sessions import Session, Sessions
from graph.events import Inbound
from graph.timefmt import when_text

if TYPE_CHECKING:  # the app imports the console
    from bot.app import SoloApp

HERE = Path(__file__).parent
SETTLE_SECONDS = 10.0
"""How long an action's page waits for its plan to go as far as it can before answering
(a slow connector: the page says it is still running, and the answer appears later)."""


class Console:
    """See the module docstring.

    Args:
        solo: the running app.
        password: the ``[console] password``.
        channel: the ``web`` adapter registered on ``solo``.
    """

    def __init__(self, solo: SoloApp, *, password: str, channel: WebChannel) -> None:
        self.solo = solo
        self.channel = channel
        self.guard = Guard(Sessions(password))
        self._tasks: set[asyncio.Task[None]] = set()
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined)
        env.filters["when"] = lambda moment: when_text(moment, solo.timezone) if moment else ""
        self._env = env

    def render(self, request: Request, template: str, session: Session | None,
               status_code: int = 200, *, with_answers: bool = True,
               **context: Any) -> HTMLResponse:
        """``template`` with ``context``, the session's CSRF token and (``with_answers``) the
        answers this session has not seen yet, which are then seen."""
        answers: list[Said] = []
        if with_answers and session is not None and session.operator:
            answers = self.channel.since(session.seen_seq)
            session.seen_seq = self.channel.last_seq
        html = self._env.get_template(template).render(
            request=request, csrf=session.csrf if session else "", answers=answers,
            path=request.url.path, nonce=uuid.uuid4().hex, **context)
        return HTMLResponse(html, status_code=status_code)

    async def act(self, *, text: str = "", verb: str | None = None,
                  approval_id: str | None = None, event: str | None = None) -> bool:
        """Hand what the operator did on the page to the gate, as a ``web`` chat event, and
        carry it out; wait up to ``SETTLE_SECONDS`` for that. Returns whether it finished
        (otherwise it goes on in the background and its answers arrive later)."""
        inbound = Inbound(channel=CHANNEL, chat=CHAT, actor=ACTOR,
                          event_id=f"web:{event or uuid.uuid4().hex}", text=text, verb=verb,
                          approval_id=approval_id)
        admitted = await self.solo.admit(inbound)
        task = asyncio.create_task(self.solo.process(admitted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        done, _ = await asyncio.wait({task}, timeout=SETTLE_SECONDS)
        return bool(done)

    async def wait(self, seconds: float) -> None:
        """Let actions still running finish (at shutdown)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=seconds)

    def routes(self) -> list[BaseRoute]:
        """Every route of the console."""
        from bot.console import actions, pages

        page, action = self.guard.page, self.guard.action

        def bind(handler: Any) -> Any:
            async def bound(request: Request, session: Session) -> Response:
                return await handler(self, request, session)
            bound.__name__ = handler.__name__
            return bound

        def open_(handler: Any) -> Any:
            async def bound(request: Request) -> Response:
                return await handler(self, request)
            return bound

        return [
            Route("/login", open_(pages.login_form), methods=["GET"]),
            Route("/login", open_(actions.log_in), methods=["POST"]),
            Route("/logout", action(bind(actions.log_out)), methods=["POST"]),
            Route("/", page(bind(pages.queue)), methods=["GET"]),
            Route("/queue", page(bind(pages.queue_cards)), methods=["GET"]),
            Route("/answers", page(bind(pages.answers)), methods=["GET"]),
            Route("/decide", action(bind(actions.decide)), methods=["POST"]),
            Route("/say", action(bind(actions.say)), methods=["POST"]),
            Route("/approvals/{approval_id}/edit", page(bind(pages.edit_form)),
                  methods=["GET"]),
            Route("/approvals/{approval_id}/edit", action(bind(actions.edit)),
                  methods=["POST"]),
            Route("/plans", page(bind(pages.plans)), methods=["GET"]),
            Route("/plans/{plan_id}", page(bind(pages.plan)), methods=["GET"]),
            Route("/plans/{plan_id}/{command:str}", action(bind(actions.plan_command)),
                  methods=["POST"]),
            Route("/ledger", page(bind(pages.ledger)), methods=["GET"]),
            Route("/ledger.csv", page(bind(pages.ledger_csv)), methods=["GET"]),
            Route("/memory", page(bind(pages.memory)), methods=["GET"]),
            Route("/memory/{item_id:path}/forget", action(bind(actions.forget)),
                  methods=["POST"]),
            Route("/memory/{item_id:path}", page(bind(pages.memory_item)), methods=["GET"]),
            Route("/playbooks", page(bind(pages.playbooks)), methods=["GET"]),
            Route("/playbooks/{name}/{command:str}", action(bind(actions.playbook_command)),
                  methods=["POST"]),
            Route("/spending", page(bind(pages.spending)), methods=["GET"]),
            Route("/health", page(bind(pages.health)), methods=["GET"]),
            Route("/metrics", open_(pages.metrics), methods=["GET"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
