"""Reading the slots of a message once its intent is known (fixed names: ``text``, ``webhook``,
``when``, ``query``, ``id``, ``to``, ``subject``, ``duration``).

Deterministic: a request's opening (fillers, politeness, the command words, typos in them
included) is stripped to find what the operator wants written, sent or scheduled; times are read
in the operator's zone by :mod:`graph.timeparse`; ids, addresses and durations by their shape;
webhook names by fuzzy match against those configured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from graph.spelling import correct, distance
from graph.timeparse import cut, parse_when

FILLER = re.compile(
    r"^(?:(?:um+|uh+|erm*|er+|hmm+|oh|so(?: yeah)?|okay(?: so| um)?|ok|right(?: so)?|well|yeah|"
    r"just|and|please|pls|hey|hi|hello|thanks|btw|by the way|actually|(?:no|oh) wait|wait)"
    r"\b[\s,.!]*)+", re.I)
POLITE = re.compile(r"^(?:(?:can|could|would|will) (?:you|i)(?: please)?(?: mind)?|"
                    r"would you mind|do you mind|mind|you can|you must|i want(?: that)? you|"
                    r"i want to|i need to|i need|i want|please you|please to|please|kindly|"
                    r"i'd like you to|i'd like|make sure you|try to)\s+", re.I)
ITEM_ID = re.compile(r"(?<![\w:])(f[0-9a-f]{7}|note:\S+\.md|audit:\d+|turn:\S+|summary:\S+)\b",
                     re.I)
PLAN_ID = re.compile(r"(?<![\w-])(p[0-9a-f]{6,20}|r[0-9a-f]{9})\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
QUOTED = re.compile(r"[\"“](?P<q>[^\"”]+)[\"”]")
DURATION = re.compile(
    r"\b(?:for\s+)?(?:(?P<half>half an hour)|(?P<n>\d+(?:\.\d+)?|an?|one|two|three)\s*[- ]?"
    r"(?P<unit>hours?|hrs?|h|minutes?|mins?|m)\b)", re.I)
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}

# Openings per intent, on the lower-cased, typo-corrected text (longest first).
_OPENINGS: dict[str, list[str]] = {
    "note": ["note to self", "quick note", "notes", "note down", "note please", "note",
             "just a note", "a note", "put a note in", "nte", "not",
             "jot this down", "jot down", "write this down for me", "write this down",
             "write down", "write in notes", "write in my notes", "write into my notes",
             "put it in writing", "put down in writing", "log in my journal",
             "make a quick note", "make a note of",
             "make a note", "make note for me", "make note", "add a note saying",
             "add a note about", "add a note", "add to my notes", "put in my notes",
             "put note", "put this in my notes", "create a note", "log this", "log it",
             "log", "capture this idea", "save this thought", "save a note about",
             "save a note", "keep a note", "record in my notes", "get a note saved",
             "you note", "noting", "can i get a note saved"],
    "remember": ["please remember", "remember for me", "remember this", "remember",
                 "keep in mind", "bear in mind", "take note", "store this", "store",
                 "for the record", "for future reference", "fact", "fyi", "just so you know",
                 "you know", "please you remember that", "remember please",
                 "good to know", "info for you", "heads-up", "heads up", "keep in your memory",
                 "save in memory", "keep this information", "you must remember",
                 "don't forget", "do not forget", "never forget", "don't lose this",
                 "do not lose this", "make a mental note", "memorize this", "memorise this",
                 "memorize", "memorise", "save the fact", "save for later", "keep on file",
                 "file this away", "hang on to this for me", "hang on to this",
                 "hold onto this", "hold on to this", "keep this somewhere", "try to retain",
                 "you should know", "add to what you know", "update what you know",
                 "fix your memory", "keep this", "keep", "save", "retain"],
    "task": ["add a task", "add a to-do", "add to my todo list", "add to my tasks",
             "add to the list", "new task", "task", "to-do", "todo", "create a task to",
             "create a task", "make a task for", "make a to-do to", "put", "add",
             "write task", "stick it on my to-do list", "add in my tasks", "put in to-do",
             "add a to-do for", "in my tasks", "i have to do", "stick"],
}
# between the opening and the words: "note for me please the van …", "a note please, …",
# "task for tomorrow, …"
_SEPARATORS = re.compile(r"^(?:(?:that|saying|:|-|,|about|the note that|a message that|"
                         r"the update that|a note that|please|for me|for (?:today|tomorrow),)"
                         r"(?:\s+|(?=[,:])|$))+", re.I)
_TAILS = re.compile(r"[\s,]*(?:(?:on|to) (?:my|the) (?:to-?do )?(?:list|tasks|chores)|to the tasks|"
                    r"in my notes|in (?:your )?memory|"
                    r", (?:please )?(?:remember|keep|save|store|memori[sz]e|note|update)"
                    r"(?: (?:that|it|this))?(?: in (?:mind|memory))?(?: for me)?(?: as a fact)?|"
                    r", (?:good|worth) (?:to )?remember(?:ing)?|, (?:add|put) (?:it|in list)"
                    r"(?: to my tasks| on (?:the|my) list| as a task)?)\s*[.!?]?$", re.I)


CHANGE_EVENT = re.compile(
    r"^(?:please\s+)?(?P<verb>move|reschedule|push|shift|postpone|bring forward|cancel|"
    r"call off|delete|remove|drop)\b\s*(?:the|my|our)?\s*", re.I)
"""A message that moves or cancels an event rather than booking one."""
_PLAYBOOK_EDGE = {
    "please", "you", "can", "could", "would", "run", "start", "kick", "off", "trigger",
    "execute", "fire", "launch", "do", "pause", "stop", "resume", "turn", "disable", "unpause",
    "switch", "show", "me", "the", "playbook", "routine", "go", "ahead", "with", "make", "again",
    "now", "for", "details", "of", "versions", "version", "last", "right", "today", "early",
    "it", "some", "time", "a", "while", "on", "back", "how", "did", "when", "does", "will",
    "what", "which", "give", "ledger", "is", "live", "next", "continue", "active"}
"""Words around a playbook's name in a request about it (never a whole name on their own)."""
_PLAYBOOK_VERBS = ("start", "pause", "resume", "execute", "launch", "trigger", "stop", "show")
"""Leading verbs also recognised with one typo ("strat", "resme")."""
_REPLY_TARGET = re.compile(
    r"^(?:\w+\s+){0,2}?(?:reply|answer|respond|write back)(?:\s+(?:to|at|on))?\s+"
    r"(?:the last (?:e-?mail|mail|message)|(?:\w+'s\s+)?(?:e-?mail|mail|message)|[A-Z][\w-]*)"
    r"\s+(?P<t>\S.*)$", re.I)
