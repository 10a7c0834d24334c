"""Waiting on fake servers without sleeping: re-check a condition each time they change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def wait_until(predicate: Callable[[], Any], changed: asyncio.Event, *, timeout: float,
                     describe: Callable[[], str]) -> Any:
    """The first truthy ``predicate()``, re-checked whenever ``changed`` is set.

    Raises:
        AssertionError: not met within ``timeout`` seconds (with ``describe()`` attached).
    """
    async def loop() -> Any:
        while True:
            result = predicate()
            if result:
                return result
            changed.clear()
            await changed.wait()

    try:
        return await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        raise AssertionError(f"condition not met in {timeout} s; {describe()}") from None
