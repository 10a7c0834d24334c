"""The approval desk: decides, edits, undoes, expires and escalates approvals, and shows them as
cards.

An approval is a durable row covering the risky steps of one version of a plan; a decision is one
conditional UPDATE, so of two presses (a double tap, Telegram and the console, two instances)
exactly one wins and the other is told the card is already decided. Steps can be decided all at
once or one by one. An edit supersedes the approval (its buttons stop working) and the plan asks
again with the new version. The desk never runs a plan: it returns the ids of plans to continue.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from graph.events import ApprovalCard, Inbound, Reply
from graph.policy import Policy
from graph.timefmt import when_text
from memory.models import Approval, PlanStep, utcnow
from memory.stores import Storage

VERDICTS = {"approve": "approved", "reject": "rejected"}
VERBS = (*VERDICTS, "edit", "undo")
PER_STEP_BUTTONS = 5
"""Cards with more risky steps than this offer only the whole-plan buttons (chat keyboards
have little room)."""
_NUMBERED_EDIT = re.compile(r"^\s*(\d{1,2})[.:)]?\s+(.+)$", re.DOTALL)


def _editable(step: PlanStep) -> bool:
    return step.status == "waiting" and isinstance(step.action.get("args", {}).get("text"), str)


class ApprovalDesk:
    """See the module docstring.

    Args:
        storage: the stores.
        timezone: the operator's zone, for times on cards and notices.
        policy: undo windows per action.
    """

    def __init__(self, *, storage: Storage, timezone: ZoneInfo,
                 policy: Policy | None = None) -> None:
        self.storage = storage
        self.timezone = timezone
        self.policy = policy or Policy()

    async def decide(self, inbound: Inbound) -> tuple[list[str], list[Reply]]:
        """Record a button press (fast): the verdict first, then the event, so a press that a
        crash interrupts is simply processed again when the platform re-delivers it.

        A button carries ``verb:approval`` or ``verb:approval:step`` (``step`` from 1).

        Returns:
            The plans to continue (the decided one, and any whose approval just expired), and
            immediate answers (a stale or unknown card, an edit prompt, a refreshed card).
        """
        event_key = f"{inbound.channel}:{inbound.event_id}"
        approval_id = (inbound.approval_id or "").partition(":")[0]
        # Few round trips on this path: the platform waits for it (one read here, the
        # verdict and the event in one write in _verdict).
        seen, approval, steps = await self.storage.approvals.press_context(approval_id,
                                                                           event_key)
        if seen:
            return [], []
        recorded: list[bool] = []
        plans, replies = await self._press(inbound, approval, steps, recorded)
        if not recorded:
            await self.storage.inbox.accept(event_id=event_key, channel=inbound.channel)
        return list(dict.fromkeys(plans)), replies

    async def _press(self, inbound: Inbound, approval: Approval | None, steps: list[PlanStep],
                     recorded: list[bool]) -> tuple[list[str], list[Reply]]:
        def notice(text: str) -> tuple[list[str], list[Reply]]:
            return [], [Reply("notice", inbound.channel, inbound.chat, text=text)]

        approval_id, _, step_text = (inbound.approval_id or "").partition(":")
        step = int(step_text) - 1 if step_text.isdigit() and int(step_text) > 0 else None
        if inbound.verb not in VERBS:
            return notice(f"Unknown button {inbound.verb!r}.")
        if not approval_id:
            return notice("There is no card to answer; /approvals shows what is waiting.")
        if approval is None:
            return notice(f"There is no approval {approval_id!r}.")
        unknown_copy = False
        pressed = inbound.attachment or {}
        if pressed.get("kind") == "card" and \
                pressed["ref"] not in (approval.card_refs or {}).get(inbound.channel, []):
            # The pressed copy may be one we never learned the id of (a crash right after
            # posting it): remember it so that the outcome is shown there too.
            unknown_copy = await self.storage.approvals.attach_card(
                approval.id, inbound.channel, pressed["ref"])
        if inbound.verb == "undo":
            return await self._undo(approval, step, inbound)
        if inbound.verb == "edit":
            won, replies = await self._start_edit(approval, step, inbound)
        else:
            won, replies = await self._verdict(approval, step, inbound, steps, recorded)
        if won is not None:
            return ([won] if won else []), replies
        # Lost: the card was decided, edited or expired before this press.
        plans: list[str] = []
        if approval.status == "pending":  # lost only because it expired just now
            plans += await self.expire()
        approval = await self.storage.approvals.get(approval.id)
        replies = [Reply("notice", inbound.channel, inbound.chat, text=self.stale_text(approval))]
        if approval.completed_at is None:
            # Decided but not carried out (a crash in between): the old button finishes the job.
            plans.append(approval.plan_id)
        elif unknown_copy:
            replies.append(self.card_reply("card_update", approval))
        return plans, replies

    async def _verdict(self, approval: Approval, step: int | None, inbound: Inbound,
                       steps: list[PlanStep], recorded: list[bool],
                       ) -> tuple[str | None, list[Reply]]:
        """Approve or reject the card (or one step of it). Returns the plan to continue ("" when
        steps are still waiting) and replies, or None when the press lost. A whole-card
        decision records the press's event in its own transaction (``recorded`` says so)."""
        status = VERDICTS[inbound.verb]
        now = utcnow()
        audit = {"actor": inbound.actor, "channel": inbound.channel, "plan_id": approval.plan_id,
                 "decision": status, "dedup_key": f"{approval.id}:decision",
                 "detail": {"approval_id": approval.id}}
        if step is None:
            holds = {s.position: now + self._window(s) for s in steps
                     if s.status == "waiting" and self._window(s)}
            won = await self.storage.approvals.decide(
                approval.id, status=status, actor=inbound.actor, now=now, audit=audit,
                holds=holds if status == "approved" else None,
                event=(f"{inbound.channel}:{inbound.event_id}", inbound.channel))
            recorded.append(True)
            return (approval.plan_id if won else None), []
        chosen = next((s for s in steps if s.position == step), None)
        window = self._window(chosen) if chosen else None
        hold = now + window if window else None
        won, decided = await self.storage.approvals.decide_step(
            approval.id, position=step, status=status, actor=inbound.actor, now=now,
            hold_until=hold, audit={**audit, "dedup_key": f"{approval.id}:decision:{step}",
                                    "detail": {"approval_id": approval.id, "step": step + 1}})
        if not won:
            if chosen is not None and chosen.status != "waiting" and \
                    (await self.storage.approvals.get(approval.id)).status == "pending":
                return "", [Reply("notice", inbound.channel, inbound.chat,
                                  text=f"Step {step + 1} is already {chosen.status}.")]
            return None, []
        if decided:
            return approval.plan_id, []
        refreshed = await self.storage.approvals.get(approval.id)
        return "", [self.card_reply("card_update", refreshed)]

    def _window(self, step: PlanStep) -> timedelta:
        return self.policy.undo_window(step.action)

    async def _start_edit(self, approval: Approval, step: int | None,
                          inbound: Inbound) -> tuple[str | None, list[Reply]]:
        """Ask for the new text of a step; the operator's next message is it."""
        def message(text: str) -> list[Reply]:
            return [Reply("message", inbound.channel, inbound.chat, text=text)]

        if approval.status != "pending":
            return None, []
        editable = [s for s in await self.storage.plans.steps(approval.plan_id) if _editable(s)]
        if step is not None:
            editable = [s for s in editable if s.position == step]
        if not editable:
            return "", message("Nothing on this card can be edited; Reject it and ask again.")
        chosen = editable[0] if len(editable) == 1 else None
        if not await self.storage.approvals.start_edit(approval.id, editing={
                "actor": inbound.actor, "channel": inbound.channel, "chat": inbound.chat,
                "step": chosen.position if chosen else None}):
            return None, []
        if chosen is None:
            options = "\n".join(f"  {s.position + 1}. {s.diff.get('title', s.kind)}: "
                                f"{s.action['args']['text'][:80]}" for s in editable)
            return "", message(
                f"Which step? Send its number and the new text, e.g. "
                f"\"{editable[0].position + 1} new text\":\n{options}\n"
                "The card is shown again for approval; commands (/...) work as usual meanwhile.")
        return "", message(
            f"Editing step {chosen.position + 1} ({chosen.diff.get('title', chosen.kind)}). "
            f"Send the new text as your next message; it replaces:\n"
            f"{chosen.action['args']['text']}\n"
            "The card is shown again for approval; commands (/...) work as usual meanwhile.")

    async def being_edited(self, inbound: Inbound) -> Approval | None:
        """The card whose edit ``inbound`` is, if it is plain text from someone editing one."""
        if inbound.verb is not None or not inbound.text.strip() or \
                inbound.text.lstrip().startswith("/"):
            return None
        return await self.storage.approvals.being_edited(channel=inbound.channel,
                                                         actor=inbound.actor)

    async def apply_edit(self, inbound: Inbound,
                         approval: Approval) -> tuple[list[str], list[Reply]]:
        """Make ``inbound``'s text the new text of the step being edited: the approval is
        superseded (its buttons no longer run anything) and the plan asks again.

        Returns:
            The plan to continue and the replies (the old card's update, or a problem).
        """
        event_key = f"{inbound.channel}:{inbound.event_id}"
        if await self.storage.inbox.seen(event_key):
            return [], []
        plans, replies = await self._edit(inbound, approval)
        await self.storage.inbox.accept(event_id=event_key, channel=inbound.channel)
        return plans, replies

    async def _edit(self, inbound: Inbound, approval: Approval) -> tuple[list[str], list[Reply]]:
        def message(text: str) -> tuple[list[str], list[Reply]]:
            return [], [Reply("message", inbound.channel, inbound.chat, text=text)]

        text = inbound.text.strip()
        position = approval.editing.get("step")
        if position is None:
            numbered = _NUMBERED_EDIT.match(text)
            if numbered is None:
                return message("Start with the step number, e.g. \"2 new text\".")
            position, text = int(numbered[1]) - 1, numbered[2].strip()
        step = next((s for s in await self.storage.plans.steps(approval.plan_id)
                     if s.position == position), None)
        if step is None or not _editable(step):
            return message(f"Step {position + 1} cannot be edited; send another number.")
        before = step.action["args"]["text"]
        action = {**step.action, "args": {**step.action["args"], "text": text}}
        if not await self.storage.approvals.supersede(
                approval.id, position=position, action=action, actor=inbound.actor,
                audit={"actor": inbound.actor, "channel": inbound.channel,
                       "plan_id": approval.plan_id, "decision": "edited",
                       "dedup_key": f"{approval.id}:decision",
                       "detail": {"approval_id": approval.id, "step": position + 1,
                                  "before": before[:500], "after": text[:500]}}):
            approval = await self.storage.approvals.get(approval.id)
            return message(self.stale_text(approval))
        approval = await self.storage.approvals.get(approval.id)
        return [approval.plan_id], [self.card_reply("card_update", approval)]

    async def _undo(self, approval: Approval, step: int | None,
                    inbound: Inbound) -> tuple[list[str], list[Reply]]:
        undone = await self.storage.plans.undo(approval.plan_id, actor=inbound.actor,
                                               channel=inbound.channel, position=step)
        if undone:
            # The plan carries on: undone steps (and what depends on them) do not run.
            return [approval.plan_id], []
        text = "Nothing on this card is waiting to run, so there is nothing to undo."
        if approval.receipt_id:
            text = (f"Too late to undo here: it ran (receipt {approval.receipt_id}). "
                    f"/undo {approval.receipt_id} proposes taking it back where that is possible.")
        return [], [Reply("notice", inbound.channel, inbound.chat, text=text)]

    def stale_text(self, approval: Approval) -> str:
        """What a press on an already decided, edited or expired card is told."""
        when = when_text(approval.decided_at, self.timezone)
        if approval.status == "expired":
            return f"This card expired ({when}); nothing was sent. Ask again to get a new card."
        if approval.status == "superseded":
            return (f"This card was replaced by an edit ({when}); nothing was sent. "
                    "Answer the new card.")
        text = f"Already {approval.status} by {approval.decided_by} at {when}"
        if approval.receipt_id:
            text += f" — receipt {approval.receipt_id}"
        return text + "."

    async def card_for(self, approval: Approval) -> ApprovalCard:
        """The card of ``approval`` as it stands now: the steps it was shown with, each step's
        status, and the buttons that still mean something."""
        now = utcnow()
        stored = {s.position: s for s in await self.storage.plans.steps(approval.plan_id)}
        diffs = approval.diff.get("steps", [])
        # Older approvals (and budget cards) carry no per-step facts: they decide every step.
        decide = set(approval.diff.get("decide", range(len(diffs))))
        risks = approval.diff.get("risks") or [approval.risk] * len(diffs)
        live = approval.status not in ("superseded", "expired")
        steps = []
        for position, diff in enumerate(diffs):
            row = stored.get(position)
            status = row.status if row is not None and live else approval.status
            steps.append({"number": position + 1, "title": diff["title"],
                          "fields": diff["fields"], "risk": risks[position],
                          "decide": position in decide, "status": status,
                          "held_until": row.hold_until if row is not None and live and
                          row.status == "approved" and row.hold_until and row.hold_until > now
                          else None})
        cost, calls = await self.storage.audit.model_cost(plan_id=approval.plan_id)
        return ApprovalCard(
            approval_id=approval.id, reason=approval.reason, risk=approval.risk, steps=steps,
            expires_at=approval.expires_at, status=approval.status,
            outcome=self._outcome(approval, steps),
            buttons=self._buttons(approval, steps, stored),
            cost=f"${cost:.4f} in model calls so far" if calls else "no model cost")

    def _outcome(self, approval: Approval, steps: list[dict[str, Any]]) -> str:
        tz = self.timezone
        decided = [s for s in steps if s["decide"] and s["status"] not in ("waiting",
                                                                           "proposed")]
        by_step = ", ".join(f"step {s['number']} {s['status']}" for s in decided)
        if approval.status == "pending":
            return f"Decided so far: {by_step}" if decided else ""
        when = when_text(approval.decided_at, tz)
        if approval.status == "expired":
            return f"Expired at {when} — nothing was sent"
        if approval.status == "superseded":
            return f"Replaced by an edit from {approval.decided_by} at {when} — see the new card"
        verdicts = {s["status"] for s in steps if s["decide"]}
        outcome = f"{approval.status.capitalize()} by {approval.decided_by} at {when}"
        if len(verdicts - {"done", "failed", "skipped"}) > 1:
            outcome = f"Decided by {approval.decided_by} at {when}: {by_step}"
        held = [s["held_until"] for s in steps if s["held_until"]]
        if held:
            until = max(held)
            seconds = max(1, math.ceil((until - utcnow()).total_seconds()))
            return (f"{outcome} — runs in {seconds} s (at "
                    f"{until.astimezone(tz).strftime('%H:%M:%S')}) unless you press Undo")
        if approval.receipt_id:
            outcome += f" — receipt {approval.receipt_id}"
        elif approval.status == "approved" and approval.completed_at is not None and \
                "undone" in verdicts:
            outcome += " — undone, nothing was sent"
        elif approval.status == "approved" and approval.completed_at is not None:
            outcome += " — failed, see /audit"
        elif approval.status == "rejected":
            outcome += " — nothing was sent"
        return outcome

    @staticmethod
    def _buttons(approval: Approval, steps: list[dict[str, Any]],
                 stored: dict[int, PlanStep]) -> list[list[tuple[str, str]]]:
        ref = approval.id
        if any(s["held_until"] for s in steps):
            return [[("Undo", f"undo:{ref}")]]
        if approval.status != "pending":
            return []
        waiting = [s for s in steps if s["decide"] and s["status"] == "waiting"]
        if not waiting and any(s["decide"] for s in steps):
            return []
        rows = [[("Approve", f"approve:{ref}"), ("Reject", f"reject:{ref}")]]
        if any(_editable(stored[s["number"] - 1]) for s in waiting if s["number"] - 1 in stored):
            rows[0].append(("Edit", f"edit:{ref}"))
        deciding = [s for s in steps if s["decide"]]
        if 1 < len(deciding) <= PER_STEP_BUTTONS:
            rows += [[(f"Approve {s['number']}", f"approve:{ref}:{s['number']}"),
                      (f"Reject {s['number']}", f"reject:{ref}:{s['number']}")]
                     for s in waiting]
        return rows

    @staticmethod
    def card_reply(kind: str, approval: Approval, *, channel: str | None = None,
                   chat: str | None = None) -> Reply:
        """A ``card`` or ``card_update`` reply for ``approval``, to where it was asked unless
        ``channel`` and ``chat`` say otherwise."""
        return Reply(kind, channel or approval.channel, chat or approval.chat,
                     approval_id=approval.id)

    async def pending_cards(self) -> list[Reply]:
        """Cards for every pending approval, addressed to where each was asked."""
        return [self.card_reply("card", a) for a in await self.storage.approvals.pending()]

    async def attach_card(self, approval_id: str, channel: str, ref: Any) -> None:
        """Remember where a card was posted, so its outcome can be shown there later."""
        await self.storage.approvals.attach_card(approval_id, channel, ref)

    async def expire(self) -> list[str]:
        """Expire approvals past their time (audited); return their plans, to be finished."""
        plans = []
        for approval_id in await self.storage.approvals.expire_due():
            approval = await self.storage.approvals.get(approval_id)
            await self.storage.audit.append(
                actor="system", channel=approval.channel, plan_id=approval.plan_id,
                decision="expired", dedup_key=f"{approval.id}:decision",
                detail={"approval_id": approval.id})
            plans.append(approval.plan_id)
        return plans

    async def escalate(self, *, targets: dict[str, list[str]], after: timedelta,
                       now: datetime | None = None) -> list[Reply]:
        """Climb the ladder for unanswered cards: a reminder with the card in its own chat
        after ``after``, the card on the other channels after twice that. Each rung is taken
        once (expiry, the last rung, is :meth:`expire`)."""
        now = now or utcnow()
        tz = self.timezone
        replies: list[Reply] = []
        for approval in await self.storage.approvals.pending():
            age = now - approval.created_at
            level = approval.escalation_level
            if level == 0 and age >= after:
                places = [(approval.channel, approval.chat)]
            elif level == 1 and age >= 2 * after:
                places = [(channel, chat) for channel, chats in targets.items()
                          if channel != approval.channel for chat in chats]
            else:
                continue
            if not await self.storage.approvals.escalate(approval.id, from_level=level):
                continue
            await self.storage.audit.append(
                actor="system", channel=approval.channel, plan_id=approval.plan_id,
                decision=f"escalated.{level + 1}", dedup_key=f"{approval.id}:escalated:{level}",
                detail={"approval_id": approval.id, "to": [c for c, _ in places]})
            for channel, chat in places:
                replies.append(Reply("message", channel, chat, text=(
                    f"Still waiting for your decision (asked "
                    f"{when_text(approval.created_at, tz)}); without one it expires "
                    f"{when_text(approval.expires_at, tz)} and nothing is sent.")))
                replies.append(self.card_reply("card", approval, channel=channel,
                                                     chat=chat))
        return replies
