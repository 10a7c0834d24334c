"""Cron expressions (``MIN HOUR DAY MONTH WEEKDAY``) read in the operator's time zone.

The next occurrence is a *local* wall-clock time, so "0 16 * * 5" is Friday 16:00 in summer and
in winter. Across DST: a time the clocks skip (02:30 on the spring-forward night) runs once,
shifted by the gap (03:30); a time that happens twice (the fall-back night) runs at its first
occurrence only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
          ("weekday", 0, 7))
MAX_DAYS = 366 * 5  # far enough for "29 2 * *"-like rarities


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed expression: the allowed values of each field."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is read as 0)
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Read ``text``.

        Raises:
            ValueError: not five fields, or a value outside its field's range (the message
                names the field).
        """
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"cron needs 5 fields (minute hour day month weekday), got "
                             f"{len(parts)}: {text!r}")
        sets = [_field(part, name, low, high) for part, (name, low, high) in zip(parts, FIELDS,
                                                                                   strict=True)]
        weekdays = frozenset(0 if d == 7 else d for d in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*",
                   parts[4] == "*")

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:  # cron's rule: restricted fields both count
            return dom and dow
        return dom or dow

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first occurrence strictly after ``after``, as an aware time in ``zone``."""
        local = after.astimezone(zone)
        day = datetime.combine(local.date(), time(), zone)
        for _ in range(MAX_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = _real(day.date(), hour, minute, zone)
                        if candidate is not None and candidate > after:
                            return candidate
            day += timedelta(days=1)
        raise ValueError("this cron expression has no occurrence in the next five years")


def _real(date: object, hour: int, minute: int, zone: ZoneInfo) -> datetime | None:
    """The wall-clock time on ``date`` as it really happens in ``zone``: the first of two on a
    fall-back night (fold 0); a time the clocks skip, shifted by the gap."""
    wall = datetime.combine(date, time(hour, minute), zone)  # type: ignore[arg-type]
    back = wall.astimezone(UTC).astimezone(zone)
    return back if (back.hour, back.minute) != (hour, minute) else wall


def _field(part: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if (step_text and not step_text.isdigit()) or step < 1:
            raise ValueError(f"cron {name}: bad step in {item!r}")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _number(first, name, low, high), _number(last, name, low, high)
        else:
            start = _number(body, name, low, high)
            end = high if step_text else start
        if start > end:
            raise ValueError(f"cron {name}: {item!r} runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _number(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"cron {name}: {text!r} is not a number from {low} to {high}")
    return int(text)
