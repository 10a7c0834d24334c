"""The operator console over real HTTP (its uvicorn listener on 127.0.0.1, httpx as the
browser), on both database backends, the clock pinned: the door (password, sessions, CSRF,
same origin, throttle, headers), the queue deciding through the same desk as chat, edits,
repairs, the ledger's filters, paging and CSV, memory with hostile text, playbooks, spending,
health and ``/metrics``."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import time_machine

from bot.adapters.memory import InMemoryAdapter
from bot.app import SoloApp
from bot.web import WebListener
from config import Settings
from tests.fakes.webhooks import WebhookReceiver

PASSWORD = "console-password-1"
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@dataclass
class Browser:
    """Just enough of a browser: the session cookie (kept by hand: it is Secure, and httpx's
    jar does not send Secure cookies over http), the last page's CSRF token and nonces."""

    client: httpx.AsyncClient
    base: str
    token: str = ""

    def _headers(self, extra: dict | None = None) -> dict:
        return {**({"cookie": f"solo_console={self.token}"} if self.token else {}),
                **(extra or {})}

    def _keep(self, answer: httpx.Response) -> httpx.Response:
        found = re.search(r"solo_console=([^;]+)", answer.headers.get("set-cookie", ""))
        if found:
            self.token = found[1]
        return answer

    async def get(self, path: str, **kw) -> httpx.Response:
        return self._keep(await self.client.get(self.base + path, headers=self._headers(
            kw.pop("headers", None)), **kw))

    async def post(self, path: str, data: dict, **kw) -> httpx.Response:
        return self._keep(await self.client.post(self.base + path, data=data, headers=self._headers(
            kw.pop("headers", None)), **kw))

    async def csrf(self, path: str = "/") -> str:
        return re.search(r'name="csrf" value="([^"]+)"', (await self.get(path)).text)[1]

    async def log_in(self) -> None:
        csrf = await self.csrf("/login")
        answer = await self.post("/login", {"csrf": csrf, "password": PASSWORD})
        assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text

    async def press(self, button: str, *, nonce: str = "", path: str = "/") -> httpx.Response:
        return await self.post(f"/decide?back={path}", {
            "csrf": await self.csrf(path), "button": button, "nonce": nonce})


@pytest.fixture
async def console(request: pytest.FixtureRequest, clock: time_machine.Traveller,
                  tmp_path: Path, database_url: str, receiver: WebhookReceiver,
                  ) -> AsyncIterator[tuple[SoloApp, InMemoryAdapter, Browser]]:
    """The app with a memory chat and a webhook, its console logged out; ``request.param``
    (indirect) adds settings."""
    solo = await SoloApp.open(Settings.model_validate({
        "storage": {"data_dir": tmp_path / "data", "database_url": database_url},
        "operator": {"timezone": "Europe/Berlin"},
        "connectors": {"webhooks": {"crm": {"url": receiver.url}}},
        **getattr(request, "param", {})}))
    chat = InMemoryAdapter()
    await solo.add_adapter(chat, operators={"operator"})
    web = WebListener(solo, "127.0.0.1", 0, password=PASSWORD)
    await web.start()
    async with httpx.AsyncClient(timeout=60) as client:
        yield solo, chat, Browser(client, f"http://127.0.0.1:{web.port}")
    await web.stop()
    await solo.aclose()


