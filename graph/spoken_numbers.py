"""Numbers and times as a voice note says them, written the way the parsers read them.

A transcript says "remind me at two thirty", "invoice forty two", "the code is four four seven
one", "half past five"; the time and id parsers (``graph/timeparse.py``, ``graph/slots.py``)
read "at 2:30", "invoice 42", "4471", "5:30". Only number words in a numeric setting change:
a compound ("forty two", "nine hundred"), a run of digits ("four four seven one"), a clock
phrase ("half past five", "quarter to six", "two thirty" after "at"), or a single number next
to a unit or after a word that takes one ("in two hours", "reply to twelve", "fact seven").
"The one with Dana" and "no one" stay as they are.
"""

from __future__ import annotations

import re

UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
         "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
         "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
         "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000}
# a single number word is a number after these ("at ten", "reply to twelve", "fact seven") …
_BEFORE = {"at", "in", "by", "until", "till", "from", "to", "message", "mail", "email", "fact",
           "number", "invoice", "entry", "item", "plan", "is", "for", "about"}
# … or before these ("two hours", "fourteen days", "five prints")
_AFTER = re.compile(r"(?:minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|seconds?|"
                    r"euros?|dollars?|pounds?|percent|pm|am|o'clock|prints?|copies|people|"
                    r"times|items?|pages?|invoices?)$")
# Whole words only ("Q000", "f1a2b3c4", an address keep their letters and digits together),
# and Whisper's "2.30".
_TOKEN = re.compile(r"(?<![\w.@/-])(?:[A-Za-z]+(?:'[a-z]+)?|\d{1,2}\.\d{2})(?![\w@/-])")
_CLOCK_BEFORE = {"at", "by", "until", "till", "from", "to"}


def _value(words: list[str]) -> int | None:
    """The number ``words`` spell ("forty two", "nine hundred and five"), or None."""
    total = current = 0
    seen = False
    for word in words:
        if word in UNITS:
            current += UNITS[word]
        elif word in TENS:
            current += TENS[word]
        elif word in SCALES:
            current = max(current, 1) * SCALES[word]
            if SCALES[word] == 1000:
                total, current = total + current, 0
        elif word == "and" and seen:
            continue
        else:
            return None
        seen = True
    return total + current if seen else None


def _number_run(tokens: list[str], gaps: list[str], start: int) -> int:
    """How many tokens from ``start`` make one number ("forty two" → 2, "nine hundred" → 2);
    a number never spans punctuation (``gaps``: the text between neighbouring tokens)."""
    end, last = start, None
    while end < len(tokens) and (end == start or not gaps[end - 1].strip()):
        word = tokens[end].lower()
        if word in TENS and last in (None, "scale"):
            last = "tens"
        elif word in UNITS and (last in (None, "scale") or (last == "tens" and UNITS[word] < 10)):
            last = "units"
        elif word in SCALES and last in ("units", "tens"):
            last = "scale"
        elif word == "and" and last == "scale" and end + 1 < len(tokens) and \
                tokens[end + 1].lower() in {**UNITS, **TENS}:
            last = "scale"
        else:
            break
        end += 1
    return end - start


def numbers_as_digits(text: str) -> str:
    """``text`` with spoken numbers, clock times and digit runs written in digits; everything
    else stays exactly as it was."""
    spans = [m.span() for m in _TOKEN.finditer(text)]
    gaps = [text[spans[i - 1][1]:spans[i][0]] for i in range(1, len(spans))]
    out, done = [], 0
    for (first, last), written in _rewrite([text[a:b] for a, b in spans], gaps):
        out += [text[done:spans[first][0]], written]
        done = spans[last][1]
    return "".join(out) + text[done:]


def _rewrite(tokens: list[str], gaps: list[str]) -> list[tuple[tuple[int, int], str]]:
    """(first token, last token) → digits, for each spoken number among ``tokens``; ``gaps``
    are the texts between neighbouring tokens (a number never spans punctuation)."""
    def joined(i: int, j: int) -> bool:  # tokens i..j only separated by spaces
        return all(not gaps[k].strip() for k in range(i, j))

    found: list[tuple[tuple[int, int], str]] = []
    i = 0
    while i < len(tokens):
        word = tokens[i].lower()
        before = tokens[i - 1].lower() if i and joined(i - 1, i) else ""
        # "half past five", "quarter past ten", "quarter to six"
        if word in ("half", "quarter") and i + 2 < len(tokens) and joined(i, i + 2) and \
                tokens[i + 1].lower() in ("past", "to") and tokens[i + 2].lower() in UNITS:
            hour = UNITS[tokens[i + 2].lower()]
            minutes = 30 if word == "half" else 15
            if tokens[i + 1].lower() == "to":
                hour, minutes = (hour - 1) or 12, 60 - minutes
            found.append(((i, i + 2), f"{hour}:{minutes:02d}"))
            i += 3
            continue
        # "2.30" after "at": Whisper's way of writing a clock time
        if re.fullmatch(r"\d{1,2}\.\d{2}", word):
            if before in _CLOCK_BEFORE:
                found.append(((i, i), word.replace(".", ":")))
            i += 1
            continue
        run = _number_run(tokens, gaps, i)
        if run == 0:
            i += 1
            continue
        words = [t.lower() for t in tokens[i:i + run]]
        # "at two thirty", "at eleven oh five": an hour, then its minutes
        if before in _CLOCK_BEFORE and run == 1 and words[0] in UNITS and \
                1 <= UNITS[words[0]] <= 12 and i + 1 < len(tokens) and joined(i, i + 1):
            following = tokens[i + 1].lower()
            if following == "oh" and i + 2 < len(tokens) and joined(i + 1, i + 2) and \
                    tokens[i + 2].lower() in UNITS and UNITS[tokens[i + 2].lower()] < 10:
                found.append(((i, i + 2),
                              f"{UNITS[words[0]]}:{UNITS[tokens[i + 2].lower()]:02d}"))
                i += 3
                continue
            rest = _number_run(tokens, gaps, i + 1)
            minutes = _value([t.lower() for t in tokens[i + 1:i + 1 + rest]]) if rest else None
            if minutes is not None and 10 <= minutes <= 59:
                found.append(((i, i + rest), f"{UNITS[words[0]]}:{minutes:02d}"))
                i += 1 + rest
                continue
        # "four four seven one": a run of single digits is one code
        j = i
        while j < len(tokens) and tokens[j].lower() in UNITS and \
                UNITS[tokens[j].lower()] < 10 and (j == i or joined(j - 1, j)):
            j += 1
        if j - i >= 3:
            found.append(((i, j - 1), "".join(str(UNITS[t.lower()]) for t in tokens[i:j])))
            i = j
            continue
        value = _value(words)
        after = tokens[i + run].lower() if i + run < len(tokens) and \
            joined(i + run - 1, i + run) else ""
        if value is not None and (run > 1 or before in _BEFORE or bool(_AFTER.match(after))):
            found.append(((i, i + run - 1), str(value)))
        i += run
    return found
