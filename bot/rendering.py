"""Every way Solo OS draws things for the operator: approval cards as console text, Telegram HTML
and Slack Block Kit, their buttons, outcome lines, and long text split for a platform's limits.

One place, so a card reads the same on every surface; times use :func:`graph.timefmt.when_text`.
"""

from __future__ import annotations

from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from graph.events import ApprovalCard
from graph.timefmt import when_text

MAX_FIELD = 600
MAX_SECTION = 2900  # a Slack section block's text is limited to 3,000 characters


def truncate(text: str, limit: int = MAX_FIELD) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters not shown]"


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


def _step_heading(card: ApprovalCard, step: dict[str, Any]) -> str:
    """``2. POST to webhook "crm" · high risk`` (+ its status once it differs from waiting)."""
    heading = step["title"]
    if len(card.steps) > 1:
        heading = f"{step['number']}. {heading} · {step['risk']} risk"
        if step["status"] not in ("waiting", "proposed", "pending"):
            heading += f" · {step['status']}"
        elif not step["decide"]:
            heading += " · runs without approval"
    return heading


def _header(card: ApprovalCard, timezone: ZoneInfo) -> str:
    return (f"Approval {card.approval_id} · {card.risk.upper()} risk · "
            f"cost estimate: {card.cost} · "
            f"expires {when_text(card.expires_at, timezone)}")


def diff_lines(card: ApprovalCard, *, limit: int = MAX_FIELD) -> list[str]:
    """The card's steps as lines: a heading per step, then ``name: value`` per field."""
    lines = []
    for step in card.steps:
        lines.append(_step_heading(card, step))
        for name, before, after in step["fields"]:
            if before is None:
                lines.append(f"  {name}: {truncate(after, limit)}")
            else:
                lines.append(f"  {name}: {truncate(before, limit)} → {truncate(after, limit)}")
    return lines


def console_keys(card: ApprovalCard) -> str:
    """What to type in ``solo chat`` for the card's buttons, e.g.
    ``[a]pprove / [r]eject / [e]dit   (or: a ID / r ID / e ID)``."""
    labels = [label for row in card.buttons for label, _ in row]
    whole = [label for label in ("Approve", "Reject", "Edit", "Undo") if label in labels]
    if not whole:
        return ""
    keys = " / ".join(f"[{label[0].lower()}]{label[1:].lower()}" for label in whole)
    text = f"{keys}   (or: " + " / ".join(f"{label[0].lower()} {card.approval_id}"
                                           for label in whole) + ")"
    steps = [label.split(" ")[1] for label in labels if label.startswith("Approve ")]
    if steps:
        text += (f"; one step at a time: a {card.approval_id} N / r {card.approval_id} N "
                 f"(N = {', '.join(steps)})")
    return text


def render_card_text(card: ApprovalCard, *, timezone: ZoneInfo) -> str:
    """The whole card as plain text, with the console's answer keys."""
    body = [f"┌─ {_header(card, timezone)}", f"│ {card.reason}"]
    body += [f"│ {line}" for line in diff_lines(card)]
    if card.outcome:
        body.append(f"│ {card.outcome}")
    body.append(f"└─ {console_keys(card) or 'decided'}")
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
    lines = [f"<b>{escape(_header(card, timezone))}</b>", escape(card.reason)]
    for step in card.steps:
        lines.append(f"<b>{escape(_step_heading(card, step))}</b>")
        for name, before, after in step["fields"]:
            after_html = f"<code>{escape(truncate(after, field_limit))}</code>"
            if before is None:
                lines.append(f"{escape(name)}: {after_html}")
            else:
                lines.append(f"{escape(name)}: <s>{escape(truncate(before, field_limit))}</s> → "
                             f"{after_html}")
    if card.outcome:
        lines.append(f"<b>{escape(card.outcome)}</b>")
    return "\n".join(lines)


def card_blocks(card: ApprovalCard, *, timezone: ZoneInfo) -> list[dict[str, Any]]:
    """Block Kit for an approval card: the steps, a context line, the outcome, the buttons."""
    diff = "\n".join(diff_lines(card))
    if len(diff) > MAX_SECTION:
        diff = f"{diff[:MAX_SECTION]}\n… [{len(diff) - MAX_SECTION} more characters not shown]"
    expires = when_text(card.expires_at, timezone)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"*Approval `{card.approval_id}`* — {card.reason}"[
                                         :MAX_SECTION]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{diff}```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"Risk: *{card.risk}* · cost estimate: {card.cost} · expires {expires}")}]},
    ]
    if card.outcome:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"*{card.outcome}*"[:MAX_SECTION]}]})
    for number, row in enumerate(card.buttons):
        blocks.append({"type": "actions", "block_id": f"decide-{number}", "elements": [
            {"type": "button", "action_id": data, "text": {"type": "plain_text", "text": label},
             "value": data, **_slack_style(label)} for label, data in row]})
    return blocks


def _slack_style(label: str) -> dict[str, str]:
    if label.startswith("Approve"):
        return {"style": "primary"}
    if label.startswith(("Reject", "Undo")):
        return {"style": "danger"}
    return {}


def keyboard_rows(card: ApprovalCard) -> list[list[dict[str, str]]]:
    """The card's buttons as Telegram inline keyboard rows (``text``, ``callback_data``)."""
    return [[{"text": label, "callback_data": data} for label, data in row]
            for row in card.buttons]
