"""Work that must finish even when the task waiting for it is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["run_to_completion"]

T = TypeVar("T")


async def run_to_completion(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile.

    For the few steps that must never be cut in half (committing a journal, closing it): a
    cancellation that arrives while ``work`` runs is raised once ``work`` has finished, so
    the caller still stops, just not halfway. ``work`` itself should be short.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise  # the work itself was cancelled: there is nothing left to wait for
            cancelled = True
            continue
        break
    if cancelled:
        raise asyncio.CancelledError
    return result
