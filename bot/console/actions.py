"""What the console's forms do (POST). Every action that changes anything goes through the
operator gate as a ``web`` chat event — a card's button is the same press as in Telegram or
Slack (one conditional update decides), a repair or a pause is the same command — so the
console can never do what chat could not, nor disagree with it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from bot.console.channel import ACTOR, CHANNEL
from bot.console.guard import Guard
from bot.console.sessions import Session
from graph.desk import VERBS

if TYPE_CHECKING:
    from bot.console.app import Console

MAX_TEXT = 4000
_BUTTON = re.compile(r"^([a-z]+):([A-Za-z0-9_-]{1,32})(?::(\d{1,2}))?$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PLAN_COMMANDS = ("retry", "cancel")
PLAYBOOK_COMMANDS = ("run", "pause", "resume")


def _back(request: Request, default: str = "/") -> RedirectResponse:
    """Back to the page the form was on (same origin only), else ``default``."""
    target = request.query_params.get("back", "")
    # Only a path on this site: "//host" leads away, and so does "/" + backslash + "host"
    # (browsers read a backslash in a URL as a slash).
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = default
    return RedirectResponse(target, status_code=303)


async def log_in(console: Console, request: Request) -> Response:
    """Check the password; a right one replaces the session with a logged-in one."""
    guard = console.guard
    session = guard.session(request)
    client = request.client.host if request.client else "?"
    form = await request.form()
    if not guard.same_origin(request) or session is None or \
            not session.csrf_ok(str(form.get("csrf", ""))):
        return PlainTextResponse("Refused: reload the login page and try again.",
                                 status_code=403)
    if guard.sessions.throttled(client):
        return console.render(request, "login.html", session, status_code=429,
                              error="Too many wrong passwords; wait a minute.")
    fresh = guard.sessions.log_in(session, str(form.get("password", "")), client)
    if fresh is None:
        return console.render(request, "login.html", session, status_code=401,
                              error="Wrong password.")
    fresh.seen_seq = console.channel.last_seq
    return Guard.set_cookie(RedirectResponse("/", status_code=303), fresh)


async def log_out(console: Console, request: Request, session: Session) -> Response:
    """End the session."""
    console.guard.sessions.end(session)
    return RedirectResponse("/login", status_code=303)


async def decide(console: Console, request: Request, session: Session) -> Response:
    """A card's button (``verb:approval[:step]``), pressed once per rendered form (its nonce
    is the event id, so a double submit is one press)."""
    form = await request.form()
    match = _BUTTON.match(str(form.get("button", "")))
    if match is None or match[1] not in VERBS or match[1] == "edit":
        return PlainTextResponse("Unknown button.", status_code=400)
    verb, ref = match[1], match[2] + (f":{match[3]}" if match[3] else "")
    await console.act(verb=verb, approval_id=ref, event=str(form.get("nonce", "")) or None)
    return _back(request)


async def edit(console: Console, request: Request, session: Session) -> Response:
    """New text for one step of a card: the same edit as in chat (Edit, then the text), so
    the card is superseded and asks again."""
    approval_id = request.path_params["approval_id"]
    form = await request.form()
    step, text = str(form.get("step", "")), str(form.get("text", "")).strip()
    if not step.isdigit() or not text or len(text) > MAX_TEXT or text.startswith("/"):
        return PlainTextResponse("Give a step and its new text (not a command, at most "
                                 f"{MAX_TEXT} characters).", status_code=400)
    nonce = str(form.get("nonce", "")) or None
    await console.act(verb="edit", approval_id=f"{approval_id}:{step}",
                      event=f"{nonce}:edit" if nonce else None)
    editing = await console.solo.storage.approvals.being_edited(channel=CHANNEL, actor=ACTOR)
    if editing is not None and editing.id == approval_id:
        # Only now is the text an edit; otherwise (decided meanwhile) the answer says why
        # and the text is not sent, lest it become a request of its own.
        await console.act(text=text, event=f"{nonce}:text" if nonce else None)
    return RedirectResponse("/", status_code=303)


async def say(console: Console, request: Request, session: Session) -> Response:
    """A sentence or command typed in the console's chat box, as if sent in chat."""
    form = await request.form()
    text = str(form.get("text", "")).strip()
    if not text or len(text) > MAX_TEXT:
        return PlainTextResponse(f"Say something (at most {MAX_TEXT} characters).",
                                 status_code=400)
    await console.act(text=text, event=str(form.get("nonce", "")) or None)
    return _back(request)


async def plan_command(console: Console, request: Request, session: Session) -> Response:
    """Retry or cancel a plan: ``/retry ID`` or ``/cancel ID``."""
    command, plan_id = request.path_params["command"], request.path_params["plan_id"]
    if command not in PLAN_COMMANDS or not re.fullmatch(r"[A-Za-z0-9_-]{6,64}", plan_id):
        return PlainTextResponse("Unknown plan action.", status_code=404)
    form = await request.form()
    await console.act(text=f"/{command} {plan_id}", event=str(form.get("nonce", "")) or None)
    return RedirectResponse(f"/plans/{plan_id}", status_code=303)


async def playbook_command(console: Console, request: Request, session: Session) -> Response:
    """Run, pause or resume a playbook: the chat commands of the same names."""
    command, name = request.path_params["command"], request.path_params["name"]
    if command not in PLAYBOOK_COMMANDS or not _NAME.match(name):
        return PlainTextResponse("Unknown playbook action.", status_code=404)
    form = await request.form()
    await console.act(text=f"/{command} {name}", event=str(form.get("nonce", "")) or None)
    return RedirectResponse("/playbooks", status_code=303)


async def forget(console: Console, request: Request, session: Session) -> Response:
    """Forget a memory item: ``/forget ID`` (a card, like in chat)."""
    item_id = request.path_params["item_id"]
    if not item_id or any(c.isspace() for c in item_id) or len(item_id) > 200:
        return PlainTextResponse("Unknown memory item.", status_code=404)
    form = await request.form()
    await console.act(text=f"/forget {item_id}", event=str(form.get("nonce", "")) or None)
    return RedirectResponse("/", status_code=303)
