"""The approval desk: decides, expires and escalates approvals, and shows them as cards.

An approval is a durable row; a decision is one conditional UPDATE, so of two presses (a double
tap, Telegram and the console, two instances) exactly one wins and the other is told the card
is already decided. The desk never runs a plan: it returns the ids of plans to continue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from graph.events import ApprovalCard, Inbound, Reply
from graph.timefmt import when_text
from memory.models import Approval, utcnow
from memory.stores import Storage

VERDICTS = {"approve": "approved", "reject": "rejected"}


class ApprovalDesk:
    """See the module docstring.

    Args:
        storage: the stores.
        timezone: the operator's zone, for times on cards and notices.
    """

    def __init__(self, *, storage: Storage, timezone: ZoneInfo) -> None:
        self.storage = storage
        self.timezone = timezone

    async def decide(self, inbound: Inbound) -> tuple[list[str], list[Reply]]:
        """Record a button press (fast): the verdict first, then the event, so a press that a
        crash interrupts is simply processed again when the platform re-delivers it.

        Returns:
            The plans to continue (the decided one, and any whose approval just expired), and
            immediate notices (a stale or unknown card).
        """
        def notice(text: str) -> list[Reply]:
            return [Reply("notice", inbound.channel, inbound.chat, text=text)]

        event_key = f"{inbound.channel}:{inbound.event_id}"
        if await self.storage.inbox.seen(event_key):
            return [], []
        plans: list[str] = []
        replies: list[Reply] = []
        status = VERDICTS.get(inbound.verb or "")
        approval = await self.storage.approvals.get(inbound.approval_id or "")
        if status is None:
            replies = notice(f"Unknown button {inbound.verb!r}.")
        elif not inbound.approval_id:
            replies = notice("There is no card to answer; /approvals shows what is waiting.")
        elif approval is None:
            replies = notice(f"There is no approval {inbound.approval_id!r}.")
        else:
            unknown_copy = False
            if (inbound.attachment or {}).get("kind") == "card":
                # The pressed copy may be one we never learned the id of (a crash right after
                # posting it): remember it so that the outcome is shown there too.
                unknown_copy = await self.storage.approvals.attach_card(
                    approval.id, inbound.channel, inbound.attachment["ref"])
            if await self.storage.approvals.decide(
                    approval.id, status=status, actor=inbound.actor,
                    audit={"actor": inbound.actor, "channel": inbound.channel,
                           "plan_id": approval.plan_id, "decision": status,
                           "dedup_key": f"{approval.id}:decision",
                           "detail": {"approval_id": approval.id}}):
                plans.append(approval.plan_id)
            else:
                if approval.status == "pending":  # lost only because it expired just now
                    plans += await self.expire()
                approval = await self.storage.approvals.get(approval.id)
                replies = notice(self.stale_text(approval))
                if approval.completed_at is None:
                    # Decided but not carried out (a crash in between): the old button
                    # finishes the job.
                    plans.append(approval.plan_id)
                elif unknown_copy:
                    replies.append(self.card_reply("card_update", approval))
        await self.storage.inbox.accept(event_id=event_key, channel=inbound.channel)
        return list(dict.fromkeys(plans)), replies

    def stale_text(self, approval: Approval) -> str:
        """What a press on an already decided or expired card is told."""
        when = when_text(approval.decided_at, self.timezone)
        if approval.status == "expired":
            return f"This card expired ({when}); nothing was sent. Ask again to get a new card."
        text = f"Already {approval.status} by {approval.decided_by} at {when}"
        if approval.receipt_id:
            text += f" — receipt {approval.receipt_id}"
        return text + "."

    def card_for(self, approval: Approval) -> ApprovalCard:
        """The card of ``approval`` as it stands now."""
        tz = self.timezone
        outcome = ""
        if approval.status == "expired":
            outcome = f"Expired at {when_text(approval.decided_at, tz)} — nothing was sent"
        elif approval.status != "pending":
            outcome = (f"{approval.status.capitalize()} by {approval.decided_by} at "
                       f"{when_text(approval.decided_at, tz)}")
            if approval.receipt_id:
                outcome += f" — receipt {approval.receipt_id}"
            elif approval.status == "approved" and approval.completed_at is not None:
                outcome += " — failed, see /audit"
            elif approval.status == "rejected":
                outcome += " — nothing was sent"
        return ApprovalCard(approval_id=approval.id, reason=approval.reason, risk=approval.risk,
                            diffs=approval.diff.get("steps", []), expires_at=approval.expires_at,
                            status=approval.status, outcome=outcome)

    def card_reply(self, kind: str, approval: Approval, *, channel: str | None = None,
                   chat: str | None = None) -> Reply:
        """A ``card`` or ``card_update`` reply for ``approval``, to where it was asked unless
        ``channel`` and ``chat`` say otherwise."""
        return Reply(kind, channel or approval.channel, chat or approval.chat,
                     card=self.card_for(approval), card_refs=approval.card_refs)

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
                replies.append(self.card_reply("card", approval, channel=channel, chat=chat))
        return replies
