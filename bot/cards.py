"""Plain-text rendering of approval cards (the console; other adapters build on the parts)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from graph.events import ApprovalCard

MAX_FIELD = 600


def truncate(text: str, limit: int = MAX_FIELD) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters not shown]"


def diff_lines(card: ApprovalCard, *, limit: int = MAX_FIELD) -> list[str]:
    """The card's diffs as indented lines: a title per step, then ``name: value`` per field."""
    lines = []
    for diff in card.diffs:
        lines.append(diff["title"])
        for name, before, after in diff["fields"]:
            if before is None:
                lines.append(f"  {name}: {truncate(after, limit)}")
            else:
                lines.append(f"  {name}: {truncate(before, limit)} → {truncate(after, limit)}")
    return lines


def render_card_text(card: ApprovalCard, *, timezone: ZoneInfo) -> str:
    """The whole card as plain text, with the console's answer keys."""
    expires = card.expires_at.astimezone(timezone).strftime("%Y-%m-%d %H:%M %Z")
    body = [f"┌─ Approval {card.approval_id} · {card.risk.upper()} risk · expires {expires}",
            f"│ {card.reason}"]
    body += [f"│ {line}" for line in diff_lines(card)]
    if card.pending:
        body.append(f"└─ [a]pprove / [r]eject   (or: a {card.approval_id} / r {card.approval_id})")
    else:
        body.append(f"└─ {card.outcome}")
    return "\n".join(body)


def render_outcome_text(card: ApprovalCard) -> str:
    """One line for an edited card: ``Approval <id>: <outcome>``."""
    return f"Approval {card.approval_id}: {card.outcome}"