_TASK_LEAD = re.compile(
    r"^(?:(?:put|add|make|create|new)\s+)?(?:(?:a|the|in my|on my|to my)\s+)?"
    r"(?:task|todo|to-do|chore|list)s?\b(?:\s+list)?(?:\s+(?:for|to)\b|\s*:)?\s*", re.I)
_TASK_ADD = re.compile(r"^(?:add|new|put|create|make|stick|task:|to-?do:|todo:)\b")
_TASK_LIST = re.compile(r"^(?:show|list|what|which|my|tasks\b)|\b(?:open tasks|still have to do)\b")
_TASK_DONE = re.compile(r"\b(?:mark(?:ed)?|tick(?:ed)? (?:it )?off|check(?:ed)? (?:it )?off|"
                        r"cross(?:ed)? (?:it )?off|complete(?:d)?|finished|done with|is done|"
                        r"as done|task done|done)\b")


def strip_opening(text: str) -> str:
    """``text`` without fillers and politeness at its start ("um, can you …")."""
    previous = None
    while previous != text:
        previous = text
        text = POLITE.sub("", FILLER.sub("", text.strip()))
    return text


def _as_written(text: str, value: str) -> str:
    """``value``, a slot read from ``text``, in the operator's own words. Readers match openings
    on text whose first words had command-word typos corrected ("remnid me" → "remind me"); a
    slot cut from it must not keep a "correction" of what the operator said ("slow day" is not
    "show day"). The corrected text has the same words, so the slot maps back word by word."""
    if value.lower() in text.lower():
        return value
    plain = strip_opening(text)
    fixed = _corrected_prefix(plain, words=6)
    start = fixed.lower().find(value.lower())
    if start < 0:
        return value
    said, read = plain.split(" "), fixed.split(" ")

    def as_said(position: int, *, end: bool) -> int:
        """``position`` in ``fixed`` as a position in ``plain``."""
        at = 0
        for index, word in enumerate(read):
            if position <= at + len(word) and (end or position < at + len(word) or
                                               index == len(read) - 1):
                within = position - at
                if word != said[index] and within:  # inside a corrected word: all of it
                    within = len(said[index]) if within >= len(word) or end else 0
                return sum(len(w) + 1 for w in said[:index]) + min(within, len(said[index]))
            at += len(word) + 1
        return len(plain)

    return plain[as_said(start, end=False):as_said(start + len(value), end=True)]


