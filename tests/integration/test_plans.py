"""Plans the operator can see and repair, in the console's words: /plans, /plan, /retry,
/cancel — on both storage backends."""

from __future__ import annotations

from bot.adapters.memory import InMemoryAdapter
from tests.fakes.webhooks import WebhookReceiver


def card_of(sent: list) -> object:
    return next(s.card for s in sent if s.kind == "card")


async def plan_id_of(chat: InMemoryAdapter, text: str) -> str:
    """The short id /plans shows for the plan whose request was ``text``."""
    listing = (await chat.say("/plans"))[0].text
    line = next(line for line in listing.splitlines() if line.endswith(text))
    return line.split(" · ")[0]


async def test_plans_lists_open_first_and_plan_shows_steps_and_receipts(
        chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    await chat.say("/note kept in the vault")
    await chat.say("/send crm waiting for a tap")
    listing = (await chat.say("/plans"))[0].text
    lines = listing.splitlines()
    assert lines[0].startswith("Plans (open first")
    assert "waiting" in lines[1] and lines[1].endswith("/send crm waiting for a tap")
    assert any("done" in line and "1/1 steps done" in line for line in lines[2:])

    note = (await chat.say(f"/plan {await plan_id_of(chat, '/note kept in the vault')}"))[0].text
    assert "\n1. " in note and "low risk · done · receipt r" in note
    assert " · done · from a message by operator on memory at " in note
    waiting_id = await plan_id_of(chat, "/send crm waiting for a tap")
    shown = (await chat.say(f"/plan {waiting_id}"))[0].text
    assert "high risk · waiting" in shown and "Approval " in shown and ": pending" in shown
    assert f"/cancel {waiting_id}" in shown and "Last checkpoint:" in shown
    assert "There is no plan 'nope00'" in (await chat.say("/plan nope00"))[0].text
    assert "Usage: /plan ID" in (await chat.say("/plan"))[0].text


async def test_retry_after_the_cause_is_fixed_delivers_once_under_the_original_key(
        chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    receiver.script = [400]  # the target refuses until its owner fixes it
    card = card_of(await chat.say("/send crm Invoice 7 is paid"))
    failed = await chat.press("approve", card.approval_id)
    assert any("Failed:" in s.text and "HTTP 400" in s.text for s in failed)
    plan = await plan_id_of(chat, "/send crm Invoice 7 is paid")
    assert "high risk · failed · webhook:crm: HTTP 400" in \
        (await chat.say(f"/plan {plan}"))[0].text
    first_key = receiver.posts[0].key

    retried = await chat.say(f"/retry {plan}")
    assert [s.kind for s in retried] == ["message"]  # approved once already: no second card
    assert "Done: posted to \"crm\" (HTTP 200) — receipt r" in retried[0].text
    assert receiver.deliveries_of("Invoice 7 is paid") == 1
    assert [p.key for p in receiver.posts] == [first_key, first_key]
    assert "· done · receipt r" in (await chat.say(f"/plan {plan}"))[0].text

    again = (await chat.say(f"/retry {plan}"))[0].text
    assert "no failed step to retry" in again
    assert receiver.deliveries_of("Invoice 7 is paid") == 1


async def test_cancel_stops_a_waiting_plan_and_its_card_says_so(
        chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    card = card_of(await chat.say("/send crm maybe later"))
    plan = await plan_id_of(chat, "/send crm maybe later")
    cancelled = await chat.say(f"/cancel {plan}")
    assert cancelled[0].text.startswith(f"Cancelled plan {plan}")
    assert any(s.kind == "message" and "Rejected: POST" in s.text for s in cancelled)
    assert any(s.kind == "card_update" and s.card.status == "rejected" for s in cancelled)
    late = await chat.press("approve", card.approval_id)
    assert "Already rejected" in late[0].text
    assert receiver.posts == []
    assert "nothing waiting to cancel" in (await chat.say(f"/cancel {plan}"))[0].text
    assert "· rejected" in (await chat.say(f"/plan {plan}"))[0].text
    decisions = [e.decision for e in await chat.app.storage.audit.recent()]
    assert "cancelled" in decisions


async def test_undo_proposes_trashing_a_note_through_a_card(
        chat: InMemoryAdapter, settings) -> None:
    done = (await chat.say("/note call Acme on Friday"))[0].text
    receipt = done.rsplit("receipt ", 1)[1].strip()
    notes = settings.storage.data_dir / "notes"
    (note,) = notes.glob("*.md")
    card = card_of(await chat.say(f"/undo {receipt}"))
    assert card.diffs[0]["title"] == "Move a note to the trash"
    assert ["file", note.name, f".trash/{note.name}"] in card.diffs[0]["fields"]
    assert note.exists()  # proposed, not done
    taken_back = await chat.press("approve", card.approval_id)
    assert any(f"Done: note {note.name} moved to the trash" in s.text for s in taken_back)
    assert not note.exists() and len(list((notes / ".trash").glob("*.md"))) == 1
    gone = (await chat.say(f"/undo {receipt}"))[0].text
    assert f"there is no note {note.name} in the vault any more" in gone


async def test_undo_says_so_where_nothing_can_be_taken_back(
        chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    card = card_of(await chat.say("/send crm posted for good"))
    done = await chat.press("approve", card.approval_id)
    receipt = next(s.text for s in done if "receipt r" in s.text).rsplit("receipt ", 1)[1]
    answer = (await chat.say(f"/undo {receipt.strip()}"))[0].text
    assert "cannot be taken back: webhook:crm has no undo" in answer
    assert "undo_seconds" in answer
    assert "There is no receipt 'rnope'" in (await chat.say("/undo rnope"))[0].text
    assert "Usage: /undo RECEIPT" in (await chat.say("/undo"))[0].text
    assert receiver.deliveries_of("posted for good") == 1


async def test_cancel_inside_an_undo_window_sends_nothing(
        chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    chat.app.director.deps.policy.undo_seconds["webhook.post"] = 30
    card = card_of(await chat.say("/send crm hold this one"))
    held = await chat.press("approve", card.approval_id)
    assert any(s.card and "unless you press Undo" in s.card.outcome for s in held)
    plan = await plan_id_of(chat, "/send crm hold this one")
    cancelled = await chat.say(f"/cancel {plan}")
    assert any(f"Cancelled plan {plan}" in s.text for s in cancelled)
    assert any("Undone: POST" in s.text for s in cancelled)
    assert receiver.posts == []


async def test_writes_to_solo_os_own_state_are_steps_with_receipts(chat: InMemoryAdapter) -> None:
    done = (await chat.say("/remember Dana prefers calls"))[0].text
    fact_id, receipt = done.split()[2], done.rsplit("receipt ", 1)[1].strip()
    shown = (await chat.say(f"/plan {await plan_id_of(chat, '/remember Dana prefers calls')}"))
    assert f"1. Remember a fact · low risk · done · receipt {receipt}" in shown[0].text
    assert "Dana prefers calls" in (await chat.say("/memory Dana"))[0].text
    undone = (await chat.say(f"/undo {receipt}"))[0].text
    assert undone.startswith(f"Done: forgot {fact_id}: its text is erased")
    assert "Dana prefers calls" not in (await chat.say("/memory Dana"))[0].text
    audit = (await chat.say("/audit"))[0].text
    assert "forgotten by operator" in audit and f"receipt {receipt}" in audit
