"""Plain-text rendering of approval cards (the console; other adapters build on the parts)."""

from __future__ import annotations

from html import escape
from zoneinfo import ZoneInfo

from graph.events import ApprovalCard
from graph.timefmt import when_text

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
    expires = when_text(card.expires_at, timezone)
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


def render_card_html(card: ApprovalCard, *, timezone: ZoneInfo, limit: int = 4000) -> str:
    """The card in Telegram's HTML, within ``limit`` characters (long fields are cut first)."""
    field_limit = MAX_FIELD
    while True:
        html = _card_html(card, timezone, field_limit)
        if len(html) <= limit or field_limit < 50:
            return html[:limit]
        field_limit //= 2


def _card_html(card: ApprovalCard, timezone: ZoneInfo, field_limit: int) -> str:
    expires = when_text(card.expires_at, timezone)
    lines = [f"<b>Approval {card.approval_id}</b> · {card.risk.upper()} risk · expires {expires}",
             escape(card.reason)]
    for diff in card.diffs:
        lines.append(f"<b>{escape(diff['title'])}</b>")
        for name, before, after in diff["fields"]:
            after_html = f"<code>{escape(truncate(after, field_limit))}</code>"
            if before is None:
                lines.append(f"{escape(name)}: {after_html}")
            else:
                lines.append(f"{escape(name)}: <s>{escape(truncate(before, field_limit))}</s> → "
                             f"{after_html}")
    if not card.pending:
        lines.append(f"<b>{escape(card.outcome)}</b>")
    return "\n".join(lines)


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in chunks of at most ``limit`` characters, cut at line breaks where possible."""
    chunks: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = limit
        chunks.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text or not chunks:
        chunks.append(text)
    return chunks
