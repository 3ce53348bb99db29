"""A rate limiter whose slots the test hands out, to order events without sleeping."""

from __future__ import annotations

import asyncio
from collections import deque

from patchworks_async import RequestKind


class ControlledLimiter:
    """Implements ``RateLimiter``; every ``acquire`` waits until the test calls ``grant``.

    It counts what happened to each slot, so a test can assert that a stopped batch used no
    slot it was not granted before the stop, and gave back the ones it was waiting for.

    Attributes:
        used: Slots granted and taken by a request that then went on to send.
        given_back: Waiters cancelled before (or just after) their grant: nothing sent.
        paused: Every pause asked for (seconds).
    """

    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._changed = asyncio.Event()
        self.used = 0
        self.given_back = 0
        self.paused: list[float] = []

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        return sum(1 for future in self._waiting if not future.done())

    async def acquire(self, kind: RequestKind = RequestKind.ORDINARY) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._notify()
        try:
            await future
        except asyncio.CancelledError:
            if future in self._waiting:
                self._waiting.remove(future)
            self.given_back += 1
            self._notify()
            raise
        self.used += 1
        self._notify()

    async def pause(self, seconds: float) -> None:
        self.paused.append(seconds)

    def grant(self, count: int = 1) -> None:
        """Let the ``count`` longest-waiting requests go."""
        for _ in range(count):
            self._waiting.popleft().set_result(None)

    async def until(self, *, waiting: int | None = None, given_back: int | None = None) -> None:
        """Return once at least ``waiting`` wait, or ``given_back`` slots came back."""
        async with asyncio.timeout(30):
            while not (
                (waiting is None or self.waiting >= waiting)
                and (given_back is None or self.given_back >= given_back)
            ):
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
