"""What the console shows (GET): the queue, plans, the ledger, memory, playbooks, spending,
health and ``/metrics``. Reading only; everything is escaped by the templates (outside text —
mail subjects, memory items, tool results — is shown as text, never as markup)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from bot.console.channel import CHANNEL
from bot.console.guard import Guard
from bot.console.metrics import read_metrics
from bot.console.sessions import Session
from graph.playbooks import JOB_PREFIX, PLAYBOOK
from memory.console_reads import LedgerFilter
from memory.models import utcnow

if TYPE_CHECKING:
    from bot.console.app import Console

PAGE = 50
CSV_BATCH = 1000
CHART_DAYS = 30
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


async def login_form(console: Console, request: Request) -> Response:
    """The password form (a fresh session carries its CSRF token)."""
    session = console.guard.session(request)
    if session is not None and session.operator:
        return Response(status_code=303, headers={"location": "/"})
    session = session or console.guard.sessions.start()
    return Guard.set_cookie(console.render(request, "login.html", session, error=""), session)


async def _queue_context(console: Console, request: Request) -> dict[str, Any]:
    desk = console.solo.director.desk
    pending = await console.solo.storage.approvals.pending()
    offset = _int(request.query_params.get("offset"), 0, len(pending))
    cards = [await desk.card_for(a) for a in pending[offset:offset + PAGE]]
    decided = [await desk.card_for(a)
               for a in await console.solo.storage.reads.recently_decided(10)]
    return {"cards": cards, "decided": decided, "total": len(pending), "offset": offset,
            "page": PAGE}


async def queue(console: Console, request: Request, session: Session) -> Response:
    """The approval queue: pending cards, oldest first, with chat's buttons."""
    return console.render(request, "queue.html", session,
                          **await _queue_context(console, request))


async def queue_cards(console: Console, request: Request, session: Session) -> Response:
    """The queue's list alone (htmx refreshes it)."""
    return console.render(request, "_queue.html", session, with_answers=False,
                          **await _queue_context(console, request))


async def answers(console: Console, request: Request, session: Session) -> Response:
    """Answers the console got since this session last looked (htmx polls it)."""
    return console.render(request, "_answers.html", session)


async def edit_form(console: Console, request: Request, session: Session) -> Response:
    """A card's editable steps, each with its text in a box."""
    approval = await console.solo.storage.approvals.get(request.path_params["approval_id"])
    if approval is None:
        return PlainTextResponse("No such approval.", status_code=404)
    steps = [s for s in await console.solo.storage.plans.steps(approval.plan_id)
             if s.status == "waiting" and isinstance(s.action.get("args", {}).get("text"), str)]
    return console.render(request, "edit.html", session, approval=approval, steps=steps)


async def plans(console: Console, request: Request, session: Session) -> Response:
    """Plans, newest first, by status."""
    status = request.query_params.get("status", "")
    before = None
    at, _, plan_id = request.query_params.get("before", "").partition("|")
    if at and plan_id:
        try:
            before = (datetime.fromisoformat(at), plan_id)
        except ValueError:
            before = None
    rows = await console.solo.storage.reads.plans(status=status, before=before, limit=PAGE)
    following = f"{rows[-1].created_at.isoformat()}|{rows[-1].id}" if len(rows) == PAGE \
        else ""
    return console.render(request, "plans.html", session, plans=rows, status=status,
                          following=following)


async def plan(console: Console, request: Request, session: Session) -> Response:
    """One plan: its steps, receipts, approvals, cost and checkpoints; retry and cancel."""
    storage = console.solo.storage
    found = await storage.plans.get(request.path_params["plan_id"])
    if found is None:
        return PlainTextResponse("No such plan.", status_code=404)
    desk = console.solo.director.desk
    cards = [await desk.card_for(a) for a in await storage.approvals.for_plan(found.id)]
    cost, calls = await storage.audit.model_cost(plan_id=found.id)
    checkpoints = []
    config = {"configurable": {"thread_id": found.id}}
    async for snapshot in console.solo.director.graph.aget_state_history(config, limit=50):
        checkpoints.append({"id": snapshot.config["configurable"].get("checkpoint_id", ""),
                            "step": (snapshot.metadata or {}).get("step"),
                            "next": ", ".join(snapshot.next) or "end",
                            "at": snapshot.created_at or ""})
    steps = await storage.plans.steps(found.id)
    return console.render(
        request, "plan.html", session, plan=found, steps=steps, cards=cards,
        receipts=await storage.reads.receipts(found.id), cost=cost, calls=calls,
        checkpoints=checkpoints, retry=any(s.status == "failed" for s in steps),
        cancel=found.status in ("running", "waiting"))


