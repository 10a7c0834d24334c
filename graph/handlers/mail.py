"""Mail: send (``email``), answer in a thread (``reply``) and read the triaged inbox (``inbox``).

Sending and replying are ``email.send`` steps on the email connector: the card shows the mail
itself. A reply's recipient, subject and threading headers come from the stored mail, never from
the mail's text or a model's reading of it.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC
from typing import Any

from connectors.email import EmailConnector, addresses
from graph.budget import BudgetExceeded
from graph.drafting import draft_reply
from graph.handlers.info import NOT_CONFIGURED
from graph.llm import LLMUnderstander, ModelUnavailable
from graph.state import DirectorDeps, Planned, PlanState, say
from graph.timefmt import when_text
from graph.understanding import Intent
from memory.models import MailMessage

QUOTE_LINES = 20
LABELS = {"needs_reply": "needs reply", "fyi": "fyi", "ignore": "ignored"}


def subject_from(text: str) -> str:
    """A subject made from the first words of a mail's text."""
    first = re.split(r"(?<=[.!?])\s|\n", text.strip(), maxsplit=1)[0]
    words = first.split()
    subject = " ".join(words[:8]).rstrip(",;:")
    return subject[:1].upper() + subject[1:] + ("…" if len(words) > 8 else "")


def mail_line(mail: MailMessage, deps: DirectorDeps) -> str:
    """One line of ``/inbox``: id, class, sender, subject, when."""
    sender = mail.from_name or mail.from_addr
    when = when_text(mail.sent_at or mail.fetched_at, deps.timezone)
    return f"#{mail.id} [{LABELS.get(mail.triage, mail.triage)}] {sender}: " \
           f"{mail.subject or '(no subject)'} — {when}"


async def answer_mail(intent: Intent, state: PlanState, deps: DirectorDeps) -> Planned:
    """Plan a send or a reply, or list the inbox."""
    email = deps.connectors.get("email")
    if not isinstance(email, EmailConnector):
        return {"replies": [say(NOT_CONFIGURED[intent.name])]}
    if intent.name == "inbox":
        return await _inbox(deps)
    if intent.name == "reply":
        return await _reply(intent.slots, email, deps, state)
    return await _email(intent.slots, email, deps)


async def _inbox(deps: DirectorDeps) -> Planned:
    latest = await deps.storage.mail.latest(10)
    if not latest:
        return {"replies": [say("No mail read yet (or only mail triaged as noise).")]}
    lines = ["Latest mail (/reply ID TEXT answers one):"] + [mail_line(m, deps) for m in latest]
    return {"replies": [say("\n".join(lines))]}


async def _email(slots: dict[str, Any], email: EmailConnector, deps: DirectorDeps) -> Planned:
    to = addresses(slots.get("to") or "")
    text = str(slots.get("text") or "").strip()
    if not to and slots.get("to"):
        known = await deps.storage.mail.from_sender(str(slots["to"]), limit=1)
        to = [known[0].from_addr] if known else []
    if not to or not text:
        return {"replies": [say("Who to, and what should it say? Write /email ADDRESS TEXT "
                                "(a first line followed by more lines is the subject).")]}
    action = email.action(to=to, subject=str(slots.get("subject") or subject_from(text)),
                          body=text)
    return {"steps": [{"action": asdict(action)}]}


async def _find_mail(slots: dict[str, Any], deps: DirectorDeps,
                     text: str) -> MailMessage | None:
    if str(slots.get("id") or "").isdigit():
        return await deps.storage.mail.get(int(slots["id"]))
    named = re.search(r"\b(?:to|for|answer|reply)\s+(?P<name>[A-Z][\w.-]+|[\w.+-]+@[\w.-]+)",
                      text)
    if named:
        found = await deps.storage.mail.from_sender(named["name"], limit=1)
        return found[0] if found else None
    return None


async def _reply(slots: dict[str, Any], email: EmailConnector, deps: DirectorDeps,
                 state: PlanState) -> Planned:
    inbound = state["inbound"]
    mail = await _find_mail(slots, deps, str(inbound.get("text", "")))
    if mail is None:
        return {"replies": [say("Which mail? /inbox lists them with ids; then /reply ID TEXT.")]}
    wanted = str(slots.get("text") or "").strip()
    llm = deps.understander if isinstance(deps.understander, LLMUnderstander) else None
    notes = []
    text = wanted
    if llm is not None:
        facts = await deps.memory.context(f"{mail.from_name} {mail.subject} {wanted}",
                                          budget=deps.context_tokens) \
            if deps.memory is not None else ""
        try:
            text = await draft_reply(
                llm, mail=f"From: {mail.from_name} <{mail.from_addr}>\nSubject: {mail.subject}"
                          f"\n\n{mail.body[:4000]}", wanted=wanted, facts=facts,
                plan_id=state["plan_id"], actor=str(inbound.get("actor", "operator")),
                channel=inbound.get("channel"))
            notes.append(say("Drafted by the model from the mail"
                             + (" and your words" if wanted else "") + "; Edit changes it."))
        except (ModelUnavailable, BudgetExceeded) as exc:
            notes.append(say(f"(No draft: {exc}.)" + (" Your words are sent as written."
                                                      if wanted else "")))
    elif wanted:
        notes.append(say("No model is configured, so the reply is your words as written "
                         "(a model would draft it; Edit changes it)."))
    if not text:
        return {"replies": [say(
            f"What should the reply to #{mail.id} ({mail.from_name or mail.from_addr}: "
            f"{mail.subject}) say? Write /reply {mail.id} YOUR TEXT. (With a model configured "
            "I would draft it.)")]}
    subject = mail.subject if mail.subject.lower().startswith("re:") else f"Re: {mail.subject}"
    quote_head = (f"On {(mail.sent_at or mail.fetched_at).astimezone(UTC):%Y-%m-%d %H:%M} UTC, "
                  f"{mail.from_name or mail.from_addr} wrote:")
    quote = "\n".join([quote_head, *mail.body.splitlines()[:QUOTE_LINES]])
    action = email.action(to=[mail.from_addr], subject=subject, body=text,
                          in_reply_to=mail.message_id,
                          references=[*mail.references, mail.message_id], quote=quote)
    return {"steps": [{"action": asdict(action)}], "replies": notes}
