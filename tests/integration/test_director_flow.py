"""The whole message flow through the real app, on SQLite and PostgreSQL, against a real HTTP
webhook receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import time_machine

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from config import Settings
from tests.fakes.webhooks import WebhookReceiver


def card_of(sent):
    cards = [s.card for s in sent if s.kind == "card"]
    assert len(cards) == 1, sent
    return cards[0]


async def test_note_runs_at_once_and_replies_with_its_receipt(chat: InMemoryAdapter,
                                                             settings: Settings) -> None:
    sent = await chat.say("/note pricing call went well, they want annual billing")
    assert [s.kind for s in sent] == ["message"]
    assert sent[0].text.startswith("Done: note saved as") and "receipt r" in sent[0].text
    files = list((settings.storage.data_dir / "notes").glob("*.md"))
    assert len(files) == 1
    assert "they want annual billing" in files[0].read_text()


async def test_send_asks_then_posts_once_with_a_stable_key(chat: InMemoryAdapter,
                                                           receiver: WebhookReceiver) -> None:
    sent = await chat.say("/send crm Invoice 42 is paid")
    card = card_of(sent)
    assert card.pending and card.risk == "high"
    assert card.diffs[0]["title"] == 'POST to webhook "crm"'
    assert ["payload", None, '{"text": "Invoice 42 is paid"}'] in card.diffs[0]["fields"]
    assert receiver.posts == []  # nothing happens before the decision

    sent = await chat.press("approve", card.approval_id)
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post.body == {"text": "Invoice 42 is paid"} and post.key.startswith("solo-p")
    done = [s.text for s in sent if s.kind == "message"]
    assert len(done) == 1 and "receipt r" in done[0]
    receipt = done[0].split("receipt ")[1]
    update = next(s for s in sent if s.kind == "card_update")
    assert update.ref == next(s.ref for s in chat.sent if s.kind == "card")
    assert update.card.status == "approved" and f"receipt {receipt}" in update.card.outcome
    audit = (await chat.say("/audit"))[0].text
    assert f"receipt {receipt}" in audit and "approved by operator" in audit


async def test_reject_never_posts(chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    card = card_of(await chat.say("/send crm do not send this"))
    sent = await chat.press("reject", card.approval_id)
    assert receiver.posts == []
    assert any("Rejected" in t and "nothing was sent" in t for t in chat.texts())
    update = next(s for s in sent if s.kind == "card_update")
    assert update.card.status == "rejected"
    again = await chat.press("approve", card.approval_id)
    assert receiver.posts == []
    assert [s.kind for s in again] == ["notice"] and "Already rejected by operator" in again[0].text


async def test_double_tap_executes_once(chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    card = card_of(await chat.say("/send crm once only"))
    await chat.press("approve", card.approval_id)
    second = await chat.press("approve", card.approval_id)
    assert len(receiver.posts) == 1
    assert "Already approved by operator" in second[0].text and "receipt r" in second[0].text


async def test_simultaneous_taps_execute_once(chat: InMemoryAdapter,
                                              receiver: WebhookReceiver) -> None:
    card = card_of(await chat.say("/send crm racing taps"))
    receiver.delay = 0.05
    await asyncio.gather(*[chat.press("approve", card.approval_id) for _ in range(5)])
    assert len(receiver.posts) == 1
    assert receiver.deliveries_of("racing taps") == 1


async def test_expired_card_says_so_and_never_posts(chat: InMemoryAdapter,
                                                    receiver: WebhookReceiver) -> None:
    card = card_of(await chat.say("/send crm too late"))
    with time_machine.travel(card.expires_at + timedelta(seconds=1), tick=True):
        sent = await chat.press("approve", card.approval_id)
    assert receiver.posts == []
    assert any("expired" in s.text for s in sent if s.kind == "notice")
    assert any(s.kind == "card_update" and s.card.status == "expired" for s in chat.sent)


async def test_a_redelivered_event_is_processed_once(chat: InMemoryAdapter,
                                                     settings: Settings) -> None:
    await chat.say("/note only once", event_id="update-7")
    assert await chat.say("/note only once", event_id="update-7") == []
    assert len(list((settings.storage.data_dir / "notes").glob("*.md"))) == 1


async def test_strangers_are_refused_audited_and_their_presses_do_nothing(
        chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    card = card_of(await chat.say("/send crm operator only"))
    refused = await chat.say("/note let me in", actor="mallory")
    assert [s.kind for s in refused] == ["notice"]
    assert "only works for its operators" in refused[0].text
    await chat.press("approve", card.approval_id, actor="mallory")
    assert receiver.posts == []
    events = await chat.app.storage.audit.recent()
    assert [e.actor for e in events if e.decision == "refused"] == ["mallory", "mallory"]
    pending = await chat.app.storage.approvals.pending()
    assert [a.id for a in pending] == [card.approval_id]


async def test_malformed_commands_get_clear_messages(chat: InMemoryAdapter) -> None:
    cases = {
        "/note": "Usage: /note TEXT",
        "/send": "Usage: /send NAME TEXT",
        "/send crm": "Usage: /send NAME TEXT",
        "/send nosuchhook hello": 'No webhook named "nosuchhook". Known webhooks: crm',
        "/frobnicate": "Unknown command /frobnicate. Try /help.",
        "the invoice for Acme tomorrow": "say it with a command to be sure",
        "blorp zxq": "I did not understand that.",
        "hello there": "Hi! I'm here.",
        "/summary": "Summary for",
        "/remind": "When should I remind you?",
        "/send crm " + "x" * 20_000: "the limit is 16000",
        "/help extra words": "Solo OS — commands:",
        "/status now": "Approvals waiting: 0",
        "/approvals please": "No approvals are waiting.",
        "/audit ": "The audit log is empty.",
    }
    for text, expected in cases.items():
        sent = await chat.say(text)
        assert len(sent) == 1 and expected in sent[0].text, (text, sent)
    assert (await chat.press("approve", "zzzzzzzz"))[0].text == "There is no approval 'zzzzzzzz'."
    assert "no card to answer" in (await chat.press("approve", ""))[0].text


async def test_webhook_500s_then_success_posts_under_one_key(chat: InMemoryAdapter,
                                                             receiver: WebhookReceiver) -> None:
    receiver.script = [500, 503]
    card = card_of(await chat.say("/send crm flaky target"))
    sent = await chat.press("approve", card.approval_id)
    assert [p.status for p in receiver.posts] == [500, 503, 200]
    assert len({p.key for p in receiver.posts}) == 1
    assert any("Done:" in s.text for s in sent)


async def test_lost_response_is_reconciled_by_resending_the_same_key(
        chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    receiver.script = ["lose"]
    card = card_of(await chat.say("/send crm response lost"))
    sent = await chat.press("approve", card.approval_id)
    assert [p.status for p in receiver.posts] == ["lost", 409]
    assert receiver.deliveries_of("response lost") == 1
    assert any("already had this message" in s.text and "receipt r" in s.text for s in sent)


async def test_permanent_failure_is_told_and_not_retried(chat: InMemoryAdapter,
                                                         receiver: WebhookReceiver) -> None:
    receiver.script = [400]
    card = card_of(await chat.say("/send crm bad request"))
    sent = await chat.press("approve", card.approval_id)
    assert [p.status for p in receiver.posts] == [400]
    assert any("Failed:" in s.text and "HTTP 400" in s.text for s in sent)
    update = next(s for s in sent if s.kind == "card_update")
    assert "failed, see /audit" in update.card.outcome
    assert "1 failed" in (await chat.say("/status"))[0].text


async def test_pending_card_survives_a_restart_and_its_old_button_works(
        settings: Settings, receiver: WebhookReceiver) -> None:
    app = await SoloApp.open(settings)
    first = InMemoryAdapter()
    await app.add_adapter(first, operators={"operator"})
    card = card_of(await first.say("/send crm after restart"))
    await app.aclose()

    app = await SoloApp.open(settings)
    second = InMemoryAdapter()
    await app.add_adapter(second, operators={"operator"})
    await app.reconcile()
    resurfaced = await app.director.pending_cards()
    assert [r.approval_id for r in resurfaced] == [card.approval_id]
    sent = await second.press("approve", card.approval_id)
    assert receiver.deliveries_of("after restart") == 1
    assert any("receipt r" in s.text for s in sent)
    await app.aclose()


async def test_approvals_command_reposts_pending_cards(chat: InMemoryAdapter) -> None:
    first = card_of(await chat.say("/send crm one"))
    second = card_of(await chat.say("/send crm two"))
    sent = await chat.say("/approvals")
    assert sent[0].text == "2 waiting for you:"
    assert [s.card.approval_id for s in sent[1:]] == [first.approval_id, second.approval_id]


async def test_old_checkpoints_are_pruned_and_the_audit_log_is_kept(
        chat: InMemoryAdapter, receiver: WebhookReceiver) -> None:
    card = card_of(await chat.say("/send crm prune me later"))
    await chat.press("approve", card.approval_id)
    director = chat.app.director
    plan_id = (await director.storage.approvals.get(card.approval_id)).plan_id
    config = {"configurable": {"thread_id": plan_id}}
    assert (await director.graph.aget_state(config)).values
    assert await director.prune(older_than=timedelta(days=1)) == 0
    events = await director.storage.audit.count()
    assert await director.prune(older_than=timedelta(0)) >= 1
    assert not (await director.graph.aget_state(config)).values
    assert await director.storage.audit.count() == events
    assert (await director.storage.plans.get(plan_id)).status == "archived"
    await chat.app.reconcile()  # archived plans are not continued
    assert receiver.deliveries_of("prune me later") == 1


async def test_free_text_works_like_the_commands(chat: InMemoryAdapter, settings: Settings,
                                                 receiver: WebhookReceiver) -> None:
    saved = await chat.say("note: pricing call went well, they want annual billing")
    assert saved[0].text.startswith("Done: note saved")
    notes = list((settings.storage.data_dir / "notes").glob("*.md"))
    assert "they want annual billing" in notes[0].read_text()
    card = card_of(await chat.say("send the crm hook that invoice 42 is paid"))
    assert ["payload", None, '{"text": "invoice 42 is paid"}'] in card.diffs[0]["fields"]
    assert receiver.posts == []  # free text never skips the approval card
    later = await chat.say("remind me to call Alice tomorrow at 9")
    assert later[0].text.startswith("Done: reminder rem") and ": call Alice — receipt r" in \
        later[0].text


async def test_local_mode_says_that_drafting_needs_a_model(chat: InMemoryAdapter) -> None:
    sent = await chat.say("note: draft a friendly reply to Luis about the autumn menu")
    assert sent[0].text.startswith("(Drafting needs a model")
    assert sent[1].text.startswith("Done: note saved")


async def test_when_unsure_it_asks_with_two_buttons_and_a_tap_runs_the_choice(
        chat: InMemoryAdapter, settings: Settings) -> None:
    (question,) = await chat.say("the invoice for Acme tomorrow")
    assert question.kind == "choice" and len(question.choices) == 2
    assert "I'm not sure what you mean" in question.text
    # Whatever two intents were offered, a tap on "note" for the same message is a choice too.
    note = question.choices[0][1].rsplit(":", 1)[0] + ":note"
    done = await chat.press("choose", note)
    assert done[0].text.startswith("Done: note saved")
    assert await chat.press("choose", note) == []  # a double tap starts nothing new
    assert len(list((settings.storage.data_dir / "notes").glob("*.md"))) == 1
    assert await chat.press("choose", "pnosuchplan:note") == []


async def test_capabilities_not_configured_say_so_and_do_nothing(chat: InMemoryAdapter) -> None:
    for text, needed in [("email dana@helix.io that the drafts are ready", "[connectors.email]"),
                         ("any new mail?", "[connectors.email]"),
                         ("what's on my calendar tomorrow", "[connectors.calendar]"),
                         ("book a call with Dana on friday at 3pm", "[connectors.calendar]"),
                         ("run the friday update playbook", "none yet: add a file to")]:
        (reply,) = await chat.say(text)
        assert needed in reply.text, (text, reply.text)
    assert await chat.app.storage.outbox.count_by_status() == {}
