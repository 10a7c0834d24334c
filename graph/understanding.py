"""Understanding: text to :class:`Intent`. Commands are parsed deterministically first."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from graph.commands import BY_NAME

COMMAND_ONLY = ("tools",)
"""Intents reached only by their commands (``/tools``, ``/call``), never guessed from text."""
INTENTS = ("note", "send", "remind", "remember", "recall", "forget", "summary", "status",
           "approvals", "audit", "budget", "help", "smalltalk", "plans", "email", "reply",
           "inbox", "agenda", "event", "task", "playbook", "unknown")
EFFECTFUL = frozenset({"note", "send", "remind", "remember", "forget", "email", "reply", "event",
                       "task", "playbook", "plans"})
"""Intents that may lead to an effect: a guess between these needs more confidence, and chat
that is not a command must never become one of them."""

_COMMAND = re.compile(r"^/(?P<name>[A-Za-z_]+)(?:@\S+)?(?:\s+(?P<rest>.*))?$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Intent:
    """What a message asks for, with the fixed names of DESIGN §6.

    Attributes:
        name: one of :data:`INTENTS` (or :data:`COMMAND_ONLY`).
        slots: ``text``, ``webhook``, ``when``, ``query``, ``id``; ``error`` when a command was
            malformed (the message says how to write it), ``command`` for the command typed.
        confidence: 0..1.
    """

    name: str
    slots: dict[str, Any] = field(default_factory=dict)
    confidence: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``{"intent", "slots", "confidence"}``)."""
        data = asdict(self)
        return {"intent": data.pop("name"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Intent:
        """Inverse of :meth:`to_dict`."""
        return cls(name=data["intent"], slots=dict(data.get("slots", {})),
                   confidence=data.get("confidence", 1.0))


class Understander(Protocol):
    """Maps one message to an :class:`Intent`."""

    async def understand(self, text: str, context: dict[str, Any] | None = None) -> Intent:
        """Understand ``text``; never raises for bad input (malformed → ``unknown`` + error)."""
        ...


def _usage(command: str, usage: str) -> Intent:
    return Intent("unknown", {"command": command, "error": f"Usage: {usage}"})


def parse_command(text: str) -> Intent | None:
    """The intent of a slash command, or None if ``text`` is not one."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    command = match["name"].lower()
    rest = (match["rest"] or "").strip()
    spec = BY_NAME.get(command)
    if spec is None:
        return Intent("unknown", {"command": command,
                                  "error": f"Unknown command /{command}. Try /help."})
    intent = spec.intent
    if intent == "note":
        return Intent("note", {"text": rest}) if rest else _usage(command, "/note TEXT")
    if intent == "send":
        name, _, message = rest.partition(" ")
        message = message.strip()
        if not name or not message:
            return _usage(command, "/send NAME TEXT  (e.g. /send crm Invoice 42 is paid)")
        if len(message) >= 2 and message[0] == message[-1] and message[0] in "\"'":
            message = message[1:-1]
        return Intent("send", {"webhook": name.lower(), "text": message})
    if intent == "email":
        return _email_command(command, rest)
    if intent == "reply":
        ident, _, said = rest.partition(" ")
        if not ident.lstrip("#").isdigit():
            return _usage(command, "/reply ID TEXT  (ids are in /inbox)")
        slots = {"id": ident.lstrip("#")}
        return Intent("reply", slots | ({"text": said.strip()} if said.strip() else {}))
    if command == "call":
        return _call_command(command, rest)
    if intent in ("agenda", "event", "task"):
        if intent == "event" and not rest:
            return _usage(command, "/event WHEN TITLE  (e.g. /event tomorrow 15:00 Acme call "
                                   "for 45m)")
        if command == "task" and not rest:
            return _usage(command, "/task TEXT")
        return Intent(intent, {"command": command} | ({"text": rest} if rest else {}))
    if intent in ("remember", "recall", "forget", "remind", "plans", "playbook"):
        key = {"remember": "text", "recall": "query", "forget": "id", "remind": "text",
               "plans": "id", "playbook": "id"}[intent]  # and "command" says which
        slots: dict[str, Any] = {"command": command}
        if rest:
            slots[key] = rest
        return Intent(intent, slots)
    return Intent(intent, {"command": command} if command != intent else {})


def _call_command(command: str, rest: str) -> Intent:
    """``/call SERVER.TOOL {JSON}`` (no JSON: no arguments)."""
    target, _, raw = rest.partition(" ")
    server, _, tool = target.partition(".")
    usage = "/call SERVER.TOOL {JSON}  (e.g. /call time.get_current_time " \
            '{"timezone": "Europe/Berlin"}; /tools lists them)'
    if not server or not tool:
        return _usage(command, usage)
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return _usage(command, f"{usage} — the arguments are not JSON ({exc.msg})")
    if not isinstance(arguments, dict):
        return _usage(command, f"{usage} — the arguments must be a JSON object")
    return Intent("tools", {"command": command, "server": server.lower(), "tool": tool,
                            "arguments": arguments})


def _email_command(command: str, rest: str) -> Intent:
    """``/email ADDRESS TEXT``: a first line followed by more lines is the subject."""
    address, _, text = rest.partition(" ") if " " in rest.split("\n", 1)[0] else \
        rest.partition("\n")
    text = text.strip()
    if "@" not in address or not text:
        return _usage(command, "/email ADDRESS TEXT  (a first line followed by more lines is "
                               "the subject)")
    first, _, more = text.partition("\n")
    if more.strip():
        return Intent("email", {"to": address, "subject": first.strip(), "text": more.strip()})
    return Intent("email", {"to": address, "text": text})


class CommandUnderstander:
    """Slash commands only; free text becomes ``unknown`` with confidence 0."""

    async def understand(self, text: str, context: dict[str, Any] | None = None) -> Intent:
        """See :class:`Understander`."""
        intent = parse_command(text)
        if intent is not None:
            return intent
        return Intent("unknown", {"text": text.strip()}, confidence=0.0)
