"""How times are shown to the operator: one format everywhere (replies, cards, summaries)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from connectors.calendar import CalendarEntry


def when_text(moment: datetime | None, tz: ZoneInfo, *, weekday: bool = False) -> str:
    """``2026-11-23 09:14 CET`` (``Mon 2026-11-23 09:14 CET`` with ``weekday``) in the
    operator's zone; ``?`` when there is no time."""
    if moment is None:
        return "?"
    return moment.astimezone(tz).strftime(("%a " if weekday else "") + "%Y-%m-%d %H:%M %Z")


def event_line(event: CalendarEntry, zone: ZoneInfo) -> str:
    """``10:00–10:30 Acme call`` in ``zone`` (``all day …`` for all-day events)."""
    if event.all_day or event.start is None or event.end is None:
        return f"all day {event.title}"
    return f"{event.start.astimezone(zone):%H:%M}–{event.end.astimezone(zone):%H:%M} " \
           f"{event.title}"
