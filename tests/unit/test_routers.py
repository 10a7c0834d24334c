"""The director's routers are pure functions of the plan state."""

from __future__ import annotations

import pytest

from graph.routers import route_after_approval, route_after_gate, route_after_plan

STEP = {"action": {"kind": "note.create", "connector": "notes", "args": {"text": "x"}}}


@pytest.mark.parametrize(("state", "expected"), [
    ({"steps": [STEP]}, "gate_steps"),
    ({"steps": []}, "compose_reply"),
    ({}, "compose_reply"),
])
def test_route_after_plan(state: dict, expected: str) -> None:
    assert route_after_plan(state) == expected


@pytest.mark.parametrize(("state", "expected"), [
    ({"steps": [STEP], "approval_id": "abcd2345"}, "await_approval"),
    ({"steps": [STEP], "approval_id": None}, "execute_steps"),
    ({"steps": [], "approval_id": None}, "compose_reply"),  # a preview was refused
    ({"steps": [], "approval_id": "abcd2345"}, "compose_reply"),
])
def test_route_after_gate(state: dict, expected: str) -> None:
    assert route_after_gate(state) == expected


@pytest.mark.parametrize(("state", "expected"), [
    ({"decision": "approved"}, "execute_steps"),
    ({"decision": "rejected"}, "execute_steps"),  # execute records what did not run
    ({"decision": "expired"}, "execute_steps"),
    ({"decision": "superseded"}, "gate_steps"),  # edited: the new version is gated again
])
def test_route_after_approval(state: dict, expected: str) -> None:
    assert route_after_approval(state) == expected
