"""The idle watchdog: an await aborted after a strategy's ``idle_timeout_s`` without progress."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from harness.clients.reference.failures import IdleTimeout

T = TypeVar("T")


async def guarded(awaitable: Awaitable[T], idle_s: float | None, mid_stream: bool, what: str) -> T:
    """``awaitable``, aborted by the idle watchdog after ``idle_s`` without progress."""
    if idle_s is None:
        return await awaitable
    watchdog = asyncio.timeout(idle_s)
    try:
        async with watchdog:
            return await awaitable
    except TimeoutError:
        if watchdog.expired():
            raise IdleTimeout(f"no byte for {idle_s:g} s {what}", mid_stream=mid_stream, connection_level=True) from None
        raise