def _ledger_filter(console: Console, request: Request) -> tuple[LedgerFilter, list[str]]:
    params, problems = request.query_params, []
    bounds: dict[str, datetime | None] = {"since": None, "until": None}
    for name in bounds:
        text = params.get(name, "").strip()
        if not text:
            continue
        try:
            day = datetime.fromisoformat(text).replace(tzinfo=console.solo.timezone)
        except ValueError:
            problems.append(f"{name}: {text!r} is not a date like 2026-12-01 (left out)")
            continue
        bounds[name] = day + timedelta(days=1) if name == "until" and len(text) == 10 else day
    return LedgerFilter(connector=params.get("connector", "").strip(),
                        actor=params.get("actor", "").strip(),
                        decision=params.get("decision", "").strip(), **bounds), problems


async def ledger(console: Console, request: Request, session: Session) -> Response:
    """The audit ledger, newest first, filtered; pages of ``PAGE`` by id."""
    where, problems = _ledger_filter(console, request)
    before = _int(request.query_params.get("before"), None, None)
    rows = await console.solo.storage.reads.ledger(where, before_id=before, limit=PAGE)
    query = {k: v for k, v in request.query_params.items() if k != "before"}
    return console.render(request, "ledger.html", session, rows=rows, problems=problems,
                          query=query, following=rows[-1].id if len(rows) == PAGE else None)


async def ledger_csv(console: Console, request: Request, session: Session) -> Response:
    """Every event the filter matches, as CSV (streamed; cells that a spreadsheet would read
    as a formula are prefixed with ``'``)."""
    where, _ = _ledger_filter(console, request)
    reads = console.solo.storage.reads
    columns = ["id", "at", "actor", "channel", "plan_id", "intent", "decision", "connector",
               "idempotency_key", "receipt_id", "model", "cost_usd", "detail"]

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        before = None
        while True:
            rows = await reads.ledger(where, before_id=before, limit=CSV_BATCH)
            for row in rows:
                values = [getattr(row, c) for c in columns]
                values[1] = row.at.isoformat()
                values[-1] = json.dumps(row.detail, ensure_ascii=False) if row.detail else ""
                writer.writerow([_cell(v) for v in values])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < CSV_BATCH:
                return
            before = rows[-1].id

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": 'attachment; filename="solo-ledger.csv"'})


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return "" if value is None else value


async def memory(console: Console, request: Request, session: Session) -> Response:
    """Memory: a search, or the newest facts and notes; each with its provenance."""
    query = request.query_params.get("q", "").strip()[:500]
    kind = request.query_params.get("kind", "")
    kind = kind if kind in ("fact", "note", "receipt", "turn", "summary") else ""
    found = console.solo.director.deps.memory
    if query and found is not None:
        items = [hit.item for hit in await found.search(query, k=PAGE)]
    else:
        items = await console.solo.storage.reads.memory_items(kind=kind, limit=PAGE)
    return console.render(request, "memory.html", session, items=items, q=query, kind=kind)


async def memory_item(console: Console, request: Request, session: Session) -> Response:
    """One item with its supersession chain (what it replaced, what replaced it)."""
    item_id = request.path_params["item_id"]
    chain = await console.solo.storage.reads.supersession_chain(item_id)
    if not chain:
        return PlainTextResponse("No such memory item.", status_code=404)
    item = next(i for i in chain if i.id == item_id)
    return console.render(request, "memory_item.html", session, item=item, chain=chain)


