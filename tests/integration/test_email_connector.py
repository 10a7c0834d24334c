"""The email connector against real servers: Dovecot (IMAP), an SMTP server delivering into it,
and a proxy that drops the connection after the server accepted a message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connectors.base import AuthError, PermanentError
from connectors.email import EmailConnector, message_id_for
from connectors.mailbox import MailAccount
from connectors.retry import RetryPolicy
from tests.support.mailrig import MailRig
from tests.support.smtp_proxy import SmtpProxy

FAST = RetryPolicy(attempts=3, timeout=60, wait_initial=0.01, wait_max=0.05, wait_jitter=0)


def account(rig: MailRig, user: str, *, smtp_port: int | None = None,
            password: str | None = None) -> MailAccount:
    return MailAccount(imap_host="127.0.0.1", imap_port=rig.imap_port, smtp_host="127.0.0.1",
                       smtp_port=smtp_port or rig.smtp_port, security="none", username=user,
                       password=password or rig.users[user], address=rig.address(user))


@pytest.fixture
async def proxy(mail_rig: MailRig) -> AsyncIterator[SmtpProxy]:
    smtp = await SmtpProxy(mail_rig.smtp_port).start()
    yield smtp
    await smtp.stop()


async def test_a_sent_mail_arrives_once_and_sent_keeps_one_copy(mail_rig: MailRig) -> None:
    me, client = mail_rig.add_user("op"), mail_rig.add_user("client")
    email = EmailConnector(account=account(mail_rig, me), retry=FAST)
    action = email.action(to=[mail_rig.address(client)], subject="Invoice 42",
                          body="Hello,\nInvoice 42 is attached in spirit.\n")
    diff = await email.preview(action)
    assert diff.title == f"Email to {mail_rig.address(client)}"
    assert ("Subject", None, "Invoice 42") in diff.fields
    receipt = await email.execute(action, idempotency_key="solo-plan1-0")
    message_id = message_id_for("solo-plan1-0", "example.test")
    assert receipt.ref == message_id and not receipt.reconciled
    assert mail_rig.with_message_id(client, message_id) == 1
    assert mail_rig.with_message_id(me, message_id, "Sent") == 1
    assert mail_rig.with_message_id(me, message_id, "INBOX") == 0  # the own copy was filed
    again = await email.execute(action, idempotency_key="solo-plan1-0")
    assert again.reconciled and again.id == receipt.id
    assert mail_rig.with_message_id(client, message_id) == 1
    assert (await email.reconcile("solo-plan1-0")).id == receipt.id


async def test_a_connection_dropped_after_acceptance_sends_nothing_twice(
        mail_rig: MailRig, proxy: SmtpProxy) -> None:
    me, client = mail_rig.add_user("op"), mail_rig.add_user("client")
    email = EmailConnector(account=account(mail_rig, me, smtp_port=proxy.port), retry=FAST)
    proxy.drop_after_accept = 1
    receipt = await email.execute(
        email.action(to=[mail_rig.address(client)], subject="Ship date", body="Friday."),
        idempotency_key="solo-plan2-0")
    message_id = message_id_for("solo-plan2-0", "example.test")
    assert proxy.accepted == 1 and receipt.reconciled
    assert mail_rig.with_message_id(client, message_id) == 1
    assert mail_rig.with_message_id(me, message_id, "Sent") == 1


async def test_a_refused_connection_is_retried_under_the_same_message_id(
        mail_rig: MailRig, proxy: SmtpProxy) -> None:
    me, client = mail_rig.add_user("op"), mail_rig.add_user("client")
    email = EmailConnector(account=account(mail_rig, me, smtp_port=proxy.port), retry=FAST,
                           settle_seconds=0.5)
    proxy.refuse = 1
    await email.execute(email.action(to=[mail_rig.address(client)], subject="Hi", body="Hi."),
                        idempotency_key="solo-plan3-0")
    assert proxy.accepted == 1
    assert mail_rig.with_message_id(client, message_id_for("solo-plan3-0", "example.test")) == 1


async def test_a_reply_threads_and_quotes(mail_rig: MailRig) -> None:
    me, client = mail_rig.add_user("op"), mail_rig.add_user("client")
    email = EmailConnector(account=account(mail_rig, me), retry=FAST)
    action = email.action(to=[mail_rig.address(client)], subject="Re: Ship date",
                          body="We ship on Friday.", in_reply_to="<q1@client.test>",
                          quote="When do you ship?")
    assert (await email.preview(action)).title.startswith("Reply to ")
    await email.execute(action, idempotency_key="solo-plan4-0")
    [raw] = mail_rig.messages(client)
    assert b"In-Reply-To: <q1@client.test>" in raw and b"References: <q1@client.test>" in raw
    assert b"> When do you ship?" in raw


async def test_bad_input_and_bad_credentials_are_clear_errors(mail_rig: MailRig) -> None:
    me = mail_rig.add_user("op")
    email = EmailConnector(account=account(mail_rig, me, password="wrong"), retry=FAST)
    with pytest.raises(PermanentError, match="no valid recipient"):
        await email.preview(email.action(to=["not an address"], subject="x", body="y"))
    with pytest.raises(PermanentError, match="empty"):
        await email.preview(email.action(to=["a@example.test"], subject="x", body="  "))
    with pytest.raises(AuthError):
        await email.execute(email.action(to=["a@example.test"], subject="x", body="y"),
                            idempotency_key="solo-plan5-0")
    problems = await email.check()
    assert any(p.startswith("IMAP") for p in problems)
    assert any(p.startswith("SMTP") and "refused" in p for p in problems)
    good = EmailConnector(account=account(mail_rig, me), retry=FAST)
    assert await good.check() == []
