"""No secret leaks: the real ``solo serve`` with every secret set (Telegram token, model API key,
mail and calendar password, an MCP server's environment, the console password, a playbook
webhook's secret) is driven through its flows — errors included: a webhook answering 500, the
model answering 401, a wrong webhook secret, a wrong console password — and then its log,
every file in its data directory (the database among them), every message it sent and every
page of its web console (and ``/metrics``) are searched for each secret. None is found."""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import httpx

from tests.fakes.openai import FakeOpenAI
from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver
from tests.support.mailrig import MailRig, free_port
from tests.support.processes import start_serve, stop

TOKEN = "987654:SECRET-telegram-token-5a1f"
API_KEY = "sk-SECRET-model-key-7f3a9c1e"
MCP_ENV = "SECRET-mcp-environment-55d1"
CONSOLE = "SECRET-console-password-8c2e"
HOOK = "SECRET-hook-secret-0123456789"


async def test_no_secret_reaches_the_log_the_data_or_a_reply(
        tmp_path: Path, receiver: WebhookReceiver, openai: FakeOpenAI,
        mail_rig: MailRig) -> None:
    user = mail_rig.add_user()
    password = mail_rig.users[user]
    telegram = FakeTelegramServer(token=TOKEN)
    await telegram.start()
    port = free_port()
    data = tmp_path / "data"
    (data / "playbooks").mkdir(parents=True)
    (data / "playbooks" / "intake.toml").write_text(
        f'enabled = true\n[trigger]\nhook = true\nsecret = "{HOOK}"\n'
        '[[steps]]\ndraft = "Intake: {items}"\n[[steps]]\nnote = true\n')
    config = tmp_path / "solo.toml"
    mcp_args = json.dumps(["-m", "tests.support.mcp_test_server", str(tmp_path / "ledger")])
    config.write_text(f"""
[storage]
data_dir = "{data}"
{telegram.config_section()}
[llm]
model = "openai:gpt-test"
base_url = "{openai.base_url}"
api_key = "{API_KEY}"

[console]
port = {port}
password = "{CONSOLE}"

[connectors.retry]
attempts = 2
wait_initial_seconds = 0.05
wait_max_seconds = 0.1
wait_jitter_seconds = 0

[connectors.webhooks.crm]
url = "{receiver.url}"

[connectors.email]
imap_host = "127.0.0.1"
imap_port = {mail_rig.imap_port}
smtp_host = "127.0.0.1"
smtp_port = {mail_rig.smtp_port}
security = "none"
username = "{user}"
password = "{password}"
address = "{mail_rig.address(user)}"

[connectors.calendar]
url = "http://127.0.0.1:{mail_rig.caldav_port}/{user}/"
username = "{user}"
password = "{password}"
calendar = "work"

[connectors.mcp.ledger]
command = "{sys.executable}"
args = {mcp_args}
env = {{ LEDGER_TOKEN = "{MCP_ENV}" }}
""")
    log = tmp_path / "serve.log"
    proc = await start_serve(config, log)
    cards_done = 0

    async def approve_next_card() -> None:
        nonlocal cards_done
        cards = await telegram.wait_for(lambda: [
            p for p in telegram.sent("sendMessage") if "reply_markup" in p
            and any(b.startswith("approve:") for b in telegram.card_buttons(p))][cards_done:])
        cards_done += 1
        approve = next(b for b in telegram.card_buttons(cards[0]) if b.startswith("approve:"))
        edits = len(telegram.sent("editMessageText"))
        telegram.press(approve, message_id=cards[0]["message_id"])
        await telegram.wait_for(lambda: len(telegram.sent("editMessageText")) > edits)

    async def said(text: str, expect: str) -> None:
        telegram.message(text)
        await telegram.wait_for(lambda: any(expect in t for t in telegram.texts()))

    try:
        await run_flows(telegram, receiver, openai, mail_rig.address(user), port, said,
                        approve_next_card)
        pages = await console_pages(port)
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    except AssertionError:
        print([(c.method, c.params) for c in telegram.calls if c.method != "getUpdates"][-6:],
              log.read_text()[-3000:])
        raise
    finally:
        await stop(proc)
        await telegram.stop()
    secrets = {"telegram token": TOKEN, "model key": API_KEY, "mail password": password,
               "mcp environment": MCP_ENV, "console password": CONSOLE, "hook secret": HOOK}
    places = {"serve log": log.read_bytes(),
              "replies": json.dumps([c.params for c in telegram.calls], default=str).encode(),
              **pages}
    for path in data.rglob("*"):
        if path.is_file() and path.parent.name != "playbooks":  # the file the secret is in
            places[str(path.relative_to(data))] = path.read_bytes()
    assert len(places) > 3
    leaks = [(name, where) for name, secret in secrets.items()
             for where, content in places.items() if secret.encode() in content]
    assert leaks == []


