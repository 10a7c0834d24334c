"""Playbooks in plain words: a sentence that defines one, and which playbook a sentence means.

"every Friday at 4pm draft the weekly update from this week's notes and send it to the
newsletter hook" becomes a playbook file (:func:`define_from_text`): the schedule read by the
time parser (as cron, in the operator's zone), what to collect from the words naming notes,
receipts, mail or facts, the action from "send it to the X hook" / "email it to ADDRESS" /
"note it", and a name from what is drafted ("weekly-update"); "draft" or "summarise" has the
model write the text (``model = true``, within the per-run budget shown on the card). The
director proposes the file as a card; only an approved one is saved. Reading the sentence is
deterministic and offline: no model is needed for it, and what the card shows is exactly the
file that will be saved.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from graph.playbooks import PlaybookSpec
from graph.timeparse import parse_when

SOURCES = {"notes": r"\bnotes?\b", "receipts": r"\b(?:receipts?|what (?:was )?done)\b",
           "mail": r"\b(?:e?-?mails?|inbox)\b(?! (?:it|them) to)", "facts": r"\bfacts?\b"}
_EMAIL = re.compile(r"\be-?mail\b.*?\bto (?P<to>[^\s,;]+@[^\s,;]+\w)", re.I)
_HOOK = re.compile(r"\b(?:send|post|push)\b.*?\b(?:to|on|via) (?:the )?(?P<hook>[\w-]+)"
                   r"(?: (?:web)?hook)?\b|\b(?:send|post)(?: to)? the (?P<named>[\w-]+) "
                   r"(?:web)?hook\b", re.I)
_NOTE = re.compile(r"\b(?:note it|as a note|in(?:to)? the vault|write (?:it )?down|save it)\b",
                   re.I)
_TITLE = re.compile(r"\b(?:draft|write|prepare|compile|make|put together|send|e-?mail)"
                    r"(?:\s+(?:down|up|out))?\s+(?:the|a|an|my|our)\s+"
                    r"(?P<title>[a-z][a-z0-9 -]{2,40}?)(?:\s+(?:from|with|of|for|to|and|on)\b|$)",
                    re.I)
_WRITES = re.compile(r"\b(?:draft|summari[sz]e|compose|write (?:up|a|an|the))\b", re.I)
"""Words asking for written text: the draft step is written by the model (when one is set)."""
BUDGET_USD = 0.05
"""The per-run model budget of a playbook defined in chat (shown on its card; edit the file)."""
DEFINES = re.compile(r"^\W*(?:every|each)\b", re.IGNORECASE)
"""A sentence that opens with a schedule defines a playbook (it is not about one)."""
RUN_WORDS = {"run": r"\b(?:run|start|kick off|trigger|execute|fire)\b",
             "pause": r"\b(?:pause|stop|disable|switch off|turn off|hold)\b",
             "resume": r"\b(?:resume|unpause|restart|turn .{0,40}?back on|re-?enable)\b",
             "playbook": r"\b(?:show|when|how did|what does|details?)\b"}


def define_from_text(text: str, *, zone: ZoneInfo, now: datetime,
                     webhooks: Sequence[str]) -> tuple[str, str] | str:
    """The playbook ``text`` defines, as ``(name, TOML text)``; or what is missing, to say."""
    found = parse_when(text, now=now.astimezone(zone))
    if found is None or not found.repeat:
        return ("To set up recurring work, say when it runs, e.g. \"every friday at 16:00 "
                "draft the weekly update from this week's notes and send it to the crm hook\".")
    at = found.at.astimezone(zone)
    cron = f"{at.minute} {at.hour} * * " + \
        (str(at.isoweekday() % 7) if found.repeat == "weekly" else "*")
    sources = [kind for kind, pattern in SOURCES.items() if re.search(pattern, text, re.I)]
    title_match = _TITLE.search(text)
    title = re.sub(r"^[\w-]+ (?:web)?hook (?:the )?", "", title_match["title"].strip()) \
        if title_match else (" and ".join(sources) or "reminder") + " digest"
    name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "playbook"
    lines = [f"description = {_quote(text.strip())}", "enabled = true",
             f"budget_usd = {BUDGET_USD}", "", "[trigger]",
             f"cron = \"{cron}\"", 'missed = "catch_up"', "grace_hours = 12", ""]
    if sources:
        lines += ["[[steps]]", f"collect = [{', '.join(_quote(s) for s in sources)}]", "",
                  "[[steps]]", 'only_if = "collected"', ""]
    template = title.capitalize() + " ({date})" + (":\n{items}" if sources else "")
    lines += ["[[steps]]", f"draft = {_quote(template)}"]
    if _WRITES.search(text):
        lines.append("model = true")
    action = _action(text, webhooks)
    if isinstance(action, str) and action.startswith("!"):
        return action[1:]
    if action:
        lines += ["", "[[steps]]", action]
    toml = "\n".join(lines) + "\n"
    PlaybookSpec.model_validate(tomllib.loads(toml))  # what is proposed is what loads
    return name, toml


def _action(text: str, webhooks: Sequence[str]) -> str:
    """The action step's TOML line ("" for none: the draft is said in chat); ``!why`` when
    the sentence names a target that does not exist."""
    if email := _EMAIL.search(text):
        return f"email = {_quote(email['to'])}"
    if hook := _HOOK.search(text):
        wanted = (hook["hook"] or hook["named"]).lower()
        known = difflib.get_close_matches(wanted, list(webhooks), n=1, cutoff=0.8)
        if known:
            return f"send = {_quote(known[0])}"
        if re.search(r"\bhook\b", text, re.I) or not webhooks:
            return (f"!There is no webhook named {wanted!r} (known: "
                    f"{', '.join(webhooks) or 'none configured'}); nothing was set up.")
    if _NOTE.search(text):
        return "note = true"
    return ""


def _quote(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def command_in(text: str) -> str:
    """Which playbook command a sentence asks for (``run``, ``pause``, ``resume``,
    ``playbook`` to show one), else ``playbooks`` (the list)."""
    for command in ("resume", "pause", "playbook", "run"):
        if re.search(RUN_WORDS[command], text, re.I):
            return command
    return "playbooks"


def playbook_named(words: str, names: Sequence[str]) -> str | None:
    """The playbook ``words`` names ("friday update" → ``friday-update``), allowing a typo."""
    wanted = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")
    wanted = re.sub(r"-?playbook-?", "", wanted)
    if wanted in names:
        return wanted
    close = difflib.get_close_matches(wanted, list(names), n=1, cutoff=0.75)
    return close[0] if close else None