async def test_the_door_password_session_csrf_origin_throttle_and_headers(console) -> None:
    solo, chat, browser = console
    assert (await browser.get("/")).headers["location"] == "/login"
    assert (await browser.get("/ledger")).status_code == 303
    login = await browser.get("/login")
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"
    anonymous = browser.token
    csrf = await browser.csrf("/login")
    # No token, another origin, a wrong password: refused, and nobody is logged in.
    assert (await browser.post("/login", {"password": PASSWORD})).status_code == 403
    assert (await browser.post("/login", {"csrf": csrf, "password": PASSWORD}, headers={
        "origin": "http://evil.example"})).status_code == 403
    wrong = await browser.post("/login", {"csrf": csrf, "password": "guess"})
    assert wrong.status_code == 401 and "Wrong password" in wrong.text
    assert (await browser.get("/")).status_code == 303
    await browser.log_in()
    assert browser.token != anonymous  # a new session at login (no fixation)
    page = await browser.get("/")
    assert page.status_code == 200 and "Nothing waits for a decision" in page.text
    assert PASSWORD not in page.text
    # Actions need the session's token and this origin.
    await chat.say("/send crm hello")
    [card] = [s.card for s in chat.sent if s.kind == "card"]
    refused = [await browser.post("/decide", {"button": f"approve:{card.approval_id}"}),
               await browser.post("/decide", {"csrf": "forged", "button":
                                              f"approve:{card.approval_id}"}),
               await browser.post("/decide", {"csrf": await browser.csrf(), "button":
                                              f"approve:{card.approval_id}"},
                                  headers={"origin": "http://127.0.0.1:1"})]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert (await solo.storage.approvals.get(card.approval_id)).status == "pending"
    # A form's way back stays on this site.
    for away in ("//evil.example/", "/\\evil.example/", "https://evil.example/"):
        answer = await browser.post(f"/say?back={away}", {"csrf": await browser.csrf(),
                                                          "text": "/status"})
        assert answer.headers["location"] == "/", away
    # Logging out ends the session; the old cookie opens nothing.
    old = browser.token
    assert (await browser.post("/logout", {"csrf": await browser.csrf()})).status_code == 303
    browser.token = old
    assert (await browser.get("/")).status_code == 303
    # Five wrong passwords a minute (one above), then a wait.
    browser.token = ""
    csrf = await browser.csrf("/login")
    codes = [(await browser.post("/login", {"csrf": csrf, "password": f"guess{i}"})).status_code
             for i in range(5)]
    assert codes == [401] * 4 + [429]
    assert (await browser.post("/login", {"csrf": csrf, "password": PASSWORD})).status_code \
        == 429


async def test_a_card_decided_on_the_page_runs_once_and_chat_is_told(
        console, receiver: WebhookReceiver) -> None:
    _, chat, browser = console
    await browser.log_in()
    await chat.say("/send crm Invoice 42 is paid")
    [card] = [s.card for s in chat.sent if s.kind == "card"]
    page = (await browser.get("/")).text
    assert f"Approval {card.approval_id}" in page and "Invoice 42 is paid" in page
    assert "Waiting for you: 1" in page
    first = await browser.press(f"approve:{card.approval_id}", nonce="n1")
    again = await browser.press(f"approve:{card.approval_id}", nonce="n1")  # a double submit
    assert first.status_code == again.status_code == 303
    assert receiver.deliveries_of("Invoice 42 is paid") == 1 and len(receiver.posts) == 1
    # The chat card shows the outcome; a tap there is told it is decided.
    [update] = [s for s in chat.sent if s.kind == "card_update"]
    assert update.card.status == "approved" and "Approved by web-console" in update.card.outcome
    [notice] = await chat.press("approve", card.approval_id)
    assert notice.text.startswith("Already approved by web-console")
    assert len(receiver.posts) == 1
    page = (await browser.get("/")).text
    assert "Nothing waits for a decision" in page and "Decided lately" in page
    assert "Approved by web-console" in page
    # A press on the page after a decision in chat: told, nothing runs.
    await chat.say("/send crm second")
    [_, card2] = [s.card for s in chat.sent if s.kind == "card"]
    await chat.press("reject", card2.approval_id)
    await browser.press(f"approve:{card2.approval_id}", nonce="n2")
    assert "Already rejected by operator" in (await browser.get("/answers")).text
    assert receiver.deliveries_of("second") == 0
    ledger = (await browser.get("/ledger?actor=web-console")).text
    assert "approved" in ledger


async def test_edit_on_the_page_supersedes_the_card_and_the_new_text_runs(
        console, receiver: WebhookReceiver) -> None:
    solo, chat, browser = console
    await browser.log_in()
    await chat.say("/send crm draft text")
    [card] = [s.card for s in chat.sent if s.kind == "card"]
    form = await browser.get(f"/approvals/{card.approval_id}/edit")
    assert "draft text</textarea>" in form.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
    await browser.post(f"/approvals/{card.approval_id}/edit",
                       {"csrf": csrf, "step": "1", "text": "final text", "nonce": "e1"})
    assert (await solo.storage.approvals.get(card.approval_id)).status == "superseded"
    [fresh] = await solo.storage.approvals.pending()
    assert "final text" in (await browser.get("/")).text
    await browser.press(f"approve:{fresh.id}", nonce="a1")
    assert [p.body["text"] for p in receiver.posts] == ["final text"]
    # An edit of a card decided meanwhile sends nothing (its text does not become a request).
    await browser.post(f"/approvals/{fresh.id}/edit", {"csrf": await browser.csrf(),
                                                       "step": "1", "text": "/status"})
    await browser.post(f"/approvals/{fresh.id}/edit", {"csrf": await browser.csrf(),
                                                       "step": "1", "text": "send it again"})
    assert len(receiver.posts) == 1
    assert len(await solo.storage.plans.count_by_status()) >= 1
    assert all(p.inbound.get("text") != "send it again"
               for p in await solo.storage.reads.plans(limit=50))


