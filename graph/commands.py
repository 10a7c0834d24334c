"""The command catalogue: one list read by ``/help``, Telegram's command menu, the command
parser and the understander's examples. Add a command here and every surface knows it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One slash command.

    Attributes:
        name: without the slash.
        intent: the intent it maps to (fixed names, DESIGN §6).
        usage: how to write it, e.g. ``/send NAME TEXT``.
        help: one line for ``/help``.
        menu: a short description for platform command menus, or empty to leave it out.
    """

    name: str
    intent: str
    usage: str
    help: str
    menu: str = ""


CATALOGUE: tuple[CommandSpec, ...] = (
    CommandSpec("note", "note", "/note TEXT", "save a note to the vault (runs at once)",
                "Save a note (runs at once)"),
    CommandSpec("send", "send", "/send NAME TEXT",
                "post TEXT to webhook NAME (asks for approval first)",
                "Post to a webhook: /send NAME TEXT (asks first)"),
    CommandSpec("approvals", "approvals", "/approvals", "show the cards waiting for you",
                "Cards waiting for you"),
    CommandSpec("audit", "audit", "/audit", "the latest actions and decisions, with receipts",
                "Latest actions, with receipts"),
    CommandSpec("status", "status", "/status", "what is running, waiting and failing",
                "What is running, waiting, failing"),
    CommandSpec("remind", "remind", "/remind WHEN TEXT",
                "a reminder here at that time (/reminders lists and cancels them)"),
    CommandSpec("reminders", "remind", "/reminders [cancel ID]",
                "list scheduled reminders, or cancel one"),
    CommandSpec("summary", "summary", "/summary", "the daily summary, now"),
    CommandSpec("remember", "remember", "/remember FACT",
                "keep a fact (a newer fact about the same subject replaces it)"),
    CommandSpec("memory", "recall", "/memory QUERY",
                "search facts, notes, receipts and past messages"),
    CommandSpec("forget", "forget", "/forget ID [ID …]",
                "erase memory items, one step each (the decision is audited)"),
    CommandSpec("budget", "budget", "/budget", "model spend against the caps"),
    CommandSpec("plans", "plans", "/plans", "open and recent plans", "Open and recent plans"),
    CommandSpec("plan", "plans", "/plan ID", "a plan's steps, statuses, receipts and cost"),
    CommandSpec("retry", "plans", "/retry ID [done|drop]",
                "run a plan's failed steps again under their original keys (done: they did "
                "happen; drop: leave them)"),
    CommandSpec("cancel", "plans", "/cancel ID", "cancel what has not run of a plan"),
    CommandSpec("undo", "plans", "/undo RECEIPT",
                "propose taking an action back (e.g. a note goes to the trash), with a card"),
    CommandSpec("email", "email", "/email ADDRESS TEXT",
                "send a mail; a first line followed by more lines is the subject (asks first)",
                "Send a mail: /email ADDRESS TEXT (asks first)"),
    CommandSpec("inbox", "inbox", "/inbox", "the latest triaged mail, with short ids",
                "Latest mail, triaged"),
    CommandSpec("reply", "reply", "/reply ID TEXT",
                "answer mail ID in its thread (without TEXT: a drafted reply); asks first"),
    CommandSpec("agenda", "agenda", "/agenda [today|tomorrow|DATE]", "the events of a day",
                "Today's events"),
    CommandSpec("event", "event", "/event WHEN TITLE",
                "book an event (for 45m / for 2h; default 30 minutes); asks first"),
    CommandSpec("task", "task", "/task TEXT", "add a task to the calendar (runs at once)"),
    CommandSpec("tasks", "task", "/tasks [done ID]", "open tasks, or mark one done",
                "Open tasks"),
    CommandSpec("tools", "tools", "/tools", "the tool servers (MCP) and their tools, with risk",
                "Tool servers and their tools"),
    CommandSpec("call", "tools", "/call SERVER.TOOL {JSON}",
                "call a tool of a tool server (through the same approvals)"),
    CommandSpec("playbooks", "playbook", "/playbooks",
                "the playbooks: trigger, next run, last result", "Playbooks"),
    CommandSpec("playbook", "playbook", "/playbook NAME", "a playbook's steps, versions and runs"),
    CommandSpec("run", "playbook", "/run NAME", "run a playbook now"),
    CommandSpec("pause", "playbook", "/pause NAME", "stop a playbook's schedule"),
    CommandSpec("resume", "playbook", "/resume NAME", "restart a playbook's schedule"),
    CommandSpec("help", "help", "/help", "this list", "What I can do"),
    CommandSpec("start", "help", "/start", "", ""),  # Telegram sends it when a chat opens
)

BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in CATALOGUE}


def help_text() -> str:
    """The ``/help`` answer, built from the catalogue."""
    lines = ["Solo OS — commands:"]
    lines += [f"{spec.usage} — {spec.help}" for spec in CATALOGUE if spec.help]
    return "\n".join(lines)


def example_for(intent: str) -> str:
    """How to say ``intent`` as a command (the first command that maps to it), else ``/help``."""
    return next((spec.usage.replace(" [cancel ID]", "") for spec in CATALOGUE
                 if spec.intent == intent), "/help")


def menu() -> list[tuple[str, str]]:
    """``(name, description)`` for platform command menus, in catalogue order."""
    return [(spec.name, spec.menu) for spec in CATALOGUE if spec.menu]
