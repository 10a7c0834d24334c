"""The offline understander as it was before the intent corpus (kept for the benchmark only):
cue phrases first, then the nearest labelled examples.

Deterministic and fast (a few milliseconds): no network, no keys. A message is matched against
phrasing cues that are unambiguous ("remind me", "note:", "forget f1a2b3c4"), then against
labelled example sentences with the static embedding model; when the two best intents are too
close or too weak it says so (``unknown`` with the two candidates) instead of guessing. Slots
are extracted per intent: time expressions in the operator's zone, webhook names, quoted text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from langchain_core.embeddings import Embeddings

from graph.local_understanding import GREETING_LEAD, SMALLTALK
from graph.timeparse import cut, parse_when
from graph.understanding import Intent, parse_command
from memory.embeddings import as_matrix

EXAMPLES: dict[str, list[str]] = {
    "note": ["note: pricing call went well", "jot down that the client wants annual billing",
             "write down: idea for a café starter package", "make a note that Dana called back",
             "add a note about the kickoff meeting", "note to self: renew the domain",
             "log that the printer delivered the menus", "put this in my notes: new logo ideas"],
    "send": ["send the crm hook that invoice 42 is paid", "post to the billing webhook: Acme paid",
             "tell the crm that the deal closed", "notify slack that the site is live",
             "ping the crm webhook with invoice 1043 sent", "push to billing: refund issued",
             "send a message to the crm saying the contract is signed"],
    "remind": ["remind me to call Alice tomorrow at 9", "remind me in 2 hours to check the oven",
               "set a reminder for Friday to send the invoices", "don't let me forget to pay rent",
               "reminder: dentist on Tuesday at 3pm", "ping me tonight about the tax forms",
               "every Monday at 9 remind me to plan the week"],
    "remember": ["remember that Acme pays net 30", "keep in mind Dana prefers calls",
                 "fact: our VAT number is DE 314 159 265", "for the record, Luis owns the café",
                 "store this: Helix needs an NDA", "please remember the wifi password is on "
                 "the fridge"],
    "recall": ["what do I know about Acme", "what did Dana say about the photos",
               "search my notes for the logo brief", "find the note about pricing",
               "look up the Riverside Bakery payment terms", "who is the contact at Helix",
               "when is the winery festival", "what's the budget for the Greenleaf rebrand",
               "what was the client's feedback on the draft", "what did we agree on the price",
               "do I have anything on file about the printer", "what is the supplier's address",
               "what does the client think of the new colours", "search memory for the contract",
               "what's the phone number of the accountant", "any notes on the logo project"],
    "forget": ["forget f1a2b3c4", "delete memory item f9e8d7c6", "forget that fact f0011223",
               "erase note:2026-11-22-pricing.md from memory", "remove f77aa001 from memory"],
    "summary": ["give me my daily summary", "what happened yesterday", "morning briefing please",
                "summarize my day", "daily digest", "catch me up on everything",
                "what's on today", "overview of my day", "what did I miss", "brief me",
                "what happened while I was offline"],
    "status": ["how are things running", "system status", "is everything ok",
               "what is running right now", "are you working", "health check",
               "how is the system", "are the connectors up", "is anything broken"],
    "approvals": ["what is waiting for my approval", "show pending approvals",
                  "anything to approve?", "which cards are open", "what needs my decision",
                  "any decisions for me", "do I have approvals waiting"],
    "audit": ["what did I approve yesterday?", "show me the recent actions", "list the receipts",
              "what was sent today", "show the audit log", "what did you do this morning",
              "which actions ran", "what was executed", "which messages went out"],
    "budget": ["how much have I spent on models", "what's my budget",
               "show spending this month", "how much money is left for AI calls",
               "what are my cost caps", "token usage", "how much did the model cost",
               "LLM costs so far"],
    "smalltalk": ["hi", "hello there", "good morning", "thanks a lot", "thank you so much",
                  "how are you", "nice work", "have a good evening", "lunch was great",
                  "haha that's funny", "ok cool", "sure", "bye for now"],
    "help": ["what can you do", "help", "how do I use this", "commands?",
             "what are the commands", "how does this work", "how do I add a reminder",
             "how do I approve something", "explain yourself"],
}

CUES: list[tuple[str, re.Pattern[str]]] = [
    ("smalltalk", SMALLTALK),
    ("remind", re.compile(r"^\s*(?:please\s+)?(?:remind me|set (?:a|me a) reminder|reminder:|"
                          r"don'?t let me forget|ping me)\b", re.I)),
    ("note", re.compile(r"^\s*(?:note(?: to self)?\s*:|note that|note\s+(?!about\b)|jot down|"
                        r"write down|make a note|add a note|log that|put this in my notes)",
                        re.I)),
    ("remember", re.compile(r"^\s*(?:please\s+)?(?:remember(?!\s+(?:to|what)\b)|keep in mind|"
                            r"fact:|for the record|store this)", re.I)),
    ("recall", re.compile(r"^\s*(?:search|find|look up|lookup|who|who's|whos)\b", re.I)),
    ("forget", re.compile(r"^\s*(?:please\s+)?(?:forget|erase|delete|remove)\b.*"
                          r"\b(?:f[0-9a-f]{7}|note:\S+|audit:\d+|turn:\S+|summary:\S+)", re.I)),
]
NOTE_LEAD = re.compile(r"^\s*(?:note(?: to self)?\s*:|note that|jot down(?: that)?:?|"
                       r"write down:?|make a note(?: that| of)?|add a note(?: about| that)?|"
                       r"log that|put this in my notes:?|note)\s*", re.I)
REMEMBER_LEAD = re.compile(r"^\s*(?:please\s+)?(?:remember(?: that)?:?|keep in mind(?: that)?|"
                           r"fact:|for the record,?|store this:?)\s*", re.I)
REMIND_LEAD = re.compile(r"^\s*(?:please\s+)?(?:remind me(?: to)?|set (?:a|me a) reminder"
                         r"(?: to| for)?|reminder:|don'?t let me forget(?: to)?|ping me"
                         r"(?: about| to)?)\s*", re.I)
RECALL_LEAD = re.compile(r"^\s*(?:what do (?:i|we) know about|what did|what does|what is|"
                         r"what's|what are|who is|who's|when is|when's|where is|search (?:my )?"
                         r"(?:notes|memory) for|find(?: the)?(?: note)?(?: about)?|look up|"
                         r"remind me what)\s*", re.I)
ITEM_ID = re.compile(r"\b(f[0-9a-f]{7}|note:\S+|audit:\d+|turn:\S+|summary:\S+)", re.I)
QUOTED = re.compile(r"[\"“](?P<q>[^\"”]+)[\"”]")
SEND_VERB = re.compile(r"\b(?:send|post|tell|notify|ping|push)\b", re.I)


class CueUnderstander:
    """See the module docstring.

    Args:
        embeddings: the embedding model (the static one by default in the app).
        webhooks: configured webhook names, for ``send``'s ``webhook`` slot.
        timezone: the operator's zone, for ``when``.
        now: the clock (tests and the benchmark pin it).
        threshold: below this confidence the understander asks instead of guessing.
    """

    def __init__(self, *, embeddings: Embeddings, webhooks: Sequence[str] = (),
                 timezone: ZoneInfo | None = None, now: Callable[[], datetime] | None = None,
                 threshold: float = 0.45) -> None:
        self.embeddings = embeddings
        self.webhooks = sorted(webhooks, key=len, reverse=True)
        self.timezone = timezone or ZoneInfo("UTC")
        self._now = now or (lambda: datetime.now(self.timezone))
        self.threshold = threshold
        self._labels: list[str] = []
        self._matrix: np.ndarray | None = None

    def _examples(self) -> tuple[list[str], np.ndarray]:
        if self._matrix is None:
            texts = [t for examples in EXAMPLES.values() for t in examples]
            self._labels = [i for i, examples in EXAMPLES.items() for _ in examples]
            self._matrix = as_matrix(self.embeddings, texts)
        return self._labels, self._matrix

    async def understand(self, text: str, context: dict[str, Any] | None = None) -> Intent:
        """See :class:`graph.understanding.Understander`."""
        command = parse_command(text)
        if command is not None:
            return command
        text = text.strip()
        if not SMALLTALK.match(text):
            text = GREETING_LEAD.sub("", text)
        if not text:
            return Intent("unknown", {"error": "Say something, or /help for what I can do."}, 0.0)
        name, confidence, runner_up = self.classify(text)
        if confidence < self.threshold:
            return Intent("unknown", {"text": text, "choices": [name, runner_up]},
                          round(confidence, 3))
        return Intent(name, self.slots(name, text), round(confidence, 3))

    def classify(self, text: str) -> tuple[str, float, str]:
        """The best intent, a confidence in 0..1, and the runner-up."""
        for name, cue in CUES:
            if cue.search(text):
                return name, 0.95, _second(name)
        if self._send_target(text) and SEND_VERB.search(text):
            return "send", 0.9, "note"
        labels, matrix = self._examples()
        scores = matrix @ as_matrix(self.embeddings, [text])[0]
        best: dict[str, list[float]] = {}
        for label, score in zip(labels, scores, strict=True):
            best.setdefault(label, []).append(float(score))
        ranked = sorted(((np.mean(sorted(s, reverse=True)[:2]), label)
                         for label, s in best.items()), reverse=True)
        (top, name), (second, runner_up) = ranked[0], ranked[1]
        # Confident when the best is close and clearly ahead of the next intent.
        confidence = float(np.clip(0.5 * top + 4.0 * (top - second), 0.0, 1.0))
        if name == "send" and not self._send_target(text):
            confidence /= 2  # "send" without a known target is more likely something else
        return name, confidence, runner_up

    def _send_target(self, text: str) -> str | None:
        lowered = text.lower()
        for name in self.webhooks:
            if re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", lowered):
                return name
        return None

    def slots(self, intent: str, text: str) -> dict[str, Any]:
        """The slots of ``intent`` found in ``text`` (fixed names: text, webhook, when, query,
        id)."""
        quoted = QUOTED.search(text)
        if intent == "note":
            return {"text": quoted["q"] if quoted else NOTE_LEAD.sub("", text).strip()}
        if intent == "remember":
            return {"text": REMEMBER_LEAD.sub("", text).strip()}
        if intent == "remind":
            slots: dict[str, Any] = {}
            when = parse_when(text, now=self._now())
            rest = text
            if when is not None:
                slots["when"] = when.at.isoformat()
                if when.repeat:
                    slots["repeat"] = when.repeat
                rest = cut(text, when.spans)
            task = re.sub(r"^(?:about|to)\s+", "", REMIND_LEAD.sub("", rest).strip(" ,."),
                          flags=re.I)
            slots["text"] = task or rest
            return slots
        if intent == "send":
            slots = {}
            webhook = self._send_target(text)
            if webhook:
                slots["webhook"] = webhook
            if quoted:
                slots["text"] = quoted["q"]
            else:
                match = re.search(r"\b(?:that|saying|:)\s*(?P<t>.+)$", text, re.I)
                if match:
                    slots["text"] = match["t"].strip()
            return slots
        if intent == "recall":
            return {"query": RECALL_LEAD.sub("", text).strip(" ?.") or text}
        if intent == "forget":
            match = ITEM_ID.search(text)
            return {"id": match[1]} if match else {}
        return {}


def _second(name: str) -> str:
    return {"remind": "note", "note": "remember", "remember": "note", "forget": "recall",
            "smalltalk": "help"}.get(name, "help")
