"""The offline understander: a classifier learned from the intent corpus, then the slots.

Deterministic and fast (a few milliseconds): no network, no keys. Slash commands are parsed
first. Anything else goes to :class:`graph.intent_model.IntentModel` (trained on
``graph/corpus``); its probability is the confidence. When it is not sure — and it must be
surer before it guesses an intent that can lead to an effect — it asks with the two likeliest
intents instead of guessing; chat that is not a request becomes small talk or ``unknown``.
Slots are read by :class:`graph.slots.SlotReader`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from langchain_core.embeddings import Embeddings

from graph.intent_model import IntentModel, corpus_hash, features
from graph.slots import CHANGE_EVENT, SlotReader, strip_opening
from graph.timeparse import parse_when
from graph.understanding import EFFECTFUL, Intent, parse_command

CHAT = ("smalltalk", "unknown")
# "note: …", "fact: …", "todo: …": the operator labelled the message; that is syntax, like a
# command without its slash, and no classifier should overrule it.
LABELLED = re.compile(r"^\s*(?P<label>note|notes|note to self|quick note|reminder|fact|task|"
                      r"todo|to-do|new task)\s*:\s*\S", re.I)
# "every friday at 4pm draft the weekly update … and send it to …": a sentence that opens with a
# schedule and names work (not a reminder) defines a playbook — syntax too, like a label; a
# classifier would read the work verb as a one-off note or send.
RECURRING_WORK = re.compile(
    r"^\W*(?:every|each)\b(?!.*\bremind)(?=.*\b(?:draft|send|e-?mail|post|write|compile|"
    r"collect|summari[sz]e|review|digest|report|note)\b)", re.I)
# "please remember Ines only reads mail in the morning", "memorise that …", "never forget …":
# the operator said in so many words to keep a statement. Not "remember to …" (a reminder),
# "remember me …", "remember when/what …", nor a question ("can you remember the code?"); and
# only a statement of three words or more with no time in it ("remember the milk", "remember
# the dentist tomorrow" are left to the classifier: they read as reminders).
KEEP_THIS = re.compile(
    r"^(?:please\s+|would you\s+(?:please\s+)?)?(?:remember|memori[sz]e|never forget|"
    r"make a mental note|bear in mind|keep in mind|store the fact|file away)\b"
    r"(?:[\s,:]+(?:this|that|for me|please|for later))*[\s,:]+"
    r"(?!(?:to|me|when|how|what|who|where|if|whether|why)\b)\S+(?:\s+\S+){2,}[^?]*$", re.I)
_ASKS_ME = re.compile(r"^\s*(?:can|could|do|did|will)\s+you\b", re.I)
STRICTER = {"remember": 0.6}
"""A plain statement ("the printer in Kreuzberg is cheap") reads much like a fact to keep, and
a kept fact runs at once: without a clear lead it asks first."""
UNTIMED = 0.8
"""A booking and a reminder name a time: an "event" or "remind" read in a message with no time
(and, for an event, no change verb: "what's 17 times 23", "I'm stressed about the deadline")
needs this confidence, else it asks."""
_ABOUT_HOOK = (r"^\W*(?:the\s+|our\s+|my\s+)?{hook}(?:\s+[\w-]+)?\s+"
               r"(?:is|are|was|were|has|have|had|seems|looks|keeps|feels|went|got)\b")
"""A sentence whose subject is a webhook ("the crm is slow today", "the billing system is
confusing") says something about it; it is not a message for it: ``send`` then asks."""
_WORDS = re.compile(r"[^\W\d_]{2,}")
LABELS = {"note": "note", "notes": "note", "note to self": "note", "quick note": "note",
          "reminder": "remind", "fact": "remember", "task": "task", "todo": "task",
          "to-do": "task", "new task": "task"}

# The whole message is a greeting, thanks, an acknowledgement or a goodbye: answering it with a
# guess between two commands would be wrong, so it is recognised before anything else.
SMALLTALK = re.compile(
    r"^\s*(?:(?:hi|hello|hey|hiya|yo|howdy|morning|evening|good (?:morning|afternoon|evening|"
    r"night|day)|thanks?(?: you)?(?: (?:so|very) much| a lot)?|thx|ty|cheers|great|nice|cool|"
    r"awesome|perfect|ok(?:ay)?|k|sure|yes|yep|no|nope|got it|sounds good|bye|goodbye|"
    r"see (?:you|ya)(?: later)?|how are you(?: doing)?|how's it going|what's up|sup|lol|haha)"
    r"(?:\s+(?:there|solo|again|man|mate|buddy|friend|then|thanks|thank you|so much|a lot))*"
    r"[\s!.,?:)(😀🙂👍🙏]*)+$", re.I)

# "hi, remind me…" / "thanks, note: …": the request after a greeting is what counts.
GREETING_LEAD = re.compile(r"^\s*(?:hi|hello|hey|ok(?:ay)?|thanks|thank you|great|cool|"
                           r"good (?:morning|afternoon|evening))\b[\s,!.:;-]+(?=\S)", re.I)


class LocalUnderstander:
    """See the module docstring.

    Args:
        embeddings: the static embedding model the classifier was trained with.
        encoder: the contextual sentence encoder it was trained with (default: the shared
            MiniLM, :func:`graph.intent_model.shared_encoder`).
        webhooks: configured webhook names, for ``send``'s ``webhook`` slot.
        timezone: the operator's zone, for ``when``.
        now: the clock (tests and the benchmark pin it).
        threshold: below this probability the understander asks instead of guessing.
        effect_threshold: the same for intents that can lead to an effect.
        model: a trained classifier (default: ``graph/corpus/model.npz``, checked against the
            corpus it was trained on).
    """

    def __init__(self, *, embeddings: Embeddings, webhooks: Sequence[str] = (),
                 timezone: ZoneInfo | None = None, now: Callable[[], datetime] | None = None,
                 threshold: float = 0.3, effect_threshold: float = 0.45,
                 model: IntentModel | None = None, encoder: Embeddings | None = None) -> None:
        self.embeddings = embeddings
        self.encoder = encoder
        self.timezone = timezone or ZoneInfo("UTC")
        self._now = now or (lambda: datetime.now(self.timezone))
        self.threshold = threshold
        self.effect_threshold = effect_threshold
        self._model = model
        self.slot_reader = SlotReader(webhooks=[w.lower() for w in webhooks], now=self._now)

    @property
    def model(self) -> IntentModel:
        """The classifier (loaded on first use)."""
        if self._model is None:
            self._model = IntentModel.load(corpus=corpus_hash())
        return self._model

    async def understand(self, text: str, context: dict[str, Any] | None = None) -> Intent:
        """See :class:`graph.understanding.Understander`."""
        command = parse_command(text)
        if command is not None:
            return command
        text = text.strip()
        if not text:
            return Intent("unknown", {"error": "Say something, or /help for what I can do."}, 0.0)
        if SMALLTALK.match(text):
            return Intent("smalltalk", {}, 0.99)
        request = GREETING_LEAD.sub("", text) or text
        labelled = LABELLED.match(request)
        if labelled:
            name = LABELS[labelled["label"].lower()]
            return Intent(name, self.slots(name, request), 0.99)
        if KEEP_THIS.match(strip_opening(request)) and not _ASKS_ME.match(request) \
                and parse_when(request, now=self._now()) is None:
            return Intent("remember", self.slots("remember", request), 0.95)
        if RECURRING_WORK.match(request):  # "every friday at 4pm draft …": a playbook
            return Intent("playbook", {"text": request}, 0.95)
        name, confidence, runner_up, second = self.classify(request)
        if name == "smalltalk" or (name == "unknown" and confidence >= 0.5):
            return Intent(name, {"text": text} if name == "unknown" else {},
                          round(confidence, 3))
        if name == "unknown":  # probably not a request, but it might be one of these two
            return Intent("unknown", {"text": text, "choices": [runner_up, second]},
                          round(confidence, 3))
        needed = self.effect_threshold if name in EFFECTFUL else self.threshold
        needed = max(needed, STRICTER.get(name, 0.0))
        if name in EFFECTFUL and (not _WORDS.search(request) or len(request.split()) < 2):
            needed = 1.01  # "123 456", "x": too little said to act on; ask instead
        slots = self.slots(name, request)
        if (name == "remind" and "when" not in slots) or (
                name == "event" and "when" not in slots
                and not CHANGE_EVENT.match(strip_opening(request))):
            needed = max(needed, UNTIMED)
        if name == "send" and slots.get("webhook") and re.match(
                _ABOUT_HOOK.format(hook=re.escape(slots["webhook"])), request, re.I):
            needed = 1.01
        if confidence < needed:
            return Intent("unknown", {"text": text, "choices": [name, runner_up]},
                          round(confidence, 3))
        return Intent(name, slots, round(confidence, 3))

    def classify(self, text: str) -> tuple[str, float, str, str]:
        """The likeliest intent, its probability, and the two likeliest requests after it."""
        model = self.model
        probs = model.probabilities(features([text], self.embeddings, self.encoder))[0]
        order = probs.argsort()[::-1]
        name = model.labels[int(order[0])]
        runner_up, second = [model.labels[int(i)] for i in order[1:]
                             if model.labels[int(i)] not in CHAT][:2]
        return name, float(probs[order[0]]), runner_up, second

    def slots(self, intent: str, text: str) -> dict[str, Any]:
        """The slots of ``intent`` found in ``text``."""
        return self.slot_reader.read(intent, text)