def _corrected_prefix(text: str, words: int = 3) -> str:
    """The first ``words`` words with command-word typos corrected, the rest as is."""
    parts = text.split(" ")
    fixed = []
    for word in parts[:words]:
        corrected = correct(word.lower())
        fixed.append(word if corrected == word.lower() else corrected)
    return " ".join(fixed + parts[words:])


# Words that say "keep this" rather than being what is kept: a short lead made of them, ended
# by a colon, a dash, a comma or "that", is the request's opening, whatever its wording
# ("stick this in my notes, …", "add to your memory that …", "I tell you a fact: …").
_KEEPING = {
    "note": {"note", "notes", "notebook", "journal", "vault", "memo", "jot", "write", "idea",
             "thought", "minutes", "log", "record", "capture", "file", "observation", "scribble",
             "brainstorm", "entry", "later", "diary"},
    "remember": {"remember", "memorise", "memorize", "memory", "fact", "record", "know", "learn",
                 "mind", "update", "correction", "rule", "reference", "fyi", "btw", "heads",
                 "info", "information", "save", "store", "note", "mental", "tell", "keep",
                 "file", "later", "fix"},
    "task": {"task", "tasks", "todo", "todos", "to-do", "list", "add", "put"},
}
_LEAD = re.compile(r"^(?P<lead>(?:[\w'-]+[ ]){0,7}?[\w'-]+)(?:\s*(?::|-|–|,)\s+|\s+that\s+)"
                   r"(?P<rest>\S.*)$", re.S)
_INFLECTION = re.compile(r"(?:ing|ed|es|e|s)$")
# "from now on X", "as of this week X": when a fact starts holding is not the fact
_SINCE = re.compile(r"^(?:from now on|going forward|from today(?: on)?|starting (?:now|today)|"
                    r"as of (?:now|today|this week|this month)|new rule|update|correction)"
                    r"\b[\s,:-]*", re.I)
# "I need to X", "gotta X", "I still have to remember to X": the work is X
_OBLIGED = re.compile(r"^(?:i\s+)?(?:still\s+)?(?:need to|have to|must|gotta|got to|should)\s+"
                      r"(?:remember to\s+)?", re.I)


def _stem(word: str) -> str:
    """``word`` without a common ending, so "telling", "noting" and "filed" count as "tell",
    "note" and "file"."""
    return _INFLECTION.sub("", word) if len(word) > 4 else word


def _keeping_lead(text: str, intent: str, *, most_words: int = 8) -> str | None:
    """What follows a short opening (at most ``most_words`` words) with one of ``intent``'s
    keeping words in it, or None."""
    match = _LEAD.match(text)
    if match is None:
        return None
    words = re.findall(r"[\w'-]+", match["lead"].lower())
    keeping = {_stem(w) for w in _KEEPING[intent]}
    if len(words) <= most_words and any(_stem(w) in keeping for w in words):
        return match["rest"]
    return None