async def test_a_failed_step_retried_from_its_plan_page_is_delivered_once(
        console, receiver: WebhookReceiver) -> None:
    solo, chat, browser = console
    await browser.log_in()
    receiver.script = [400]  # refused for good: the step fails
    await chat.say("/send crm try me")
    [card] = [s.card for s in chat.sent if s.kind == "card"]
    await browser.press(f"approve:{card.approval_id}", nonce="r0")
    plan_id = (await solo.storage.approvals.get(card.approval_id)).plan_id
    detail = (await browser.get(f"/plans/{plan_id}")).text
    assert "failed" in detail and "Retry failed steps" in detail
    csrf = re.search(r'name="csrf" value="([^"]+)"', detail)[1]
    await browser.post(f"/plans/{plan_id}/retry", {"csrf": csrf, "nonce": "r1"})
    # The retry carries the action already approved, under its key: no second card.
    assert await solo.storage.approvals.pending() == []
    assert [p.status for p in receiver.posts] == [400, 200]
    assert receiver.posts[0].key == receiver.posts[1].key  # the original key, once delivered
    assert receiver.deliveries_of("try me") == 1


@pytest.mark.parametrize("console", [{"policy": {"undo_seconds": {"webhook.post": 600}}}],
                         indirect=True)
async def test_undo_on_the_page_inside_the_window_sends_nothing(
        console, receiver: WebhookReceiver) -> None:
    solo, chat, browser = console
    await browser.log_in()
    await chat.say("/send crm take it back")
    [card] = [s.card for s in chat.sent if s.kind == "card"]
    await browser.press(f"approve:{card.approval_id}", nonce="u1")
    page = (await browser.get("/")).text
    assert "unless you press Undo" in page and f'value="undo:{card.approval_id}"' in page
    await browser.press(f"undo:{card.approval_id}", nonce="u2")
    assert [s.status for s in await solo.storage.plans.steps(
        (await solo.storage.approvals.get(card.approval_id)).plan_id)] == ["undone"]
    assert receiver.posts == []


async def test_plan_pages_cancel_and_the_chat_box(console, receiver) -> None:
    solo, chat, browser = console
    await browser.log_in()
    await chat.say("/send crm cancel me")
    [card] = [s.card for s in chat.sent if s.kind == "card"]
    approval = await solo.storage.approvals.get(card.approval_id)
    listing = (await browser.get("/plans")).text
    assert approval.plan_id[:12] in listing and "cancel me" in listing
    detail = await browser.get(f"/plans/{approval.plan_id}")
    assert "POST to webhook" in detail.text and "Checkpoints" in detail.text
    assert "await_approval" in detail.text  # the checkpoint the plan waits at
    csrf = re.search(r'name="csrf" value="([^"]+)"', detail.text)[1]
    await browser.post(f"/plans/{approval.plan_id}/cancel", {"csrf": csrf, "nonce": "c1"})
    assert (await solo.storage.approvals.get(card.approval_id)).status == "rejected"
    assert receiver.posts == []
    assert (await browser.post("/plans/x/drop", {"csrf": csrf})).status_code == 404
    # The chat box: a command typed on the page is answered on the page.
    await browser.post("/say?back=/plans", {"csrf": csrf, "text": "/status"})
    assert "plans" in (await browser.get("/answers")).text.lower()


