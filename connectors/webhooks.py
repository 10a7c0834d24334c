"""Named webhooks: POST ``{"text": ...}`` with an ``Idempotency-Key`` header.

Status mapping: 2xx done; 409 means the target already processed this key (the IETF
``Idempotency-Key`` draft's answer to a repeat), so it counts as done; 401/403 :class:`AuthError`;
429, 5xx, timeouts and connection errors :class:`TransientError` (``Retry-After`` honoured);
other 4xx :class:`PermanentError`.

A plain webhook offers no way to ask "did key K arrive?", so :meth:`WebhookConnector.reconcile`
returns ``None`` and the caller re-sends under the same key; exactly-once then rests on the
target deduplicating by ``Idempotency-Key`` (which the header exists for).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from connectors.base import (
    Action,
    AuthError,
    Connector,
    Diff,
    PermanentError,
    Receipt,
    TransientError,
)
from connectors.retry import RetryPolicy

POST_KIND = "webhook.post"
MAX_TEXT = 16_000


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class WebhookConnector(Connector):
    """One named webhook target.

    Args:
        name: the webhook's name in config (``/send NAME TEXT``).
        url: where to POST.
        client: shared ``httpx.AsyncClient``.
        retry: the retry policy for transient failures.
        timeout: seconds per attempt.
    """

    def __init__(self, *, name: str, url: str, client: httpx.AsyncClient, retry: RetryPolicy,
                 timeout: float = 10.0) -> None:
        self.webhook = name
        self.name = f"webhook:{name}"
        self.url = url
        self._client = client
        self._retry = retry
        self._timeout = timeout

    def action(self, text: str) -> Action:
        """The action that posts ``text`` to this webhook."""
        return Action(kind=POST_KIND, connector=self.name, args={"text": text})

    def _text(self, action: Action) -> str:
        if action.kind != POST_KIND:
            raise PermanentError(f"{self.name} cannot perform {action.kind}")
        text = action.args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PermanentError("the message to send is empty")
        if len(text) > MAX_TEXT:
            raise PermanentError(f"the message is {len(text)} characters; the limit is {MAX_TEXT}")
        return text

    async def preview(self, action: Action) -> Diff:
        """Target and payload."""
        text = self._text(action)
        return Diff(
            title=f'POST to webhook "{self.webhook}"',
            fields=(("url", None, self.url),
                    ("payload", None, json.dumps({"text": text}, ensure_ascii=False))),
        )

    async def execute(self, action: Action, *, idempotency_key: str) -> Receipt:
        """POST once under ``idempotency_key``, retrying transient failures with the same key."""
        text = self._text(action)
        return await self._retry.run(lambda: self._post(text, idempotency_key))

    async def _post(self, text: str, key: str) -> Receipt:
        try:
            response = await self._client.post(
                self.url, json={"text": text}, headers={"Idempotency-Key": key},
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"{self.name}: timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return Receipt.for_key(connector=self.name, idempotency_key=key,
                                   summary=f'posted to "{self.webhook}" (HTTP {status})',
                                   ref=str(status))
        if status == 409:
            return Receipt.for_key(connector=self.name, idempotency_key=key,
                                   summary=f'"{self.webhook}" already had this message (HTTP 409)',
                                   ref="409", reconciled=True)
        if status in (401, 403):
            raise AuthError(f"{self.name}: HTTP {status}: credentials refused")
        if status == 429 or status >= 500 or status == 408:
            raise TransientError(f"{self.name}: HTTP {status}",
                                 retry_after=parse_retry_after(response.headers.get("Retry-After")))
        raise PermanentError(f"{self.name}: HTTP {status}: {response.text[:200]}")

    async def reconcile(self, idempotency_key: str,
                        action: Action | None = None) -> Receipt | None:
        """A plain webhook cannot be asked; the caller re-sends under the same key."""
        return None
