"""The connector contract against real targets: a webhook receiver over HTTP on 127.0.0.1 and
the notes vault on disk."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import stamina

from connectors.base import (
    Action,
    AuthError,
    PermanentError,
    Receipt,
    TransientError,
    receipt_id_for,
)
from connectors.notes import NotesVaultConnector
from connectors.retry import RetryPolicy
from connectors.webhooks import WebhookConnector, parse_retry_after
from tests.fakes.webhooks import WebhookReceiver

FAST = RetryPolicy(attempts=4, timeout=10, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)


@pytest.fixture
async def hook(receiver: WebhookReceiver):
    async with httpx.AsyncClient() as client:
        yield WebhookConnector(name="crm", url=receiver.url, client=client, retry=FAST, timeout=2)


async def test_webhook_preview_shows_target_and_payload_and_sends_nothing(
        hook: WebhookConnector, receiver: WebhookReceiver) -> None:
    diff = await hook.preview(hook.action('say "hi" <b>'))
    assert diff.title == 'POST to webhook "crm"'
    assert dict((n, a) for n, _, a in diff.fields) == {
        "url": receiver.url, "payload": '{"text": "say \\"hi\\" <b>"}'}
    assert receiver.posts == []


async def test_webhook_posts_json_with_the_idempotency_key(hook: WebhookConnector,
                                                           receiver: WebhookReceiver) -> None:
    receipt = await hook.execute(hook.action("hello"), idempotency_key="solo-p1-0")
    assert receiver.posts[0].key == "solo-p1-0" and receiver.posts[0].body == {"text": "hello"}
    assert (receipt.connector, receipt.idempotency_key, receipt.summary, receipt.ref) == (
        "webhook:crm", "solo-p1-0", 'posted to "crm" (HTTP 200)', "200")
    assert receipt.id == receipt_id_for("solo-p1-0") and not receipt.reconciled
    assert Receipt.from_dict(receipt.to_dict()) == receipt


async def test_webhook_retries_5xx_with_the_same_key_then_succeeds(
        hook: WebhookConnector, receiver: WebhookReceiver) -> None:
    receiver.script = [500, 502, 503]
    await hook.execute(hook.action("flaky"), idempotency_key="k-5xx")
    assert [p.status for p in receiver.posts] == [500, 502, 503, 200]
    assert {p.key for p in receiver.posts} == {"k-5xx"}


async def test_webhook_gives_up_after_the_policy_attempts(hook: WebhookConnector,
                                                          receiver: WebhookReceiver) -> None:
    receiver.script = [500] * 10
    with pytest.raises(TransientError, match="HTTP 500"):
        await hook.execute(hook.action("down"), idempotency_key="k-down")
    assert len(receiver.posts) == 4


async def test_webhook_honours_retry_after_on_429(receiver: WebhookReceiver) -> None:
    receiver.script = [429]
    policy = RetryPolicy(attempts=3, timeout=10, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)
    with stamina.set_testing(False):
        async with httpx.AsyncClient() as client:
            hook = WebhookConnector(name="crm", url=receiver.url, client=client, retry=policy)
            started = time.monotonic()
            await hook.execute(hook.action("slow down"), idempotency_key="k-429")
            waited = time.monotonic() - started
    assert [p.status for p in receiver.posts] == [429, 200]
    # The receiver asked for 0.2 s; the policy's own backoff is zero, so any wait came from it.
    assert waited >= 0.2


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(("status", "error"), [(400, PermanentError), (404, PermanentError),
                                               (401, AuthError), (403, AuthError)])
async def test_webhook_client_errors_are_not_retried(hook: WebhookConnector,
                                                     receiver: WebhookReceiver, status: int,
                                                     error: type) -> None:
    receiver.script = [status]
    with pytest.raises(error):
        await hook.execute(hook.action("no"), idempotency_key=f"k-{status}")
    assert len(receiver.posts) == 1


async def test_webhook_timeout_is_transient_and_retried(receiver: WebhookReceiver) -> None:
    receiver.delay = 0.3
    async with httpx.AsyncClient() as client:
        hook = WebhookConnector(name="crm", url=receiver.url, client=client,
                                retry=RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0),
                                timeout=0.05)
        with pytest.raises(TransientError, match="timed out"):
            await hook.execute(hook.action("slow"), idempotency_key="k-slow")


async def test_webhook_connection_refused_is_transient() -> None:
    async with httpx.AsyncClient() as client:
        hook = WebhookConnector(name="gone", url="http://127.0.0.1:9/hook", client=client,
                                retry=RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0))
        with pytest.raises(TransientError):
            await hook.execute(hook.action("anyone?"), idempotency_key="k-gone")


async def test_webhook_409_means_the_target_already_has_it(hook: WebhookConnector,
                                                           receiver: WebhookReceiver) -> None:
    first = await hook.execute(hook.action("twice"), idempotency_key="k-dup")
    second = await hook.execute(hook.action("twice"), idempotency_key="k-dup")
    assert [p.status for p in receiver.posts] == [200, 409]
    assert second.reconciled and second.id == first.id
    assert await hook.reconcile("k-dup") is None  # a plain webhook cannot be asked


async def test_webhook_refuses_bad_actions_before_sending(hook: WebhookConnector,
                                                          receiver: WebhookReceiver) -> None:
    for action in (Action("webhook.post", hook.name, {"text": "  "}),
                   Action("webhook.post", hook.name, {}),
                   Action("note.create", hook.name, {"text": "x"})):
        with pytest.raises(PermanentError):
            await hook.preview(action)
        with pytest.raises(PermanentError):
            await hook.execute(action, idempotency_key="k-bad")
    assert receiver.posts == []


async def test_notes_create_is_atomic_and_idempotent_by_key(tmp_path: Path) -> None:
    vault = NotesVaultConnector(path=tmp_path / "vault")
    diff = await vault.preview(vault.action("Call Alice about the annual plan"))
    assert diff.fields[1] == ("text", None, "Call Alice about the annual plan")
    assert not (tmp_path / "vault").exists()  # preview writes nothing

    assert await vault.reconcile("k1") is None
    first = await vault.execute(vault.action("Call Alice about the annual plan"),
                                idempotency_key="k1")
    again = await vault.execute(vault.action("Call Alice about the annual plan"),
                                idempotency_key="k1")
    files = list((tmp_path / "vault").iterdir())
    assert len(files) == 1 and files[0].name.endswith(".md")
    assert "call-alice-about-the-annual-plan" in files[0].name
    assert "idempotency_key: k1" in files[0].read_text()
    assert again.reconciled and again.id == first.id and again.ref == first.ref
    found = await vault.reconcile("k1")
    assert found is not None and found.ref == first.ref
    other = await vault.execute(vault.action("Call Alice about the annual plan"),
                                idempotency_key="k2")
    assert other.ref != first.ref


async def test_notes_leave_no_partial_file_behind(tmp_path: Path) -> None:
    vault = NotesVaultConnector(path=tmp_path / "vault")
    await vault.execute(vault.action("x" * 50_000), idempotency_key="big")
    assert [p.suffix for p in (tmp_path / "vault").iterdir()] == [".md"]
    with pytest.raises(PermanentError, match="limit"):
        await vault.execute(vault.action("x" * 200_000), idempotency_key="too-big")
