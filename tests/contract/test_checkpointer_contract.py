"""Our threaded SQLite checkpointer behaves like LangGraph's own savers: the same suite runs
over ours, LangGraph's AsyncSqliteSaver and InMemorySaver, and the PostgreSQL saver we use."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, TypedDict

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from graph.checkpoints import postgres_checkpointer, sqlite_checkpointer
from tests.conftest import backends, fresh_postgres_url

SAVERS = ["ours-threaded-sqlite", "langgraph-async-sqlite", "langgraph-memory",
          *[b for b in backends() if not isinstance(b, str)]]


@asynccontextmanager
async def open_saver(kind: str, tmp_path: Path) -> AsyncIterator[BaseCheckpointSaver]:
    if kind == "ours-threaded-sqlite":
        async with sqlite_checkpointer(tmp_path / "ours.sqlite3") as saver:
            yield saver
    elif kind == "langgraph-async-sqlite":
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "theirs.sqlite3")) as saver:
            yield saver
    elif kind == "langgraph-memory":
        yield InMemorySaver()
    else:
        url = await fresh_postgres_url(f"solo_ckpt_{abs(hash(str(tmp_path)))}")
        async with postgres_checkpointer(url) as saver:
            yield saver


@pytest.fixture(params=SAVERS)
async def saver(request: pytest.FixtureRequest,
                tmp_path: Path) -> AsyncIterator[BaseCheckpointSaver]:
    async with open_saver(request.param, tmp_path) as opened:
        yield opened


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    answer: str


def ask(state: State) -> dict:
    return {"log": ["asked"], "answer": interrupt({"question": "go?"})}


def build(saver: BaseCheckpointSaver):
    builder = StateGraph(State)
    builder.add_node("start", lambda state: {"log": ["started"]})
    builder.add_node("ask", ask)
    builder.add_node("finish", lambda state: {"log": [f"finished:{state['answer']}"]})
    builder.add_edge(START, "start")
    builder.add_edge("start", "ask")
    builder.add_edge("ask", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=saver)


async def test_put_get_list_and_writes(saver: BaseCheckpointSaver) -> None:
    config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    first = {**empty_checkpoint(), "channel_values": {"x": 1}, "channel_versions": {"x": 1}}
    saved = await saver.aput(config, first, {"source": "input", "step": -1}, {"x": 1})
    second = {**empty_checkpoint(), "channel_values": {"x": 2}, "channel_versions": {"x": 2}}
    latest = await saver.aput(saved, second, {"source": "loop", "step": 0}, {"x": 2})
    await saver.aput_writes(latest, [("x", 3)], task_id="task-1")

    got = await saver.aget_tuple({"configurable": {"thread_id": "t1", "checkpoint_ns": ""}})
    assert got.checkpoint["id"] == second["id"]
    assert got.metadata["step"] == 0
    assert got.parent_config["configurable"]["checkpoint_id"] == first["id"]
    assert [(task, channel, value) for task, channel, value in got.pending_writes] == [
        ("task-1", "x", 3)]
    older = await saver.aget_tuple(saved)
    assert older.checkpoint["id"] == first["id"]

    listed = [t.checkpoint["id"] async for t in saver.alist(config)]
    assert listed == [second["id"], first["id"]]  # newest first
    assert [t.checkpoint["id"] async for t in saver.alist(config, limit=1)] == [second["id"]]
    assert [t.checkpoint["id"] async for t in saver.alist(config, before=latest)] == [
        first["id"]]
    assert [t async for t in saver.alist({"configurable": {"thread_id": "other"}})] == []

    await saver.adelete_thread("t1")
    assert await saver.aget_tuple(config) is None


async def test_interrupt_and_resume_like_every_saver(saver: BaseCheckpointSaver) -> None:
    graph = build(saver)
    config = {"configurable": {"thread_id": "plan-1"}}
    paused = await graph.ainvoke({"log": []}, config)
    assert paused["__interrupt__"][0].value == {"question": "go?"}
    snapshot = await graph.aget_state(config)
    assert snapshot.next == ("ask",) and snapshot.interrupts
    assert snapshot.values["log"] == ["started"]

    done = await graph.ainvoke(Command(resume="yes"), config)
    assert done["log"] == ["started", "asked", "finished:yes"]
    assert not (await graph.aget_state(config)).next
    history = [s async for s in graph.aget_state_history(config)]
    # input, start, ask (interrupted), ask (resumed), finish — the same on every saver.
    assert len(history) == 5


async def test_a_new_saver_on_the_same_file_resumes(tmp_path: Path) -> None:
    """The durability we rely on: a new process opens the file and resumes the thread."""
    config = {"configurable": {"thread_id": "plan-2"}}
    async with sqlite_checkpointer(tmp_path / "ours.sqlite3") as first:
        await build(first).ainvoke({"log": []}, config)
    async with sqlite_checkpointer(tmp_path / "ours.sqlite3") as second:
        done = await build(second).ainvoke(Command(resume="later"), config)
    assert done["log"] == ["started", "asked", "finished:later"]