async def run_flows(telegram: FakeTelegramServer, receiver: WebhookReceiver, openai: FakeOpenAI,
                    address: str, port: int, said, approve_next_card) -> None:
    """Every flow once, errors included."""
    await said("/note the launch went well", "receipt")
    telegram.message("/send crm invoice 42 is paid")
    await approve_next_card()
    receiver.script = [500] * 10  # the webhook fails: the error path says so
    telegram.message("/send crm this one fails")
    await approve_next_card()
    openai.script = [401, {"intent": "status", "slots": {}, "confidence": 0.9, "steps": []}]
    await said("how is the crm doing these days", "offline understanding")
    await said("how are things", "Storage:")
    telegram.message(f"/email {address} Hello\nThe numbers are in.")
    await approve_next_card()
    await said("/agenda", "nothing booked")
    await said("/note after the agenda", "after-the-agenda")
    telegram.message('/call ledger.append_line {"text": "x"}')
    await approve_next_card()
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"http://127.0.0.1:{port}/hooks/intake"
        wrong = await client.post(url, json={"text": "x"},
                                  headers={"Authorization": "Bearer not-the-secret"})
        right = await client.post(url, json={"text": "order 7"},
                                  headers={"Authorization": f"Bearer {HOOK}"})
    assert (wrong.status_code, right.status_code) == (401, 202)
    await telegram.wait_for(lambda: any("order 7" in t for t in telegram.texts()))
    before = len(telegram.texts())
    for command in ("/status", "/budget", "/audit", "/plans", "/playbooks", "/tools"):
        telegram.message(command)
    await telegram.wait_for(lambda: len(telegram.texts()) >= before + 6)


async def console_pages(port: int) -> dict[str, bytes]:
    """Every page of the web console (logged in), a plan's page and ``/metrics``, as served."""
    pages: dict[str, bytes] = {}
    async with httpx.AsyncClient(timeout=30, base_url=f"http://127.0.0.1:{port}") as client:
        def cookie(answer: httpx.Response) -> dict[str, str]:
            token = re.search(r"solo_console=([^;]+)", answer.headers["set-cookie"])[1]
            return {"cookie": f"solo_console={token}"}

        login = await client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)[1]
        wrong = await client.post("/login", data={"csrf": csrf, "password": "not-it"},
                                  headers=cookie(login))
        assert wrong.status_code == 401
        headers = cookie(await client.post("/login", data={"csrf": csrf, "password": CONSOLE},
                                           headers=cookie(login)))
        paths = ["/", "/plans", "/ledger", "/ledger.csv", "/memory", "/playbooks", "/spending",
                 "/health", "/metrics"]
        plans = (await client.get("/plans", headers=headers)).text
        paths += [f"/plans/{plan}" for plan in re.findall(r'href="/plans/([^"?]+)"', plans)[:5]]
        for path in paths:
            page = await client.get(path, headers=headers)
            assert page.status_code == 200, (path, page.status_code)
            pages[f"console {path}"] = page.content
    return pages
