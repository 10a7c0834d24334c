"""The retry policy injected into connectors (stamina underneath, honouring ``Retry-After``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina

from connectors.base import TransientError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried.

    Attributes:
        attempts: total attempts, first included.
        timeout: seconds for all attempts together.
        wait_initial, wait_max, wait_jitter: exponential backoff in seconds.
        max_retry_after: a target's ``Retry-After`` longer than this is capped to it.
    """

    attempts: int = 5
    timeout: float = 60.0
    wait_initial: float = 0.5
    wait_max: float = 10.0
    wait_jitter: float = 0.5
    max_retry_after: float = 60.0

    def _backoff(self, exc: Exception) -> bool | float:
        if not isinstance(exc, TransientError):
            return False
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_retry_after)
        return True

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()`` until it succeeds, retrying :class:`TransientError` only."""
        async for attempt in stamina.retry_context(
            on=self._backoff, attempts=self.attempts, timeout=self.timeout,
            wait_initial=self.wait_initial, wait_max=self.wait_max, wait_jitter=self.wait_jitter,
        ):
            with attempt:
                return await call()
        raise AssertionError("unreachable: stamina re-raises the last error")
