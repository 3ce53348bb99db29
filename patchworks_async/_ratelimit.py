"""Keeping the account's rate limits so that the server never has to refuse a request.

The server counts requests in a Laravel fixed window that opens at the first request and
lasts ``per`` seconds. A client that bursts its whole budget and then refills at the average
rate (``aiolimiter.AsyncLimiter(240, 60)``) sends up to twice the limit inside one server
window. What is safe is a *sliding log*: at most ``requests`` sends in any ``per + margin``
seconds, the margin absorbing network jitter between our send and the server's count. On top
of the log, a GCRA pacer spreads sustained load evenly and allows only a small burst after
idling.

Each bucket (global, manual initialise, optional starts) is a :class:`_Window`: the log plus
the pacer, and a count of *held* slots, granted to a waiter that has not sent yet. Held slots
count as sends made now, so the guarantee is exact, and a waiter cancelled before it sends
gives its slot back: cancellation never leaks capacity. A manual initialise first holds a
manual slot, then queues for a global slot *ahead of* ordinary requests, so a call waiting on
the 10-a-minute bucket never holds one of the 240, and the log records manual sends when they
really leave rather than when their token was taken.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import deque
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from ._config import Priority, RateLimits, RequestKind

__all__ = ["Grant", "InProcessRateLimiter", "RateLimiter"]


class Grant(Protocol):
    """What a limiter may hand back with a slot, to hear how the request it allowed fared.

    A limiter that follows the server's own count (``X-RateLimit-Remaining``) needs to know
    which requests are still in flight and what their replies said.
    """

    def replied(self, status: int, headers: Mapping[str, str]) -> None:
        """The server answered the request (any status)."""
        ...

    def unanswered(self, *, maybe_counted: bool) -> None:
        """No reply came; the request may have been counted (``maybe_counted``), or surely
        never reached the server (a connection never made)."""
        ...


@runtime_checkable
class RateLimiter(Protocol):
    """What the client needs from a rate limiter; pass your own as ``limiter=``.

    An implementation may share its budget across processes, as ``RedisRateLimiter`` does.
    Both methods are called from the client's event loop.
    """

    async def acquire(self, kind: RequestKind) -> Grant | None:
        """Return when one request of ``kind`` may be sent, immediately.

        Must be cancellation-safe: a caller cancelled while waiting gives back whatever it
        had taken, and the request will not be sent. A limiter that serves some requests
        first may also take ``priority: Priority`` as a keyword (the client passes it when
        the limiter's ``acquire`` names it). It may return a :class:`Grant` to hear how the
        request fared.
        """
        ...

    async def pause(self, seconds: float) -> None:
        """The server answered 429: let nothing be sent for ``seconds`` from now."""
        ...


class _Window:
    """One bucket: at most ``capacity`` sends in any ``span`` seconds, evenly paced.

    Pure bookkeeping on times passed in by the caller, so it can be tested without a loop.
    """

    __slots__ = ("_held", "_log", "_tat", "burst", "capacity", "interval", "span")

    def __init__(self, capacity: int, span: float, burst: int) -> None:
        self.capacity = capacity
        self.span = span
        self.interval = span / capacity
        self.burst = max(1, min(burst, capacity))
        self._log: deque[float] = deque()
        self._held = 0
        self._tat = -math.inf  # GCRA's theoretical arrival time of the next send

    def ready_at(self, now: float) -> float:
        """The earliest time (``>= now``) a slot can be granted; ``inf`` until a commit."""
        log = self._log
        while log and log[0] <= now - self.span:
            log.popleft()
        at = max(now, self._tat - (self.burst - 1) * self.interval)
        over = len(log) + self._held - self.capacity
        if over >= 0:
            if over >= len(log):
                return math.inf  # only held slots fill the log: wait for them to commit
            at = max(at, log[over] + self.span)
        return at

    def reserve(self, now: float) -> None:
        """Hold a slot for a waiter; it counts as a send made now."""
        self._tat = max(self._tat, now) + self.interval
        self._held += 1

    def commit(self, now: float) -> None:
        """The holder is sending now: log the send at its true time."""
        self._held -= 1
        self._log.append(now)

    def release(self) -> None:
        """The holder will not send (it was cancelled): give the slot back."""
        self._held -= 1
        self._tat -= self.interval


class _Gate:
    """Grants a :class:`_Window`'s slots to waiters in (priority, arrival) order.

    One timer at most, set for the moment the first waiter can be served; no polling.
    """

    __slots__ = ("_counter", "_loop", "_timer", "_waiters", "not_before", "window")

    def __init__(self, window: _Window, loop: asyncio.AbstractEventLoop) -> None:
        self.window = window
        self.not_before = -math.inf  # a pause: nothing granted before this loop time
        self._loop = loop
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._counter = itertools.count()

    def ready_at(self, now: float) -> float:
        """When the next slot can be granted (a pause included)."""
        return max(self.window.ready_at(now), self.not_before)

    @property
    def queued(self) -> int:
        """Waiters not served yet."""
        return sum(1 for _, _, future in self._waiters if not future.done())

    def take_now(self, now: float) -> bool:
        """Take a slot and log the send at once if nobody queues and one is free."""
        if self._waiters or self.ready_at(now) > now:
            return False
        self.window.reserve(now)
        self.window.commit(now)
        return True

    async def hold(self, priority: int) -> None:
        """Wait until a slot is held for the caller; on cancellation nothing stays held."""
        now = self._loop.time()
        if not self._waiters and self.ready_at(now) <= now:
            self.window.reserve(now)
            return
        future: asyncio.Future[None] = self._loop.create_future()
        heapq.heappush(self._waiters, (priority, next(self._counter), future))
        self.wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.window.release()  # granted, but cancelled before it could run
            self.wake()
            raise

    def wake(self) -> None:
        """Serve every waiter that can be served now and set the timer for the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        while waiters:
            if waiters[0][2].done():  # cancelled while waiting
                heapq.heappop(waiters)
                continue
            now = self._loop.time()
            at = self.ready_at(now)
            if at > now:
                if at != math.inf:
                    self._timer = self._loop.call_at(at, self.wake)
                return
            _, _, future = heapq.heappop(waiters)
            self.window.reserve(now)
            future.set_result(None)


class InProcessRateLimiter:
    """The default limiter: keeps :class:`RateLimits` for every request of one process.

    Share one instance between clients of the same account in the same event loop to give
    them one budget. It binds to the event loop on first use (never at construction), so it
    can be built anywhere; using it from a second live loop is an error.

    Args:
        rate_limits: The limits to keep; the defaults are the account's documented ones.
        burst: How many requests may leave at once after idling; ``None`` means
            ``requests // 30`` (8 for 240 a minute). Under sustained load sends are evenly
            spaced, ``(per + margin) / requests`` apart.
    """

    def __init__(self, rate_limits: RateLimits | None = None, *, burst: int | None = None) -> None:
        self.rate_limits = rate_limits or RateLimits()
        self._burst = burst
        self._loop: asyncio.AbstractEventLoop | None = None
        self._global: _Gate
        self._manual: _Gate
        self._class_gates: dict[RequestKind, tuple[_Gate, ...]]

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        if self._loop is not None and not self._loop.is_closed():
            raise RuntimeError(
                "this rate limiter is bound to another event loop; create one per loop"
            )
        limits = self.rate_limits
        span = limits.span
        burst = self._burst if self._burst is not None else max(1, limits.requests // 30)
        self._global = _Gate(_Window(limits.requests, span, burst), loop)
        self._manual = _Gate(_Window(limits.manual_starts, span, 1), loop)
        starts = (
            (_Gate(_Window(limits.starts, span, max(1, limits.starts // 30)), loop),)
            if limits.starts
            else ()
        )
        # The buckets a request holds before its global slot, in the order it takes them.
        self._class_gates = {
            RequestKind.ORDINARY: (),
            RequestKind.START: starts,
            RequestKind.MANUAL: (self._manual, *starts),
        }
        self._loop = loop
        return loop

    async def acquire(
        self, kind: RequestKind = RequestKind.ORDINARY, *, priority: Priority = Priority.NORMAL
    ) -> None:
        """Return when a request of ``kind`` may be sent; see :class:`RateLimiter`.

        Waiters for the global budget are served in this order: a manual initialise that
        holds its manual slot, then ``Priority.HIGH`` requests, then the rest; first come,
        first served within each.
        """
        loop = self._bind()
        classes = self._class_gates[kind]
        if not classes and self._global.take_now(loop.time()):
            return  # the common case under the limit: no queue, no await
        high = priority is Priority.HIGH
        held: list[_Gate] = []
        try:
            for gate in classes:
                await gate.hold(priority=0 if high else 1)
                held.append(gate)
            rank = 0 if held else (1 if high else 2)
            while True:
                await self._global.hold(rank)
                now = loop.time()
                if now >= self._global.not_before:
                    break
                # A 429 arrived between the grant and this task running: queue again.
                self._global.window.release()
                self._global.wake()
        except asyncio.CancelledError:
            for gate in held:
                gate.window.release()
                gate.wake()
            raise
        for gate in (self._global, *held):
            gate.window.commit(now)
            gate.wake()

    def estimated_wait(self, kind: RequestKind = RequestKind.ORDINARY) -> float | None:
        """Seconds a request of ``kind`` queuing now would wait, as things stand (an
        estimate: later higher-priority requests or a 429 make it longer); ``None`` when
        it cannot be told."""
        if self._loop is None:
            return 0.0
        now = self._loop.time()
        wait = 0.0
        for gate in (*self._class_gates[kind], self._global):
            ready = gate.ready_at(now)
            if ready == math.inf:
                return None
            wait = max(wait, ready - now + gate.queued * gate.window.interval)
        return wait

    async def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` from now (a 429 was seen)."""
        loop = self._bind()
        gate = self._global
        gate.not_before = max(gate.not_before, loop.time() + seconds)
        gate.wake()
