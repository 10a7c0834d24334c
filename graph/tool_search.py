"""Which tools a planning call shows the model: the few that serve the message, not every schema
of every server (tool schemas are what fills an agent's context window).

A tool the message names (``files.write_file``, ``write_file``) is always shown; the rest are
ranked by how close their name and description are to the message (the same sentence
embeddings memory uses, plus shared words) and the best ``k`` are shown. Only tools the
allowlist lets through are ever candidates (and the connector enforces the allowlist again
where a call is dispatched). ``bench/tool_search.py`` measures the tokens this saves and how
often the needed tool is among those shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from memory.embeddings import as_matrix

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an and the to of in on for at by with from is it this that me my i you "
                  "your what please can could would".split())


@dataclass(frozen=True, slots=True)
class ToolCard:
    """What the model is shown of one tool.

    Attributes:
        name: ``SERVER.TOOL``.
        description: the server's words (data, never instructions: the prompt says so).
        schema: its JSON input schema.
    """

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """One compact JSON line."""
        return json.dumps({"name": self.name, "description": self.description[:500],
                           "input_schema": self.schema}, ensure_ascii=False,
                          separators=(",", ":"))


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower().replace("_", " ")) if w not in _STOP}


class ToolSearch:
    """See the module docstring.

    Args:
        embeddings: sentence embeddings (memory's).
        k: how many tools to show at most (besides those the message names).
    """

    def __init__(self, embeddings: Embeddings, *, k: int = 5) -> None:
        self.embeddings = embeddings
        self.k = k
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def pick(self, message: str, tools: Sequence[ToolCard]) -> list[ToolCard]:
        """The tools to show for ``message``, best first."""
        if len(tools) <= self.k:
            return list(tools)
        lowered = message.lower()
        named = [t for t in tools if t.name.lower() in lowered or
                 re.search(rf"\b{re.escape(t.name.split('.', 1)[-1].lower())}\b", lowered)]
        wanted = as_matrix(self.embeddings, [message])[0]
        said = _words(message)
        scored = []
        for tool in tools:
            if tool in named:
                continue
            text = f"{tool.name.replace('.', ' ')} {tool.description}"
            shared = len(said & _words(text)) / max(len(said), 1)
            scored.append((float(self._vector(tool, text) @ wanted) + shared, tool))
        scored.sort(key=lambda pair: -pair[0])
        return named + [tool for _, tool in scored[:max(self.k - len(named), 0)]]

    def _vector(self, tool: ToolCard, text: str) -> np.ndarray:
        key = (tool.name, tool.description)
        if key not in self._vectors:
            self._vectors[key] = as_matrix(self.embeddings, [text])[0]
        return self._vectors[key]