def after_opening(text: str, openings: Sequence[str], intent: str | None = None) -> str:
    """What follows the request's opening: after a short lead of keeping words ended by a colon,
    comma, dash or "that"; else after the longest known opening."""
    text = _corrected_prefix(strip_opening(text))
    colon = text.find(":")
    if 0 < colon and len(text[:colon].split()) <= 5:
        return _TAILS.sub("", text[colon + 1:].strip()).strip(" ,.")
    lowered = text.lower()
    for opening in sorted(openings, key=len, reverse=True):
        if lowered.startswith(opening) and (len(lowered) == len(opening)
                                            or not lowered[len(opening)].isalnum()):
            text = text[len(opening):].lstrip(" ,:-")
            # "remember for later, …", "note an idea, …", "store the fact that …": the
            # opening goes on for a few words
            if intent and (rest := _keeping_lead(text, intent, most_words=4)) is not None:
                text = rest
            break
    else:
        rest = _keeping_lead(text, intent) if intent else None
        if rest is not None:
            text = rest
    text = _SEPARATORS.sub("", text.strip())
    return _TAILS.sub("", text).strip(" ,.")


_REQUEST_VERBS = {
    "note": r"note|jot|write|scribble|add|make a note|put|log|record",
    "remember": r"remember|keep|store|save|memori[sz]e|don't forget|bear in mind",
    "task": r"add|put|new task|new to-?do|task|to-?do|create|make a task|i need a task",
    "remind": r"remind|ping me|nudge me|set (?:a|me a) reminder",
    "reply": r"reply|answer|respond|write back|get back",
    "send": r"tell|let|post|send|update|notify|push|inform",
    "event": r"book|schedule|set up|put|add|block|move|cancel|reschedule",
    "playbook": r"run|start|kick off|pause|resume|stop|show|trigger|execute",
}
"""The words a request opens with, per intent, for finding it after a preamble."""
_OPENS_WITH_REQUEST = {intent: re.compile(rf"(?:{verbs})\b", re.I)
                       for intent, verbs in _REQUEST_VERBS.items()}
_PREAMBLE = {intent: re.compile(
    rf"^(?P<pre>.+?)(?:,\s+|\s+so\s+)(?P<request>(?:please\s+|can you\s+|could you\s+)?"
    rf"(?:{verbs})\b.*)$", re.I | re.S) for intent, verbs in _REQUEST_VERBS.items()}
_POINTS_BACK = {intent: re.compile(
    rf"(?:{verbs})\s+(?:it|that|this|them)\b(?:\s+\S+){{0,3}}\s*[.!]?$", re.I)
    for intent, verbs in _REQUEST_VERBS.items()}
"""A request that only points back at the scene: "keep that in mind", "add it as a task"."""


def _without_preamble(intent: str, text: str) -> str:
    """The request, when the message sets the scene first ("Dana needs the files by friday,
    remind me thursday at 4 to send them"): its time, id and words are in the request, not in
    the scene. A message that opens with the request is left as it is."""
    if intent not in _REQUEST_VERBS:
        return text
    said = strip_opening(text)
    if _OPENS_WITH_REQUEST[intent].match(said):
        return text
    match = _PREAMBLE[intent].match(said)
    if match is None or _POINTS_BACK[intent].match(match["request"]) \
            or not _TAILS.sub("", ", " + match["request"]).strip():
        return text  # "…, keep that in mind", "…, add it as a task": the scene is the words
    return match["request"]