async def playbooks(console: Console, request: Request, session: Session) -> Response:
    """Playbooks: next run, the run ledger, versions, paused or not."""
    storage = console.solo.storage
    found, errors = console.solo.jobs.playbooks.load()
    paused = await storage.playbooks.paused()
    jobs = {j.id: j for j in await storage.jobs.scheduled(PLAYBOOK)}
    rows = []
    for name, playbook in sorted(found.items()):
        job = jobs.get(f"{JOB_PREFIX}{name}")
        trigger = playbook.spec.trigger
        rows.append({"name": name, "playbook": playbook, "paused": name in paused,
                     "next": job.due_at if job else None,
                     "when": trigger.schedule or (f"cron {trigger.cron}" if trigger.cron
                                                  else "on demand or on an event"),
                     "runs": await storage.playbooks.runs(name, limit=5),
                     "versions": await storage.playbooks.versions(name)})
    return console.render(request, "playbooks.html", session, rows=rows, errors=errors)


async def spending(console: Console, request: Request, session: Session) -> Response:
    """Model spending per day for the last ``CHART_DAYS`` days against the daily cap."""
    tz = console.solo.timezone
    start = (utcnow().astimezone(tz) - timedelta(days=CHART_DAYS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    days = await console.solo.storage.reads.spend_by_day(since=start, timezone=tz)
    caps = console.solo.settings.budget
    top = max([d.cost_usd for d in days] + [caps.daily_usd, 0.01])
    width, height = 16, 160
    bars = [{"x": i * (width + 4), "h": round(d.cost_usd / top * height, 1), "day": d.day,
             "cost": d.cost_usd, "calls": d.calls, "over": bool(caps.daily_usd) and
             d.cost_usd > caps.daily_usd} for i, d in enumerate(days)]
    cap_y = round(height - caps.daily_usd / top * height, 1) if caps.daily_usd else None
    return console.render(request, "spending.html", session, bars=bars, height=height,
                          width=len(days) * (width + 4), bar=width, cap_y=cap_y, caps=caps,
                          total=sum(d.cost_usd for d in days))


async def health(console: Console, request: Request, session: Session) -> Response:
    """Each adapter's and connector's last event age, queue depths, the scheduler's lag and
    failed deliveries."""
    solo, now = console.solo, utcnow()
    reads = solo.storage.reads
    last_event = await reads.last_event_by_channel()
    adapters = [{"name": name, "age": _age(now, last_event.get(name))}
                for name in solo.channels() if name != CHANNEL]
    last_call = await reads.last_call_by_connector()
    states = {h.connector: h for h in await solo.storage.health.all()}
    connectors = [{"name": name, "age": _age(now, last_call.get(name)),
                   "state": states[name].state if name in states else "ok",
                   "detail": states[name].detail if name in states else ""}
                  for name in sorted(solo.director.deps.connectors)]
    due, oldest = await reads.due_jobs(now)
    return console.render(
        request, "health.html", session, adapters=adapters, connectors=connectors,
        deliveries=sorted((await reads.deliveries_by_status()).items()),
        failed=await reads.failed_deliveries(), due=due,
        lag=_age(now, oldest) if oldest else "none",
        outbox=sorted((await solo.storage.outbox.count_by_status()).items()),
        plans=sorted((await solo.storage.plans.count_by_status()).items()),
        pending=len(await solo.storage.approvals.pending()))


async def metrics(console: Console, request: Request) -> Response:
    """Prometheus metrics, for a logged-in session or ``Authorization: Bearer PASSWORD``."""
    session = console.guard.session(request)
    bearer = request.headers.get("authorization", "")
    if not (session is not None and session.operator) and not (
            bearer.startswith("Bearer ") and
            console.guard.sessions.password_ok(bearer.removeprefix("Bearer ").strip())):
        return PlainTextResponse("Log in, or send Authorization: Bearer PASSWORD.",
                                 status_code=401)
    return Response(await read_metrics(console.solo.storage),
                    media_type="text/plain; version=0.0.4; charset=utf-8")


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _int(text: str | None, default: Any, most: int | None) -> Any:
    try:
        value = max(0, int(text or ""))
    except ValueError:
        return default
    return min(value, most) if most is not None else value
