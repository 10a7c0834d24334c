"""Memory through the real stores (SQLite and PostgreSQL), the committed static embeddings and
the chat commands."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.memory import InMemoryAdapter
from memory.knowledge import Hit, Memory, approx_tokens, build_context, subject_of
from memory.models import MemoryItem, utcnow


def item(id: str, text: str, kind: str = "note", days_ago: float = 0) -> dict:
    return {"id": id, "kind": kind, "text": text, "source": "test",
            "created_at": utcnow() - timedelta(days=days_ago)}


@pytest.mark.parametrize(("fact", "subject"), [
    ("Acme pays net 30", "acme"), ("Acme: invoices go to billing@acme.test", "acme"),
    ("The Riverside Bakery wants a logo refresh", "riverside bakery"),
    ("remember to water the plants", None)])
def test_subjects(fact: str, subject: str | None) -> None:
    assert subject_of(fact) == subject


async def test_a_newer_fact_supersedes_and_the_old_one_stays_on_record(memory: Memory) -> None:
    assert await memory.remember("Acme pays net 30", id="f1", source="chat:1") == []
    replaced = await memory.remember("Acme pays net 45", id="f2", source="chat:2")
    assert [f.id for f in replaced] == ["f1"]
    old = (await memory.store.get_many(["f1"]))["f1"]
    assert (old.status, old.superseded_by, old.text) == ("superseded", "f2", "Acme pays net 30")
    hits = await memory.search("what are acme's payment terms", k=5)
    assert [h.item.id for h in hits] == ["f2"]
    assert hits[0].item.source == "chat:2"  # provenance
    assert await memory.remember("Acme pays net 45", id="f2", source="chat:2") == []


async def test_expired_facts_are_not_found(memory: Memory) -> None:
    await memory.remember("Studio closed for the holidays", id="f1", source="t",
                          expires_at=utcnow() - timedelta(seconds=1))
    await memory.remember("Studio opens at nine", id="f2", source="t")
    assert [h.item.id for h in await memory.search("studio holidays closed")] == ["f2"]


async def test_forget_erases_text_and_index_entries(memory: Memory) -> None:
    await memory.add([item("n1", "the secret launch codename is bluebird")])
    assert await memory.search("bluebird", mode="keyword")
    forgotten = await memory.forget("n1")
    assert forgotten.id == "n1"
    assert await memory.search("bluebird") == []
    assert (await memory.store.get_many(["n1"]))["n1"].text == ""
    assert await memory.forget("n1") is None


async def test_keyword_vector_and_hybrid_modes(memory: Memory) -> None:
    await memory.add([item("a", "Invoice 1042 for the Riverside Bakery logo was paid"),
                      item("b", "The client settled the outstanding balance"),
                      item("c", "Buy oat milk and coffee beans")])
    keyword = [h.item.id for h in await memory.search("invoice 1042", mode="keyword")]
    assert keyword == ["a"]
    vector = [h.item.id for h in await memory.search("customer paid the bill", mode="vector")]
    assert vector[0] in ("a", "b") and vector[-1] == "c"
    hybrid = [h.item.id for h in await memory.search("invoice paid", k=2)]
    assert hybrid[0] == "a"


async def test_filters_by_kind_and_time(memory: Memory) -> None:
    await memory.add([item("old", "quarterly tax filing done", kind="note", days_ago=100),
                      item("new", "quarterly tax filing reminder", kind="fact")])
    assert [h.item.id for h in await memory.search("quarterly tax", kinds=["note"])] == ["old"]
    recent = await memory.search("quarterly tax", since=utcnow() - timedelta(days=7))
    assert [h.item.id for h in recent] == ["new"]


async def test_recency_breaks_near_ties(memory: Memory) -> None:
    await memory.add([item("old", "weekly sync with Dana", days_ago=200),
                      item("new", "weekly sync with Dana", days_ago=1)])
    assert [h.item.id for h in await memory.search("weekly sync with Dana", k=2)] == ["new", "old"]


async def test_notes_follow_the_vault_on_disk(memory: Memory, tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("---\nidempotency_key: k\n---\n\nlunch with Priya on Friday\n")
    assert await memory.sync_notes(vault) == 1
    assert await memory.sync_notes(vault) == 0  # unchanged files are not re-indexed
    (vault / "a.md").write_text("dinner with Priya on Saturday\n")
    await memory.sync_notes(vault)
    assert [h.item.text for h in await memory.search("Priya")] == ["dinner with Priya on Saturday"]
    (vault / "a.md").unlink()
    await memory.sync_notes(vault)
    assert await memory.search("Priya") == []


async def test_compaction_summarises_old_turns_and_keeps_them(memory: Memory) -> None:
    await memory.add([item(f"t{i}", f"message {i} about the website redesign", kind="turn",
                           days_ago=30 - i) for i in range(12)])
    summary_id = await memory.compact_turns(keep_recent=4, sentences=3)
    summary = (await memory.store.get_many([summary_id]))[summary_id]
    assert summary.kind == "summary" and summary.text.startswith("Summary of 8 messages")
    assert len(await memory.search("website redesign", k=20, kinds=["turn"])) == 12


def hit(id: str, text: str) -> Hit:
    return Hit(MemoryItem(id=id, kind="fact", text=text, source="s", status="active",
                          created_at=utcnow()), 1.0)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(min_size=0, max_size=400), max_size=30),
       budget=st.integers(min_value=0, max_value=500))
def test_context_never_exceeds_its_budget(texts: list[str], budget: int) -> None:
    context = build_context([hit(f"f{i}", t) for i, t in enumerate(texts)], budget=budget)
    assert approx_tokens(context) <= budget or context == ""


def test_context_keeps_the_best_first() -> None:
    hits = [hit("f1", "Acme pays net 45"), hit("f2", "Dana prefers calls"),
            hit("f3", "x " * 500)]
    context = build_context(hits, budget=40)
    assert context.splitlines()[0] == "- [fact f1] Acme pays net 45"
    assert approx_tokens(context) <= 40


async def test_chat_commands(chat: InMemoryAdapter) -> None:
    first = (await chat.say("/remember Acme pays net 30"))[0].text
    assert first.startswith("Done: remembered f") and " — receipt r" in first
    first_id = first.split()[2]
    second = (await chat.say("/remember Acme pays net 45 until 2099-01-01"))[0].text
    assert f"it replaces {first_id} (kept as superseded)" in second
    assert "until 2099-01-01" in second
    await chat.say("/note Riverside Bakery wants a spring menu design")
    found = (await chat.say("/memory acme terms"))[0].text
    assert "Acme pays net 45" in found and "net 30" not in found
    found = (await chat.say("/memory bakery menu"))[0].text
    assert "spring menu design" in found
    fact_id = second.split()[2]
    assert (await chat.say(f"/forget {fact_id}"))[0].text.startswith(
        f"Done: forgot {fact_id}: its text is erased — receipt r")
    assert "net 45" not in (await chat.say("/memory acme terms"))[0].text
    audit = (await chat.say("/audit"))[0].text
    assert "forgotten by operator" in audit
    for command, usage in (("/remember", "Usage: /remember"), ("/memory", "Usage: /memory"),
                           ("/forget", "Usage: /forget"),
                           ("/remember x until 2026-02-31", "is not a date")):
        assert usage in (await chat.say(command))[0].text


async def test_context_for_a_turn_is_relevant_and_bounded(memory: Memory) -> None:
    await memory.add([item(f"n{i}", f"note {i}: " + "filler words " * 40) for i in range(30)]
                     + [item("key", "Acme renewal is due on March 3")])
    context = await memory.context("when is the acme renewal", budget=60)
    assert context.startswith("- [note key] Acme renewal is due on March 3")
    assert approx_tokens(context) <= 60


async def test_hybrid_retrieval_beats_both_single_methods_on_the_labelled_set(
        memory: Memory) -> None:
    from bench.data.juniper_memory import ITEMS, QUERIES

    now = utcnow()
    await memory.add([{"id": i, "kind": kind, "text": text, "source": "seed",
                       "created_at": now - timedelta(days=n % 90)}
                      for n, (i, kind, text) in enumerate(ITEMS)])
    recall = {}
    for mode in ("keyword", "vector", "hybrid"):
        found = 0.0
        for query, relevant in QUERIES:
            top = {h.item.id for h in await memory.search(query, k=5, mode=mode)}
            found += len(top & set(relevant)) / len(relevant)
        recall[mode] = found / len(QUERIES)
    assert recall["hybrid"] > max(recall["keyword"], recall["vector"]), recall


async def test_any_langchain_embeddings_class_can_be_configured(tmp_path: Path) -> None:
    from bot.app import SoloApp
    from config import Settings

    settings = Settings.model_validate({
        "storage": {"data_dir": tmp_path},
        "memory": {"embeddings": "langchain_core.embeddings.fake:DeterministicFakeEmbedding",
                   "embeddings_options": {"size": 32}}})
    app = await SoloApp.open(settings)
    chat = InMemoryAdapter()
    await app.add_adapter(chat, operators={"operator"})
    try:
        await chat.say("/remember Dana prefers video calls")
        assert "Dana prefers video calls" in (await chat.say("/memory dana calls"))[0].text
    finally:
        await app.aclose()
    bad = Settings.model_validate({"storage": {"data_dir": tmp_path / "b"},
                                   "memory": {"embeddings": "no_such_module:Nope"}})
    with pytest.raises(ValueError, match="cannot be built"):
        await SoloApp.open(bad)
