"""The console in a real browser: Debian's Chromium, driven by Playwright, against the real
``solo serve`` with Telegram (a fake Telegram server) and a recording webhook receiver.

Log in; a card asked for in Telegram shows on the page; Approve on the page → exactly one POST,
the Telegram card edited; a tap in Telegram afterwards is told it is decided. A wrong password,
a form without its CSRF token and a form from another origin are refused; a memory item holding
``<script>`` renders as text. A playbook defined in the console's chat box, approved on the page,
is there after a restart and runs. Every page is screenshotted into ``SOLO_ARTIFACTS_DIR``
(default ``artifacts/``) as ``console-*.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright import async_api as playwright_api

from tests.fakes.telegram import FakeTelegramServer
from tests.fakes.webhooks import WebhookReceiver
from tests.support.mailrig import free_port
from tests.support.processes import ROOT, start_serve, stop, write_serve_config
from tests.support.waiting import poll_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "console-password-1"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = ["/", "/plans", "/ledger", "/memory", "/playbooks", "/spending", "/health"]

# Playwright is a dev dependency (always installed with the tests): imported, never skipped.
if not os.path.exists(CHROMIUM):
    if os.environ.get("SOLO_REQUIRE_BROWSER"):
        raise RuntimeError(f"SOLO_REQUIRE_BROWSER is set but there is no Chromium at {CHROMIUM}"
                           " (apt-get install chromium)")
    pytest.skip("no Chromium here (apt-get install chromium; CI sets SOLO_REQUIRE_BROWSER)",
                allow_module_level=True)


@pytest.fixture
async def browser() -> AsyncIterator:
    async with playwright_api.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        await chromium.close()


def artifacts() -> Path:
    folder = Path(os.environ.get("SOLO_ARTIFACTS_DIR") or ROOT / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def elsewhere(console: str) -> tuple[web.AppRunner, str]:
    """Another origin (another port) serving a page whose form posts to the console."""
    async def page(_: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f'<form method="post" action="{console}/say"><input name="text" value="/status">'
            '<input name="csrf" value="guessed"><button id="go">go</button></form>'))
    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_the_console_in_chromium_decides_once_with_telegram(
        tmp_path: Path, receiver: WebhookReceiver, browser) -> None:
    telegram = FakeTelegramServer()
    await telegram.start()
    port = free_port()
    console = f"http://127.0.0.1:{port}"
    config = write_serve_config(tmp_path, telegram.config_section(), (
        f'[connectors.webhooks.crm]\nurl = "{receiver.url}"\n'
        f'[console]\nport = {port}\npassword = "{PASSWORD}"\n'))
    log = tmp_path / "serve.log"
    proc = await start_serve(config, log)
    other, other_origin = await elsewhere(console)
    shots = artifacts()
    try:
        context = await browser.new_context()
        context.set_default_timeout(120_000)  # generous: a busy machine renders slowly
        page = await context.new_page()
        await page.goto(f"{console}/")
        assert page.url.endswith("/login")
        await page.fill("input[name=password]", "not-the-password")
        await page.click("text=Log in")
        assert "Wrong password" in await page.text_content("body")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("text=Log in")
        await page.wait_for_selector("text=Waiting for you: 0")

        # A card asked for in Telegram is on the page.
        telegram.message("/send crm Invoice 42 is paid")
        (card,) = await telegram.wait_for(
            lambda: [p for p in telegram.sent("sendMessage") if "reply_markup" in p])
        approve = telegram.card_buttons(card)[0]
        approval_id = approve.split(":")[1]
        await page.goto(f"{console}/")
        await page.wait_for_selector(f"#card-{approval_id}")
        assert "Invoice 42 is paid" in await page.text_content(f"#card-{approval_id}")
        await page.screenshot(path=shots / "console-queue.png", full_page=True)

        # Approve on the page: one POST, the Telegram card edited.
        await page.click(f"#card-{approval_id} button.verb-approve")
        await page.wait_for_selector("text=Waiting for you: 0")
        edit = await telegram.wait_for(lambda: telegram.sent("editMessageText",
                                                             message_id=card["message_id"]))
        assert "Approved by web-console" in edit[-1]["text"]
        assert receiver.deliveries_of("Invoice 42 is paid") == 1 and len(receiver.posts) == 1
        # A tap in Telegram after that: told it is decided, nothing more runs.
        telegram.press(approve, message_id=card["message_id"])
        await telegram.wait_for(lambda: any(t.startswith("Already approved by web-console")
                                            for t in telegram.texts()))
        assert len(receiver.posts) == 1

        # Hostile memory renders as text (and would not run under the page's CSP anyway).
        telegram.message("/remember Dana's note is <script>window.pwned = 1</script>")
        await telegram.wait_for(lambda: any("remembered" in t for t in telegram.texts()))
        await page.goto(f"{console}/memory")
        await page.wait_for_selector("text=<script>window.pwned = 1</script>")
        assert await page.evaluate("typeof window.pwned") == "undefined"

        # Refused: a form without its CSRF token, and a form from another origin.
        refused = await page.evaluate("""async () => {
            const body = new URLSearchParams({text: '/status'});
            return (await fetch('/say', {method: 'POST', body})).status; }""")
        assert refused == 403
        # (Another port is the same site, so the cookie goes along: the Origin check refuses.)
        hostile = await context.new_page()
        await hostile.goto(other_origin)
        async with hostile.expect_navigation():
            await hostile.click("#go")
        assert "comes from another site" in await hostile.text_content("body")
        await hostile.close()

        # A playbook defined in the console's chat box, approved on the page.
        await page.goto(f"{console}/")
        await page.fill("input[name=text]", "every day at 8 write down the daily check")
        await page.click("text=Send")
        await page.goto(f"{console}/")
        saving = page.locator(".card", has_text="Save playbook daily-check")
        await saving.wait_for()
        await saving.locator("button.verb-approve").click()
        folder = tmp_path / "data" / "playbooks"
        await poll_until(lambda: (folder / "daily-check.toml").exists(), timeout=60,
                         every=0.2, describe=lambda: log.read_text()[-2000:])

        for path in PAGES:
            await page.goto(f"{console}{path}")
            name = path.strip("/") or "queue"
            await page.screenshot(path=shots / f"console-{name}.png", full_page=True)
        await page.goto(f"{console}/plans")
        plan = await page.get_attribute("table.rows a[href^='/plans/'] >> nth=-1", "href")
        await page.goto(f"{console}{plan}")
        await page.screenshot(path=shots / "console-plan.png", full_page=True)

        # After a restart it is there, scheduled, and runs from its Run button.
        proc.terminate()
        await proc.wait()
        proc = await start_serve(config, log)
        await page.goto(f"{console}/playbooks")
        assert page.url.endswith("/login")  # sessions live in the process
        await page.fill("input[name=password]", PASSWORD)
        await page.click("text=Log in")
        await page.goto(f"{console}/playbooks")
        entry = page.locator(".card", has_text="daily-check")
        assert "next" in await entry.text_content()
        await entry.locator("button", has_text="Run").click()
        notes = tmp_path / "data" / "notes"
        await poll_until(lambda: any("Daily check" in p.read_text() for p in notes.glob("*.md")),
                         timeout=120, every=0.2, describe=lambda: log.read_text()[-2000:])
    except AssertionError:
        print(log.read_text()[-4000:])
        raise
    finally:
        await stop(proc)
        await other.cleanup()
        await telegram.stop()
