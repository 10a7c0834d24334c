"""What Solo OS remembers, and how it finds it again.

- :class:`MemoryStore`: items with provenance, confidence, expiry and supersession, plus the
  keyword index (SQLite FTS5 with Porter stemming / PostgreSQL full-text search).
- :class:`Memory`: the service the director uses: remember facts (a newer fact about the same
  subject supersedes the older one, which stays on record), forget (a logged decision), index
  notes, receipts, audit events and conversation turns, and hybrid search: keyword and vector
  rankings fused by reciprocal rank, nudged by recency, filtered by kind and time.
- :func:`build_context`: the most relevant memory within a token budget, never more.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.engine import Connection

from memory.db import Database
from memory.embeddings import as_matrix
from memory.models import AuditEvent, MemoryItem, MemoryMeta, Plan, utcnow
from memory.stores import dialect_insert, read_orm
from memory.vectors import VectorIndex, VectorItem

RRF_K = 60
CANDIDATES = 50
_SUBJECT = re.compile(
    r"^(?:the\s+)?(?P<subject>[\w .&'-]{2,60}?)\s+(?:is|are|was|were|has|have|wants|prefers|"
    r"pays|likes|uses|lives|works|owes|needs|asked|signed|paid)\b", re.IGNORECASE)
_EXPLICIT_SUBJECT = re.compile(r"^(?P<subject>[\w .&'-]{2,60}):\s+\S")
_WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to say anything about what a question wants; left out of keyword queries
# (they only inflate the set of matches the ranker has to score).
STOPWORDS = frozenset("""
a about after again all also am an and any are as at be been before being but by can could
did do does doing done for from had has have having he her here hers him his how i if in into
is it its just me my myself no nor not now of off on once only or other our ours out over own
same she should so some such than that the their theirs them then there these they this those
through to too under until up very was we were what when where which while who whom why will
with would you your yours please tell show find know get give
""".split())


# Capitalised words, and runs of them ("Copper Kettle"); a fact's first word is capitalised
# anyway, so a lone common opener there is not a name.
_PROPER_NAME = re.compile(r"\b[A-Z][\w'-]*[a-z][\w'-]*(?:\s+[A-Z][\w'-]*[a-z][\w'-]*)*")
_COMMON_OPENERS = frozenset("our the my we they their its this that there new from since "
                            "every each".split())


def subject_of(fact: str) -> str | None:
    """The subject a fact is about (``"Acme: net 30"`` → ``acme``; ``"Alice prefers calls"`` →
    ``alice``), or None when there is no clear one."""
    match = _EXPLICIT_SUBJECT.match(fact.strip()) or _SUBJECT.match(fact.strip())
    return " ".join(match["subject"].lower().split()) if match else None


def approx_tokens(text: str) -> int:
    """A conservative token count (about 4 characters a token, at least one per word)."""
    return max(len(_WORD.findall(text)), math.ceil(len(text) / 4))


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result."""

    item: MemoryItem
    score: float


