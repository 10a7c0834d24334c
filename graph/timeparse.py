"""Time expressions in the operator's words, resolved in the operator's time zone.

The common forms are parsed here, deterministically ("tomorrow at 9", "in 2 hours", "on Friday
at 3pm", "next Monday morning", "2026-12-01 14:30"); anything else goes to dateparser. Both
are needed: dateparser alone read "tomorrow at 9" as 10:00 when the machine's zone differed
from the operator's, and "Monday at 9" as a date in September.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "half an": 0.5}
PARTS = {"morning": time(9), "noon": time(12), "lunchtime": time(12), "afternoon": time(15),
         "evening": time(19), "tonight": time(20), "midnight": time(0)}
UNITS = {"minute": 60, "min": 60, "hour": 3600, "day": 86400, "week": 604800}

_RELATIVE = re.compile(
    r"\bin\s+(?P<n>\d+(?:\.\d+)?|half an|an?|one|two|three|four|five|six|ten|fifteen|twenty|"
    r"thirty)\s+(?P<unit>minute|min|hour|day|week)s?\b", re.I)
_DATE = re.compile(r"\b(?:on\s+)?(?P<iso>\d{4}-\d{2}-\d{2})\b", re.I)
SHORT_DAYS = {"mon": "monday", "tue": "tuesday", "tues": "tuesday", "wed": "wednesday",
              "thu": "thursday", "thur": "thursday", "thurs": "thursday", "fri": "friday",
              "sat": "saturday", "sun": "sunday", "tmrw": "tomorrow", "tmr": "tomorrow",
              "tomorow": "tomorrow", "tommorow": "tomorrow"}
_DAY = re.compile(r"\b(?:(?P<every>every|each|weekly on)\s+|(?:on\s+)?(?P<next>next\s+)?)"
                  r"(?P<day>today|tonight|tomorrow|" + "|".join(WEEKDAYS) + "|" +
                  "|".join(sorted(SHORT_DAYS, key=len, reverse=True)) + r")\b", re.I)
_DAILY = re.compile(r"\b(?:every ?day|each day|daily|every (?=morning|evening|afternoon))\b",
                    re.I)
_LATE_PART = re.compile(r"\b(?:evening|tonight|afternoon)\b", re.I)
HOURS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
         "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_SPOKEN_HOUR = "|".join(HOURS)
# "at 3pm", "at 9", "14:30", and as said aloud: "at nine", "9 o'clock", "at ten o'clock"
_CLOCK = re.compile(r"\b(?:at\s+)?(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.)"
                    r"|\b(?:at\s+)?(?P<h4>\d{1,2}|" + _SPOKEN_HOUR + r")\s+o'?clock\b"
                    r"|\bat\s+(?P<h2>\d{1,2}|(?:" + _SPOKEN_HOUR + r")(?!\s+(?:of|point|go|time|"
                    r"another|stage|with|end|or)\b))(?::(?P<m2>\d{2}))?\b"
                    r"|\b(?P<h3>\d{1,2}):(?P<m3>\d{2})\b", re.I)
_PART = re.compile(r"\b(?:in\s+the\s+|this\s+|at\s+)?(?P<part>morning|noon|lunchtime|afternoon|"
                   r"evening|tonight|midnight)\b", re.I)


@dataclass(frozen=True, slots=True)
class When:
    """A resolved time expression.

    Attributes:
        at: the moment, aware, in the operator's zone.
        spans: where in the text the expression was (to cut it out of the rest).
        repeat: ``"weekly"`` or ``"daily"`` for "every Monday" / "every day", else None.
    """

    at: datetime
    spans: tuple[tuple[int, int], ...]
    repeat: str | None = None


def parse_when(text: str, *, now: datetime) -> When | None:
    """The first time expression in ``text`` relative to ``now`` (aware; its zone is the
    operator's), or None."""
    tz = now.tzinfo
    if match := _RELATIVE.search(text):
        amount = float(NUMBERS.get(match["n"].lower(), match["n"]) if not match["n"][0].isdigit()
                       else match["n"])
        # Elapsed time: add in UTC (aware arithmetic in one zone would add wall-clock time and
        # be an hour off across a DST change).
        later = now.astimezone(UTC) + timedelta(seconds=amount * UNITS[match["unit"].lower()])
        return When(later.astimezone(now.tzinfo), (match.span(),))
    spans: list[tuple[int, int]] = []
    day = None
    repeat = None
    today_if_ahead = False  # "every Sunday at 8pm" said on a Sunday morning starts tonight
    if match := _DATE.search(text):
        day = datetime.fromisoformat(match["iso"]).date()
        spans.append(match.span())
    elif match := _DAY.search(text):
        spans.append(match.span())
        word = SHORT_DAYS.get(match["day"].lower(), match["day"].lower())
        if word in ("today", "tonight"):
            day = now.date()
        elif word == "tomorrow":
            day = now.date() + timedelta(days=1)
        else:
            ahead = (WEEKDAYS.index(word) - now.weekday()) % 7
            today_if_ahead = ahead == 0 and bool(match["every"])
            if (ahead == 0 and not today_if_ahead) or match["next"]:
                ahead = ahead or 7
            day = now.date() + timedelta(days=ahead)
            repeat = "weekly" if match["every"] else None
    clock = None
    if match := _CLOCK.search(text):
        said = (match["h"] or match["h2"] or match["h3"] or match["h4"]).lower()
        hour = HOURS.get(said) or int(said)
        minute = int(match["m"] or match["m2"] or match["m3"] or 0)
        ampm = (match["ampm"] or "").lower().replace(".", "")
        if ampm == "pm" and hour < 12:
            hour += 12
        elif ampm == "am" and hour == 12:
            hour = 0
        elif not ampm and hour < 12 and _LATE_PART.search(text):
            hour += 12  # "this evening at 8" is 20:00
        elif not ampm and (match["h2"] or match["h4"]) and 1 <= hour <= 6:
            hour += 12  # "at 3" during the working day means 15:00
        if hour < 24 and minute < 60:
            clock = time(hour, minute)
            spans.append(match.span())
    if match := _PART.search(text):
        if clock is None:
            clock = PARTS[match["part"].lower()]
        spans.append(match.span())
        if day is None and match["part"].lower() == "tonight":
            day = now.date()
    if repeat is None and (match := _DAILY.search(text)):
        repeat = "daily"
        spans.append(match.span())
    if day is None and clock is None:
        return _fallback(text, now)
    if day is None:
        day = now.date()
        if datetime.combine(day, clock, tz) <= now:
            day += timedelta(days=1)
    if today_if_ahead and datetime.combine(day, clock or time(9), tz) <= now:
        day += timedelta(days=7)
    at = datetime.combine(day, clock or time(9), tz)
    return When(at, tuple(sorted(set(spans))), repeat)


def _fallback(text: str, now: datetime) -> When | None:
    from dateparser.search import search_dates

    zone = now.tzinfo.key if isinstance(now.tzinfo, ZoneInfo) else "UTC"
    found = search_dates(text, languages=["en"], settings={
        "TIMEZONE": zone, "TO_TIMEZONE": zone, "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future", "RELATIVE_BASE": now.replace(tzinfo=None),
        "REQUIRE_PARTS": ["day"]})
    if not found:
        return None
    phrase, at = found[0]
    at = at.astimezone(now.tzinfo)
    if at.time() == time(0) and "midnight" not in phrase.lower():
        at = at.replace(hour=9)  # a day without a time: the start of the working day
    start = text.find(phrase)
    return When(at, ((start, start + len(phrase)),))


def cut(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    """``text`` without ``spans``, whitespace tidied."""
    for start, end in sorted(set(spans), reverse=True):
        text = text[:start] + " " + text[end:]
    return re.sub(r"\s+", " ", text).strip(" ,.")
