"""Spelling tolerance for the words that carry a request ("remnid", "sumarry", "hlep"), and
shapes for tokens whose form is their meaning (fact ids, receipts, plan ids, addresses).

Only the command vocabulary is corrected, and only by one edit (a letter added, dropped,
changed, or two letters swapped) on words of four letters or more, so the operator's own words
("clinet", names) are left as they are.
"""

from __future__ import annotations

import re

VOCABULARY = frozenset("""
note notes jot write remind reminder reminders remember memory forget delete erase remove
summary summarize summarise digest briefing brief recap status health running working approvals
approval approve pending cards audit receipts receipt history budget spend spending tokens cost
caps help commands email emails mail inbox unread reply answer respond calendar agenda schedule
meeting meetings event appointment book task tasks todo playbook playbooks routine plan plans
retry cancel undo send post tell notify search find look what where when which tomorrow today
tonight check show list open monday tuesday wednesday thursday friday saturday sunday
morning evening afternoon
""".split())

COMMON = frozenset("""
that than then them they this with want what went were here there whom mind mine name nose
none node more some same sent rent find fine line lime time tome mile male sale tale tell told
wall well will bill fill hill kill mall tall ball call fall boot book cook look took hook noon
soon note host post cost most lost past paste taste waste last list mist must dust plan plant
planet plane place slack black track stack snack sales notes votes mails nails tails fails hails
whats thats lets gets sets
""".split())
"""Real words one or two edits from a command word: left alone."""

_SHAPES = [
    (re.compile(r"^f[0-9a-f]{7}$"), "<factid>"),
    (re.compile(r"^r[0-9a-f]{9}$"), "<receipt>"),
    (re.compile(r"^p[0-9a-f]{6,20}$"), "<planid>"),
    (re.compile(r"^(?:note|audit|turn|summary):\S+$"), "<itemid>"),
    (re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"), "<email>"),
    (re.compile(r"^\d{1,2}(?::\d{2})?(?:am|pm)?$"), "<time>"),
    (re.compile(r"^\d+$"), "<number>"),
]
_TOKEN = re.compile(r"\S+")
_EDGE = re.compile(r"^[^\w@<]+|[^\w>]+$")


def distance(word: str, target: str, limit: int) -> int:
    """Damerau–Levenshtein distance (adjacent swaps count one), or ``limit + 1`` when it is
    more than ``limit``."""
    if abs(len(word) - len(target)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(target) + 1))
    for i, a in enumerate(word, 1):
        current = [i] + [0] * len(target)
        for j, b in enumerate(target, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b))
            if i > 1 and j > 1 and a == target[j - 2] and word[i - 2] == b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def correct(word: str) -> str:
    """``word`` (lower case), or the vocabulary word it is a typo of: one edit away for words
    of four to six letters, two for longer ones starting with the same letter. Common words
    that happen to be that close to a command word ("that", "mail"...) are never changed."""
    if len(word) < 4 or word in VOCABULARY or word in COMMON or not word.isalpha():
        return word
    limit = 1 if len(word) < 7 else 2
    # Two edits only between words that start alike ("sumarry", not "parking" → "working").
    candidates = [t for t in VOCABULARY if limit == 1 or t[0] == word[0]]
    if not candidates:
        return word
    best = min(candidates, key=lambda target: (distance(word, target, limit), target))
    return best if distance(word, best, limit) <= limit else word


def canonical(text: str) -> str:
    """Lower case, vocabulary typos corrected, ids and addresses replaced by their shape —
    the form the classifier reads (slots are read from the original text)."""
    out = []
    for token in _TOKEN.findall(text.lower()):
        core = _EDGE.sub("", token)
        shape = next((name for pattern, name in _SHAPES if pattern.match(core)), None)
        out.append(shape or token.replace(core, correct(core)) if core else token)
    return " ".join(out)