class SlotReader:
    """Reads slots per intent.

    Args:
        webhooks: configured webhook names (for ``send``).
        now: the current time in the operator's zone.
    """

    def __init__(self, *, webhooks: Sequence[str], now: Callable[[], datetime]) -> None:
        self.webhooks = sorted(webhooks, key=len, reverse=True)
        self._now = now

    def read(self, intent: str, text: str) -> dict[str, Any]:
        """The slots of ``intent`` found in ``text``."""
        reader = getattr(self, f"_{intent}", None)
        if reader is None:
            return {}
        request = _without_preamble(intent, text)
        slots = reader(request)
        if request != text and not slots.get("text") and reader(text).get("text"):
            slots = reader(text)  # nothing to write after the scene: the scene was the words
        return {k: _as_written(text, v) if isinstance(v, str) else v
                for k, v in slots.items() if v}

    def webhook_in(self, text: str) -> str | None:
        """The configured webhook ``text`` names (exactly, or with one typo)."""
        words = re.findall(r"[\w-]+", text.lower())
        for name in self.webhooks:
            if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text.lower()):
                return name
        for name in self.webhooks:
            if len(name) >= 3 and any(distance(w, name, 1) <= 1 for w in words
                                      if len(w) >= 3 and w not in ("the", "tell", "send")):
                return name
        return None

    def _note(self, text: str) -> dict[str, Any]:
        quoted = QUOTED.search(text)
        return {"text": quoted["q"] if quoted
                else after_opening(text, _OPENINGS["note"], "note")}

    def _remember(self, text: str) -> dict[str, Any]:
        said = after_opening(text, _OPENINGS["remember"], "remember")
        return {"text": _SINCE.sub("", said) or said}

    def _task(self, text: str) -> dict[str, Any]:
        body = _corrected_prefix(strip_opening(text), words=4)
        lowered = body.lower()
        if _TASK_DONE.search(lowered) and not _TASK_ADD.match(lowered):
            what = _TASK_DONE.sub(" ", lowered)
            what = re.sub(r"\b(?:the|task|it|my|list|off|as|from|i|with)\b|[,.!?]", " ", what)
            return {"command": "done", "text": " ".join(what.split())}
        if _TASK_LIST.search(lowered) and not _TASK_ADD.match(lowered) and ":" not in body:
            return {"command": "tasks"}
        quoted = QUOTED.search(text)
        if quoted:
            return {"text": quoted["q"]}
        body = strip_opening(text)
        match = re.match(r"^(?:i need to )?(?P<t>.+?),? (?:add it to my tasks|put in list)$",
                         body, re.I)
        if match:
            return {"text": after_opening(match["t"], _OPENINGS["task"], "task")}
        said = _TASK_LEAD.sub("", after_opening(text, _OPENINGS["task"], "task"))
        said = _TAILS.sub("", re.sub(r"^to\s+", "", said))
        return {"text": _OBLIGED.sub("", said) or said}

    def _remind(self, text: str) -> dict[str, Any]:
        slots: dict[str, Any] = {}
        body = _corrected_prefix(strip_opening(text))
        when = parse_when(body, now=self._now())
        rest = body
        if when is not None:
            slots["when"] = when.at.isoformat()
            if when.repeat:
                slots["repeat"] = when.repeat
            rest = cut(body, when.spans)
        lead = re.compile(r"^(?:please\s+)?(?:remind(?: to)? me|remind|set (?:a|me a) reminder|"
                          r"create a reminder|add a reminder|put in a reminder|new reminder|"
                          r"reminder|make reminder for me|make sure i remember|don'?t let me "
                          r"forget|ping me|nudge me|poke me|alert me|give me a shout|"
                          r"i need reminder|set a reminder)\b[\s,:]*", re.I)
        connector = re.compile(r"^(?:for|in|on|at|this|every|each|daily|weekly|to|about|that i "
                               r"must|that|for me|:)(?:\s+|$)|^[:,]\s*", re.I)
        previous = None
        rest = rest.strip(" ,.")
        while previous != rest:
            previous = rest
            rest = connector.sub("", lead.sub("", rest)).strip(" ,.:")
        slots["text"] = rest or body
        return slots

    def _send(self, text: str) -> dict[str, Any]:
        slots: dict[str, Any] = {"webhook": self.webhook_in(text)}
        quoted = QUOTED.search(text)
        if quoted:
            slots["text"] = quoted["q"]
            return slots
        body = strip_opening(text)
        match = re.search(r"(?:\b(?:that|saying|the information|the update that|message that)"
                          r"\b|:)\s*(?P<t>.+)$", body, re.I)
        if match is None and slots["webhook"]:
            # "tell the crm the Lumen project is done": what follows the target's name
            match = re.search(rf"{re.escape(slots['webhook'])}(?:\s+(?:hook|webhook))?\s+"
                              r"(?:with\s+|know\s+)?(?P<t>.+)$", body, re.I)
        if match:
            slots["text"] = match["t"].strip()
        return slots

    def _recall(self, text: str) -> dict[str, Any]:
        body = _corrected_prefix(strip_opening(text)).rstrip(" ?.!")
        # "the van, anything saved?", "I lost the number, do you have it": the thing, then
        # the question about it
        body = re.sub(r",\s*(?:what|anything|do you|did i|is there|got|any|where)\b.*$", "",
                      body, flags=re.I)
        body = re.sub(r"\s+please$", "", body, flags=re.I)
        query = re.sub(
            r"^(?:is there anything in (?:memory|my notes) (?:about|on)|anything (?:stored|saved) "
            r"(?:about|on)|what have i (?:saved|stored|got) (?:about|on)|check my notes for|"
            r"tell me (?:what you know|everything) (?:about|on)|give me the facts (?:about|on)|"
            r"fill me in on|what's in my notes (?:about|on)|have we got notes on|where's|who was|"
            r"i (?:can't|cannot|don't|do not) remember|i (?:forgot|forget|lost)|"
            r"remind me of|tell me about|(?:info|details|information) on|anything about|"
            r"what's the story with|what have we got (?:about|on)|"
            r"what do (?:i|we|you) (?:know|have) (?:about|on)|tell me all about|"
            r"what's in memory about|"
            r"anything on file about|search (?:my )?(?:notes|memory) for|search for|"
            r"find (?:me )?(?:the note about|anything about|information of)|look up|"
            r"dig up|do (?:i|we) have anything on file about|did i (?:note|save|write down) "
            r"anything about|is there a note about|have i saved|have we got|do we have|"
            r"did i write down|did anyone mention|remind me what|refresh my memory on|"
            r"what did i save about|recall the notes about|recall|give me what is in memory "
            r"for|what is saying my notes about|show me notes where is written|i search|"
            r"which is|what did|what was|what's|whats|what is|who is|who's|when is|where is|"
            r"you know something about)\s+", "", body, flags=re.I)
        query = re.sub(r"\s+(?:again|somewhere|are|is)$", "", query, flags=re.I)
        return {"query": query.strip() or body}

    def _forget(self, text: str) -> dict[str, Any]:
        match = ITEM_ID.search(text)
        return {"id": match[1]} if match else {}

    def _plans(self, text: str) -> dict[str, Any]:
        lowered = _corrected_prefix(text.lower(), words=6)
        match = PLAN_ID.search(text)
        command = "plans"
        if re.search(r"\b(?:retry|again|rerun|redo|resend|repeat|another go)\b", lowered):
            command = "retry"
        elif re.search(r"\b(?:cancel|stop|abort|kill|drop|call off|don't run)\b", lowered):
            command = "cancel"
        elif re.search(r"\b(?:undo|take back|revert|roll back|reverse|do back)\b", lowered):
            command = "undo"
        elif match:
            command = "plan"
        return {"command": command, "id": match[1] if match else None}

    def _email(self, text: str) -> dict[str, Any]:
        address = EMAIL.search(text)
        slots: dict[str, Any] = {"to": address[0] if address else None}
        # an unquoted subject runs to a comma, a colon or the word that starts the body
        subject = re.search(r"\b(?:subject:?|titled|with the subject|with subject)\s+"
                            r"(?:[\"“](?P<q>[^\"”]+)[\"”]|(?P<w>[\w-]+(?:\s+(?!(?:saying|that|"
                            r"about|and|with|body|text|asking)\b)[\w-]+)*))", text, re.I)
        if subject:
            slots["subject"] = subject["q"] or subject["w"]
        after = text[address.end():] if address else text
        body = re.search(r"(?:\b(?:that|saying|body:|text:)|:)\s*(?P<t>.+)$", after, re.I)
        asking = re.search(r"\b(?P<t>asking\s.+)$", after, re.I)
        rest = after.strip(" ,.")
        if body:
            slots["text"] = body["t"].strip()
        elif asking:  # "email Petra asking for the forms": the request is the body
            slots["text"] = asking["t"].strip()
        elif not address:
            about = re.search(r"\babout\s+(?P<t>.+)$", text, re.I)
            slots["text"] = about["t"].strip() if about else None
        elif not subject and len(rest.split()) >= 2 and not re.match(
                r"(?:with|about|subject|titled|a line)\b", rest, re.I):
            slots["text"] = rest  # "email paolo@winery.it the new dates"
        return slots

    def _reply(self, text: str) -> dict[str, Any]:
        body = strip_opening(text)
        ident = re.search(r"^(?:re:?\s*)?(?:\w+\s+){0,4}?(?:to\s+|at\s+|on\s+|for\s+)?(?:the\s+)?"
                          r"(?:mail|email|message|#)?\s*#?(?P<id>\d{1,6})\b", body, re.I)
        slots: dict[str, Any] = {"id": ident["id"] if ident else None}
        rest = body[ident.end():] if ident else body
        # "that" opens what to say, unless it points at the mail ("reply to that email: …")
        said = re.search(r"(?:\b(?:saying|that(?!\s+(?:e-?mail|mail|message|last|latest|one)\b)|"
                         r"with)\b|:|-|,)\s*(?P<t>.+)$", rest, re.I)
        if said:
            slots["text"] = said["t"].strip()
        elif ident:
            slots["text"] = rest.strip(" ,:-")
        else:  # "write back to Omar sounds good": after the verb and whom it answers
            after = _REPLY_TARGET.match(_corrected_prefix(body))
            slots["text"] = after["t"].strip() if after else None
        return slots

    def _event(self, text: str) -> dict[str, Any]:
        body = _corrected_prefix(strip_opening(text))
        slots: dict[str, Any] = {}
        duration = DURATION.search(body)
        if duration:
            if duration["half"]:
                minutes = 30
            else:
                amount = _NUMBERS.get(duration["n"].lower(), None) or float(duration["n"])
                minutes = round(amount * (60 if duration["unit"][0].lower() == "h" else 1))
            hours, rest_minutes = divmod(minutes, 60)
            slots["duration"] = "PT" + (f"{hours}H" if hours else "") + \
                (f"{rest_minutes}M" if rest_minutes else "")
            body = body[:duration.start()] + body[duration.end():]
        when = parse_when(body, now=self._now())
        if when is not None:
            slots["when"] = when.at.isoformat()
            body = cut(body, when.spans)
        title = re.sub(r"^(?:please\s+)?(?:book|schedule|set up|put|add|create|pencil in|"
                       r"arrange|plan|block)\s+(?:(?:an?|the|me)\s+)?(?:event:?\s+)?", "",
                       body.strip(" ,.?"), flags=re.I)
        title = re.sub(r"\s+(?:in|to|on) (?:my|the) calendar\b", "", title, flags=re.I)
        title = re.sub(r"(?:\s+(?:for|on|at|in|from|by))+$", "", title, flags=re.I)
        slots["text"] = (title[:1].upper() + title[1:]) if title else None
        return slots

    def _agenda(self, text: str) -> dict[str, Any]:
        when = parse_when(text, now=self._now())
        return {"when": when.at.isoformat()} if when else {}

    def _playbook(self, text: str) -> dict[str, Any]:
        body = _corrected_prefix(strip_opening(text).lower(), words=4).rstrip(" ?.!")
        if re.match(r"^(?:(?:list|show|what|which)\b.*\bplaybooks\b|(?:my|the) playbooks$|"
                    r"playbooks$)", body):
            return {}
        # The name is what is left once the words about running or showing it are gone from
        # both ends ("can you run the inbox digest right now", "the monthly cleanup, stop it").
        words = re.findall(r"[\w'-]+|,", body.split(",")[0] if not body.startswith(",")
                           else body)
        while words and (words[0] in _PLAYBOOK_EDGE or (len(words[0]) >= 4 and any(
                distance(words[0], verb, 1) <= 1 for verb in _PLAYBOOK_VERBS))):
            words.pop(0)
        while words and words[-1] in _PLAYBOOK_EDGE:
            words.pop()
        name = " ".join(words)
        return {"text": name} if name else {}
