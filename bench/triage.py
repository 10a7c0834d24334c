"""Triage accuracy on the sample mails: the offline classifier against two baselines measured
in the same run (everything ``fyi``; ``needs_reply`` whenever a question mark appears).

Run: ``python -m bench.triage``. Not blind: see bench/data/triage_mails.py.
"""

from __future__ import annotations

from collections import Counter
from email.message import EmailMessage

from bench.data.triage_mails import MAILS
from connectors.mailbox import FetchedMail, parse_mail
from graph.triage import CLASSES, classify


def sample(sender: str, subject: str, body: str, headers: dict[str, str]) -> FetchedMail:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "solo@example.test", subject
    for name, value in headers.items():
        message[name] = value
    message.set_content(body)
    return parse_mail(message.as_bytes())


def accuracy(guess) -> tuple[float, Counter]:
    confusion: Counter = Counter()
    for sender, subject, body, headers, want in MAILS:
        confusion[(want, guess(sample(sender, subject, body, headers)))] += 1
    right = sum(n for (want, got), n in confusion.items() if want == got)
    return right / len(MAILS), confusion


def main() -> None:
    print(f"{len(MAILS)} mails: " + ", ".join(
        f"{c} {sum(1 for m in MAILS if m[4] == c)}" for c in CLASSES))
    base_all, _ = accuracy(lambda mail: "fyi")
    base_q, _ = accuracy(lambda mail: "needs_reply" if "?" in mail.text else "fyi")
    ours, confusion = accuracy(classify)
    print(f"baseline (all fyi)           {base_all:6.1%}")
    print(f"baseline (question → reply)  {base_q:6.1%}")
    print(f"offline triage               {ours:6.1%}  ({ours / base_q:.2f}× the better baseline)")
    for (want, got), n in sorted(confusion.items()):
        if want != got:
            print(f"  {n} × {want} taken for {got}")


if __name__ == "__main__":
    main()
