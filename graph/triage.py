"""Triage of incoming mail: ``needs_reply``, ``fyi`` or ``ignore``.

First the operator's rules (``[connectors.email] triage``: sender pattern → class), then an
offline scorer over what a mail is, not what it says to do: mailing-list and automated-sender
headers, no-reply senders, spam and newsletter vocabulary, receipts and invoices, and whether a
person asks the operator something. Its only output is one of three labels: nothing in a mail
can reach an action from here (the step that reads mail has no effectful action available).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.mailbox import FetchedMail

CLASSES = ("needs_reply", "fyi", "ignore")

_SPAM = re.compile(
    r"\b(?:viagra|casino|crypto ?(?:giveaway|bonus)|lottery|you(?:'ve| have) won|winner|"
    r"claim your (?:prize|reward)|wire transfer fee|inheritance|million dollars|"
    r"act now|100% free|click here|limited time offer|miracle|weight loss|"
    r"verify your account|account (?:is )?suspended|unusual sign-?in|bitcoin)\b", re.I)
_NEWSLETTER = re.compile(
    r"\b(?:newsletter|unsubscribe|weekly digest|webinar|this week in|% off|sale ends|"
    r"new arrivals|promo(?:tion)? code|discount|black friday|our latest|product update|"
    r"release notes|view (?:it )?in (?:your )?browser)\b", re.I)
_FYI = re.compile(
    r"\b(?:invoice|receipt|payment (?:received|confirmation)|order (?:confirmation|#|number)|"
    r"has shipped|shipping confirmation|statement|your booking|reservation confirmed|"
    r"confirmation|renewal|subscription|password (?:was )?changed|security alert|"
    r"for your records|no action (?:is )?(?:needed|required)|just (?:a heads up|fyi)|fyi|"
    r"out of office|automatic reply|delivered|minutes of|report)\b", re.I)
_ASKS = re.compile(
    r"\?|\b(?:could you|can you|would you|will you|please (?:send|confirm|let me know|advise|"
    r"reply|review|call)|let me know|get back to me|are you (?:free|available)|"
    r"what do you think|do you have|when can|is it possible|looking forward to your|"
    r"waiting for your|need your|your thoughts|any update)\b", re.I)
_NOREPLY = re.compile(r"^(?:no-?reply|do-?not-?reply|mailer-daemon|notifications?|news|"
                      r"newsletter|marketing|info|billing|invoices?|receipts?|support|alerts?)"
                      r"[@+.]", re.I)


@dataclass(frozen=True, slots=True)
class Triage:
    """A triage label and who gave it (``rule``, ``local`` or ``model``)."""

    label: str
    by: str


def by_rule(sender: str, rules: Mapping[str, str]) -> str | None:
    """The operator's class for ``sender`` (first matching pattern; most specific first)."""
    for pattern in sorted(rules, key=lambda p: (p.count("*"), -len(p))):
        if fnmatch.fnmatch(sender.lower(), pattern.lower()):
            return rules[pattern]
    return None


def classify(mail: FetchedMail) -> str:
    """The offline class of ``mail``."""
    head = f"{mail.subject}\n{mail.text[:2000]}"
    if _SPAM.search(head):
        return "ignore"
    automated = mail.bulk or bool(_NOREPLY.match(mail.from_addr))
    if automated and _NEWSLETTER.search(head):
        return "ignore"
    if automated:
        return "fyi"
    if _FYI.search(mail.subject) and not _ASKS.search(mail.text[:1500]):
        return "fyi"
    if _NEWSLETTER.search(head) and not _ASKS.search(mail.text[:1500]):
        return "ignore"
    if _ASKS.search(head):
        return "needs_reply"
    return "fyi"


def triage(mail: FetchedMail, rules: Mapping[str, str]) -> Triage:
    """Rules first, then the offline classifier."""
    ruled = by_rule(mail.from_addr, rules)
    if ruled is not None:
        return Triage(ruled, "rule")
    return Triage(classify(mail), "local")
