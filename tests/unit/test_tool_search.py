"""The tool search: the planner is shown a bounded number of tools, those the message names
always among them, the closest by meaning and words first."""

from __future__ import annotations

from graph.tool_search import ToolCard, ToolSearch
from memory.embeddings import StaticEmbeddings

TOOLS = [
    ToolCard("time.get_current_time", "Get the current time in a specific timezone"),
    ToolCard("time.convert_time", "Convert time between timezones"),
    ToolCard("files.read_text_file", "Read the complete contents of a file as text"),
    ToolCard("files.write_file", "Create a new file or overwrite an existing file"),
    ToolCard("files.move_file", "Move or rename files and directories"),
    ToolCard("files.search_files", "Recursively search for files matching a pattern"),
    ToolCard("box.append_line", "Append a line of text to the ledger file"),
    ToolCard("crm.create_contact", "Create a contact in the CRM", {"type": "object"}),
]


def test_the_closest_tools_are_shown_and_no_more_than_k() -> None:
    picked = ToolSearch(StaticEmbeddings(), k=3).pick("what time is it in Tokyo", TOOLS)
    assert len(picked) == 3 and picked[0].name == "time.get_current_time"


def test_a_tool_the_message_names_is_always_shown() -> None:
    search = ToolSearch(StaticEmbeddings(), k=2)
    for said in ("use crm.create_contact for Carla", "please create_contact Carla"):
        assert "crm.create_contact" in [t.name for t in search.pick(said, TOOLS)]


def test_few_tools_are_all_shown() -> None:
    assert ToolSearch(StaticEmbeddings(), k=5).pick("anything", TOOLS[:4]) == TOOLS[:4]


def test_a_card_renders_as_one_compact_json_line() -> None:
    line = TOOLS[-1].render()
    assert "\n" not in line and '"input_schema":{"type":"object"}' in line