class MemoryStore:
    """Memory items and their keyword index."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, items: Sequence[dict[str, Any]]) -> None:
        """Insert or replace items (and their keyword entries)."""
        columns = [c.name for c in MemoryItem.__table__.c if c.name != "tsv"]
        rows = [{c: values.get(c) for c in columns} | {
            "confidence": values.get("confidence", 1.0), "status": values.get("status", "active")}
            for values in items]

        def work(conn: Connection) -> None:
            insert = dialect_insert(conn)(MemoryItem)
            upsert = insert.on_conflict_do_update(
                index_elements=[MemoryItem.id],
                set_={c: insert.excluded[c] for c in columns if c != "id"})
            conn.execute(upsert, rows)  # executemany: one statement, many rows
            if conn.dialect.name == "sqlite":
                conn.execute(text("DELETE FROM memory_fts WHERE item_id IN :ids")
                             .bindparams(bindparam("ids", expanding=True)),
                             {"ids": [r["id"] for r in rows]})
                conn.execute(text("INSERT INTO memory_fts(item_id, text) VALUES (:id, :text)"),
                             [{"id": r["id"], "text": r["text"]} for r in rows])

        await self._db.run(work)

    async def get_many(self, ids: Sequence[str]) -> dict[str, MemoryItem]:
        """Items by id (missing ids are left out)."""
        query = select(MemoryItem).where(MemoryItem.id.in_(list(ids)))
        rows = await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))
        return {row.id: row for row in rows}

    async def created_since(self, kinds: Sequence[str], *, since: datetime,
                            limit: int = 50) -> list[MemoryItem]:
        """Active items of ``kinds`` created at or after ``since``, oldest first."""
        query = (select(MemoryItem).where(MemoryItem.kind.in_(list(kinds)),
                                          MemoryItem.status == "active",
                                          MemoryItem.created_at >= since)
                 .order_by(MemoryItem.created_at).limit(limit))
        return list(await self._db.run(
            lambda conn: read_orm(conn, lambda s: s.scalars(query).all())))

    async def facts_to_review(self, *, now: datetime,
                              limit: int = 50) -> list[tuple[MemoryItem, str, str]]:
        """Facts worth dropping, oldest first, each with its kind of reason and the reason:
        ``expired`` (past its expiry), ``superseded`` (a newer fact about the same subject
        contradicts it; kept on record until dropped) or ``duplicates`` (the same words as a
        newer active fact)."""
        query = (select(MemoryItem).where(MemoryItem.kind == "fact",
                                          MemoryItem.status.in_(["active", "superseded"]))
                 .order_by(MemoryItem.created_at.desc(), MemoryItem.id.desc()))
        rows = await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))
        newest: dict[str, str] = {}
        found = []
        for item in rows:
            words = " ".join(_WORD.findall(item.text.lower()))
            if item.status == "superseded":
                found.append((item, "superseded", f"superseded by {item.superseded_by}"))
            elif item.expires_at is not None and item.expires_at <= now:
                found.append((item, "expired", "expired"))
            elif words in newest:
                found.append((item, "duplicates", f"duplicate of {newest[words]}"))
            else:
                newest[words] = item.id
        return found[::-1][:limit]

    async def active_about(self, subject: str) -> list[MemoryItem]:
        """Active facts about ``subject``, oldest first."""
        query = (select(MemoryItem).where(MemoryItem.kind == "fact", MemoryItem.status == "active",
                                          MemoryItem.subject == subject)
                 .order_by(MemoryItem.created_at))
        return list(await self._db.run(
            lambda conn: read_orm(conn, lambda s: s.scalars(query).all())))

    async def names(self, *, limit: int = 40, scan: int = 500) -> list[str]:
        """The proper names the operator's facts mention ("Ines", "Copper Kettle"), most often
        mentioned first, from the ``scan`` most recent active facts: what a speech decoder
        should expect to hear."""
        query = (select(MemoryItem.text).where(MemoryItem.kind == "fact",
                                               MemoryItem.status == "active")
                 .order_by(MemoryItem.created_at.desc()).limit(scan))
        facts = await self._db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))
        counts: Counter[str] = Counter()
        for fact in facts:
            for match in _PROPER_NAME.finditer(fact):
                name = match[0]
                if name.lower() not in STOPWORDS and not (match.start() == 0 and " " not in name
                                                          and name.lower() in _COMMON_OPENERS):
                    counts[name] += 1
        return [name for name, _ in counts.most_common(limit)]

    async def set_status(self, ids: Sequence[str], status: str, *,
                         superseded_by: str | None = None, erase: bool = False) -> None:
        """Mark items superseded or forgotten (``erase`` also blanks their text)."""
        values: dict[str, Any] = {"status": status, "superseded_by": superseded_by}
        if erase:
            values["text"] = ""

        def work(conn: Connection) -> None:
            conn.execute(update(MemoryItem).where(MemoryItem.id.in_(list(ids))).values(**values))
            if erase and conn.dialect.name == "sqlite":
                conn.execute(text("DELETE FROM memory_fts WHERE item_id IN :ids")
                             .bindparams(bindparam("ids", expanding=True)), {"ids": list(ids)})

        await self._db.run(work)

    async def keyword(self, query: str, k: int, *, kinds: Sequence[str] | None = None,
                      since: datetime | None = None,
                      until: datetime | None = None) -> list[tuple[str, float]]:
        """Best keyword matches ``(id, score)`` among active, unexpired items."""
        words = [w for w in _WORD.findall(query.lower()) if w not in STOPWORDS] or \
            _WORD.findall(query.lower())
        if not words:
            return []
        now = utcnow()

        def work(conn: Connection) -> list[tuple[str, float]]:
            filters = ["m.status = 'active'", "(m.expires_at IS NULL OR m.expires_at > :now)"]
            params: dict[str, Any] = {"k": k, "now": now}
            if conn.dialect.name == "sqlite":
                params["now"] = now.replace(tzinfo=None).isoformat(sep=" ")
            if kinds is not None:
                filters.append("m.kind IN :kinds")
                params["kinds"] = list(kinds)
            for name, moment, op in (("since", since, ">="), ("until", until, "<")):
                if moment is not None:
                    filters.append(f"m.created_at {op} :{name}")
                    params[name] = (moment.replace(tzinfo=None).isoformat(sep=" ")
                                    if conn.dialect.name == "sqlite" else moment)
            where = " AND ".join(filters)
            if conn.dialect.name == "sqlite":
                # Any of the words (OR), ranked by BM25 (lower is better in FTS5).
                # Rank inside FTS5 first (its ORDER BY rank LIMIT path), then filter the short
                # list: joining before ranking made every match pay for the join.
                params["q"] = " OR ".join(f'"{w}"' for w in words)
                params["pool"] = k * 8
                sql = (f"SELECT f.item_id, f.rank FROM (SELECT item_id, rank FROM memory_fts "
                       f"WHERE memory_fts MATCH :q ORDER BY rank LIMIT :pool) f "
                       f"JOIN memory_items m ON m.id = f.item_id WHERE {where} "
                       f"ORDER BY f.rank LIMIT :k")
            else:
                params["q"] = " | ".join(words)
                sql = (f"SELECT m.id, -ts_rank(m.tsv, to_tsquery('english', :q)) AS rank "
                       f"FROM memory_items m WHERE m.tsv @@ to_tsquery('english', :q) "
                       f"AND {where} ORDER BY rank LIMIT :k")
            statement = text(sql)
            if kinds is not None:
                statement = statement.bindparams(bindparam("kinds", expanding=True))
            return [(row[0], -float(row[1])) for row in conn.execute(statement, params)]

        return await self._db.run(work)

    async def meta(self, key: str, default: str = "") -> str:
        """A stored watermark or counter."""
        value = await self._db.run(lambda conn: conn.execute(
            select(MemoryMeta.value).where(MemoryMeta.key == key)).scalar())
        return default if value is None else value

    async def set_meta(self, key: str, value: str) -> None:
        """Store a watermark or counter."""
        await self._db.run(lambda conn: conn.execute(
            dialect_insert(conn)(MemoryMeta).values(key=key, value=value)
            .on_conflict_do_update(index_elements=[MemoryMeta.key], set_={"value": value})))


class Memory:
    """The memory service (see the module docstring).

    Args:
        db: the state database.
        index: where item vectors live.
        embeddings: any LangChain ``Embeddings`` (the static model by default).
        recency_half_life_days, recency_weight: how much newer items are preferred.
    """

    def __init__(self, *, db: Database, index: VectorIndex, embeddings: Embeddings,
                 recency_half_life_days: float = 30.0, recency_weight: float = 0.3) -> None:
        self.db = db
        self.store = MemoryStore(db)
        self.index = index
        self.embeddings = embeddings
        self.half_life = recency_half_life_days
        self.recency_weight = recency_weight

    # --- writing ------------------------------------------------------------------------------

    async def add(self, items: Sequence[dict[str, Any]]) -> None:
        """Store items (``id``, ``kind``, ``text``, ``source``, ``created_at``...), index them."""
        items = [i for i in items if i["text"].strip()]
        if not items:
            return
        await self.store.put(items)
        vectors = as_matrix(self.embeddings, [i["text"] for i in items])
        await self.index.upsert([VectorItem(i["id"], v, i["kind"], i["created_at"])
                                 for i, v in zip(items, vectors, strict=True)])

    async def remember(self, fact: str, *, id: str, source: str, confidence: float = 1.0,
                       expires_at: datetime | None = None) -> list[MemoryItem]:
        """Store a fact; return the facts it supersedes (same subject, still active), which
        stay on record as superseded. Idempotent by ``id``."""
        subject = subject_of(fact)
        older = [f for f in await self.store.active_about(subject) if f.id != id] \
            if subject else []
        await self.add([{"id": id, "kind": "fact", "text": fact.strip(), "source": source,
                         "subject": subject, "confidence": confidence, "created_at": utcnow(),
                         "expires_at": expires_at}])
        if older:
            await self.store.set_status([f.id for f in older], "superseded", superseded_by=id)
        return older

    async def forget(self, item_id: str) -> MemoryItem | None:
        """Erase an item's text and drop it from both indexes; None if there is no such item."""
        item = (await self.store.get_many([item_id])).get(item_id)
        if item is None or item.status == "forgotten":
            return None
        await self.store.set_status([item_id], "forgotten", erase=True)
        await self.index.delete([item_id])
        return item

    # --- reading ------------------------------------------------------------------------------

    async def search(self, query: str, k: int = 5, *, mode: str = "hybrid",
                     kinds: Sequence[str] | None = None, since: datetime | None = None,
                     until: datetime | None = None,
                     exclude: Sequence[str] = ()) -> list[Hit]:
        """The ``k`` most relevant active items for ``query``.

        Args:
            query: the question, in the operator's words.
            k: how many items at most.
            mode: ``hybrid`` (default), ``keyword`` or ``vector``.
            kinds: only items of these kinds (fact, note, receipt, ...), if given.
            since: only items created at or after this time, if given.
            until: only items created before this time, if given.
            exclude: item ids to leave out (the question itself, as a conversation turn).
        """
        searches = []
        if mode in ("hybrid", "keyword"):
            searches.append(self.store.keyword(query, CANDIDATES, kinds=kinds, since=since,
                                               until=until))
        if mode in ("hybrid", "vector"):
            vector = as_matrix(self.embeddings, [query])[0]
            searches.append(self.index.search(vector, CANDIDATES, kinds=kinds, since=since,
                                              until=until))
        # Both at once: keyword search runs on the database thread, vector search in numpy.
        rankings = [[i for i, _ in found] for found in await asyncio.gather(*searches)]
        fused: dict[str, float] = {}
        for ranking in rankings:
            for rank, item_id in enumerate(ranking):
                fused[item_id] = fused.get(item_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        # Load the best few first: recency can lift a score by at most (1 + recency_weight), so
        # a short list usually settles the top k; more is loaded when filters thin it out.
        ordered = [i for i in sorted(fused, key=fused.__getitem__, reverse=True)
                   if i not in exclude]
        now = utcnow()
        hits: list[Hit] = []
        batch = max(6 * k, 30)
        for start in range(0, len(ordered), batch):
            ids = ordered[start:start + batch]
            items = await self.store.get_many(ids)
            for item_id in ids:
                item = items.get(item_id)
                if item is None or item.status != "active" or (
                        item.expires_at is not None and item.expires_at <= now):
                    continue
                age_days = max((now - item.created_at).total_seconds() / 86400, 0.0)
                recency = 0.5 ** (age_days / self.half_life)
                hits.append(Hit(item, fused[item_id] * (1 + self.recency_weight * recency)))
            if len(hits) >= k:
                break
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:k]

    async def context(self, query: str, *, budget: int, k: int = 20) -> str:
        """The memory most relevant to ``query`` for a model, within ``budget`` tokens."""
        return build_context(await self.search(query, k=k), budget=budget)

    # --- keeping up with the rest of the system -----------------------------------------------

    async def catch_up(self, *, notes_dir: Path | None = None) -> int:
        """Index what happened since last time: audit events (receipts among them), the
        operator's messages, and notes in the vault changed on disk. Returns items indexed."""
        count = await self._catch_up_audit()
        count += await self._catch_up_turns()
        if notes_dir is not None:
            count += await self.sync_notes(notes_dir)
        return count

    async def _catch_up_audit(self) -> int:
        last = int(await self.store.meta("audit_watermark", "0"))
        query = select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(5000)
        events = await self.db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))
        items = []
        for event in events:
            detail = event.detail or {}
            summary = detail.get("summary") or detail.get("error") or ""
            kind = "receipt" if event.receipt_id else "audit"
            words = [event.decision, f"by {event.actor}", event.connector or "",
                     f"receipt {event.receipt_id}" if event.receipt_id else "", summary]
            items.append({"id": f"audit:{event.id}", "kind": kind,
                          "text": " ".join(w for w in words if w), "source": f"audit:{event.id}",
                          "created_at": event.at})
        await self.add(items)
        if events:
            await self.store.set_meta("audit_watermark", str(events[-1].id))
        return len(items)

    async def _catch_up_turns(self) -> int:
        last = await self.store.meta("turn_watermark", "")
        query = select(Plan).order_by(Plan.created_at, Plan.id).limit(5000)
        if last:
            query = query.where(Plan.created_at > datetime.fromisoformat(last))
        plans = await self.db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all()))
        # Free-text messages only: commands are indexed as what they produced (facts, notes,
        # receipts), and a /memory query must not find itself.
        items = [{"id": f"turn:{p.id}", "kind": "turn", "text": p.inbound.get("text", ""),
                  "source": f"{p.channel}:{p.inbox_id or p.id}", "created_at": p.created_at}
                 for p in plans if p.inbound.get("text")
                 and not p.inbound["text"].lstrip().startswith("/")]
        await self.add(items)
        if plans:
            await self.store.set_meta("turn_watermark", plans[-1].created_at.isoformat())
        return len(items)

    async def sync_notes(self, notes_dir: Path) -> int:
        """Index new and changed markdown files; forget the ones deleted from disk."""
        files = await asyncio.to_thread(_scan_notes, notes_dir)
        query = select(MemoryItem.id, MemoryItem.fingerprint).where(
            MemoryItem.kind == "note", MemoryItem.status == "active")
        known = dict(await self.db.run(lambda conn: conn.execute(query).all()))
        items = [item for item_id, item in files.items()
                 if known.get(item_id) != item["fingerprint"]]
        await self.add(items)
        gone = [item_id for item_id in known if item_id not in files]
        if gone:
            await self.store.set_status(gone, "forgotten", erase=True)
            await self.index.delete(gone)
        return len(items) + len(gone)

    async def compact_turns(self, *, keep_recent: int = 50, sentences: int = 5) -> str | None:
        """Summarise conversation turns older than the newest ``keep_recent`` into one
        ``summary`` item (extractive: the turns closest to their centroid). The turns stay
        searchable. Returns the summary's id, or None when there is nothing to compact."""
        query = (select(MemoryItem).where(MemoryItem.kind == "turn",
                                          MemoryItem.status == "active")
                 .order_by(MemoryItem.created_at.desc()).offset(keep_recent))
        old = list(await self.db.run(lambda conn: read_orm(conn, lambda s: s.scalars(query).all())))
        if len(old) < 2:
            return None
        vectors = as_matrix(self.embeddings, [t.text for t in old])
        centroid = vectors.mean(axis=0)
        chosen = sorted(np.argsort(-(vectors @ centroid))[:sentences],
                        key=lambda i: old[i].created_at)
        first, last = old[-1].created_at, old[0].created_at
        summary_id = f"summary:{first:%Y%m%d}-{last:%Y%m%d}"
        body = (f"Summary of {len(old)} messages from {first:%Y-%m-%d} to {last:%Y-%m-%d}: "
                + " / ".join(old[i].text for i in chosen))
        await self.add([{"id": summary_id, "kind": "summary", "text": body,
                         "source": f"turns {first:%Y-%m-%d}..{last:%Y-%m-%d}",
                         "created_at": last}])
        return summary_id