async def test_ledger_filters_pages_and_csv(console) -> None:
    solo, _, browser = console
    await browser.log_in()
    for i in range(300):
        await solo.storage.audit.append(actor="bob" if i % 2 else "ann", channel="memory",
                                        decision="approved" if i % 3 else "model.ok",
                                        connector="crm", detail={"n": i, "text": f"=SUM(A{i})"})
    page = (await browser.get("/ledger?actor=bob&decision=approved")).text
    shown = [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", page)]
    assert len(shown) == 50 and shown == sorted(shown, reverse=True)
    following = re.search(r"before=(\d+)", page)[1]
    second = (await browser.get(f"/ledger?actor=bob&decision=approved&before={following}")).text
    more = [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", second)]
    assert more and max(more) < min(shown) and not set(more) & set(shown)
    assert "not a date" in (await browser.get("/ledger?since=yesterday")).text
    exported = await browser.get("/ledger.csv?actor=bob&decision=approved")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:3] == ["id", "at", "actor"]
    assert len(rows) - 1 == sum(1 for i in range(300) if i % 2 and i % 3)
    assert all(r[2] == "bob" for r in rows[1:])
    assert "attachment" in exported.headers["content-disposition"]


async def test_hostile_text_renders_as_text_on_every_page(console, receiver) -> None:
    solo, chat, browser = console
    await browser.log_in()
    await solo.director.deps.memory.remember(f"Carla's note is {HOSTILE}", id="fact:hostile",
                                             source="mail:1")
    await chat.say(f"/send crm {HOSTILE}")
    await chat.say(f"/note {HOSTILE}")
    for path in ("/", "/memory", "/memory/fact:hostile", "/plans", "/ledger", "/health"):
        page = (await browser.get(path)).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in \
        (await browser.get("/memory")).text
    assert "&lt;script&gt;" in (await browser.get("/")).text


async def test_memory_search_chain_and_forget(console) -> None:
    solo, _, browser = console
    await browser.log_in()
    memory = solo.director.deps.memory
    await memory.remember("Carla's phone is 111", id="fact:1", source="telegram:1")
    await memory.remember("Carla's phone is 222", id="fact:2", source="telegram:2")
    found = (await browser.get("/memory?q=Carla+phone")).text
    assert "Carla&#39;s phone is 222" in found and "telegram:2" in found
    chain = (await browser.get("/memory/fact:2")).text
    links = chain.split("Supersession chain")[1]
    assert links.index("Carla&#39;s phone is 111") < links.index("Carla&#39;s phone is 222")
    csrf = re.search(r'name="csrf" value="([^"]+)"', chain)[1]
    await browser.post("/memory/fact:2/forget", {"csrf": csrf, "nonce": "f1"})
    # The same step as /forget in chat (low risk: it runs at once, audited, undoable).
    assert await solo.storage.approvals.pending() == []
    assert (await solo.storage.reads.supersession_chain("fact:2"))[-1].status == "forgotten"
    assert "forgot" in (await browser.get("/answers")).text.lower()


async def test_playbooks_spending_health_and_metrics(console, receiver) -> None:
    solo, chat, browser = console
    folder = solo.settings.storage.data_dir / "playbooks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weekly.toml").write_text(
        'description = "Monday check"\nenabled = true\n[trigger]\n'
        'schedule = "every monday at 9:00"\n[[steps]]\ndraft = "check"\n[[steps]]\nnote = true\n')
    await solo.jobs.sync_playbooks()
    await browser.log_in()
    page = (await browser.get("/playbooks")).text
    assert "weekly" in page and "Monday check" in page and "next" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    await browser.post("/playbooks/weekly/pause", {"csrf": csrf, "nonce": "p1"})
    assert await solo.storage.playbooks.paused() == {"weekly"}
    assert "Resume" in (await browser.get("/playbooks")).text
    await solo.storage.audit.append(actor="system", decision="model.ok", model="m",
                                    prompt_version="v", cost_usd=0.0123, plan_id="p")
    spending = (await browser.get("/spending")).text
    assert "$0.0123 in 1 calls" in spending and 'class="cap"' in spending
    await chat.say("/send crm count me")
    [card] = [s.card for s in chat.sent if s.kind == "card"]
    await chat.press("approve", card.approval_id)
    health = (await browser.get("/health")).text
    assert "memory" in health and "crm" in health and "Approvals waiting" in health
    assert (await browser.client.get(browser.base + "/metrics")).status_code == 401
    wrong = {"authorization": "Bearer nope"}
    assert (await browser.client.get(browser.base + "/metrics", headers=wrong)).status_code \
        == 401
    text = (await browser.client.get(browser.base + "/metrics", headers={
        "authorization": f"Bearer {PASSWORD}"})).text
    assert 'solo_connector_calls_total{connector="webhook:crm",status="done"} 1.0' in text
    assert 'solo_events_admitted_total{channel="memory"}' in text
    assert "solo_approval_wait_seconds_count 1.0" in text
    assert "solo_scheduler_lag_seconds" in text and "solo_delivery_queue_depth" in text
    assert (await browser.get("/metrics")).status_code == 200  # the session opens it too


async def test_no_password_no_listener(console) -> None:
    solo, *_ = console
    with pytest.raises(ValueError, match="password"):
        WebListener(solo, "127.0.0.1", 0, password="")
