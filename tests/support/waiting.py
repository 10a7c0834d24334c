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


async def poll_until(predicate: Callable[[], Any], *, timeout: float,
                     describe: Callable[[], str], every: float = 0.02) -> Any:
    """The first truthy ``predicate()`` (a coroutine function's result is awaited), re-checked
    every ``every`` seconds: for state with no change event to wait on (a printed transcript,
    the audit log).

    Raises:
        AssertionError: not met within ``timeout`` seconds (with ``describe()`` attached).
    """
    async def loop() -> Any:
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(every)

    try:
        return await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        raise AssertionError(f"condition not met in {timeout} s; {describe()}") from None