def _scan_notes(notes_dir: Path) -> dict[str, dict[str, Any]]:
    """Every markdown note in ``notes_dir`` as a memory item, with a fingerprint of its text."""
    if not notes_dir.is_dir():
        return {}
    notes = {}
    for path in sorted(notes_dir.glob("*.md")):
        body = path.read_text(encoding="utf-8", errors="replace")
        notes[f"note:{path.name}"] = {
            "id": f"note:{path.name}", "kind": "note", "text": _strip_front_matter(body),
            "source": str(path), "fingerprint": hashlib.sha256(body.encode()).hexdigest(),
            "created_at": datetime.fromtimestamp(path.stat().st_mtime).astimezone()}
    return notes


def _strip_front_matter(body: str) -> str:
    if body.startswith("---\n"):
        end = body.find("\n---\n", 4)
        if end != -1:
            return body[end + 5:].strip()
    return body.strip()


def build_context(hits: Sequence[Hit], *, budget: int,
                  count: Callable[[str], int] = approx_tokens) -> str:
    """The hits as ``- [kind id] text`` lines, best first, within ``budget`` tokens as measured
    by ``count``: an item that does not fit is cut to fit, and nothing follows it."""
    lines: list[str] = []
    used = 0
    for hit in hits:
        line = f"- [{hit.item.kind} {hit.item.id}] {hit.item.text}"
        cost = count(line) + (1 if lines else 0)
        if used + cost <= budget:
            lines.append(line)
            used += cost
            continue
        room = budget - used - (1 if lines else 0)
        words = line.split(" ")
        while words and count(" ".join(words) + " …") > room:
            words.pop()
        if len(words) > 2:
            lines.append(" ".join(words) + " …")
        break
    return "\n".join(lines)


__all__ = ["Hit", "Memory", "MemoryStore", "approx_tokens", "build_context",
           "subject_of"]
