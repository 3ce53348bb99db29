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

The global bucket also follows the server's own count. Each slot comes with a
:class:`Grant`, told how its request fared; a :class:`.ServerWindow` reads the replies'
``X-RateLimit-*`` headers and says how many more may leave before the server's window is
full (other consumers of the account included). While it follows the server, the margin is
dropped (the server's figures absorb jitter better than a guess), and the pacer's burst
grows to cover the latency, so that the time spent waiting for a full window to end is
made up at the start of the next. Without the headers nothing of this applies: the limiter
is the timer-only one above.
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
from ._server_window import Flight, ServerWindow

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

    def reshape(self, span: float, burst: int, now: float) -> None:
        """Pace to ``span`` and ``burst`` from now on; the sends the pacer still owes
        spacing to are re-spaced at the new interval."""
        interval = span / self.capacity
        if self._tat > now:
            self._tat = now + (self._tat - now) * interval / self.interval
        self.span, self.interval = span, interval
        self.burst = max(1, min(burst, self.capacity))


class _Gate:
    """Grants a :class:`_Window`'s slots to waiters in (priority, arrival) order.

    One timer at most, set for the moment the first waiter can be served; no polling. With
    a ``server``, a slot also needs the server's window to have room (see the module).
    """

    __slots__ = (
        "_burst",
        "_counter",
        "_following",
        "_loop",
        "_seen",
        "_span",
        "_timer",
        "_waiters",
        "not_before",
        "server",
        "window",
    )

    def __init__(
        self,
        window: _Window,
        loop: asyncio.AbstractEventLoop,
        server: ServerWindow | None = None,
    ) -> None:
        self.window = window
        self.not_before = -math.inf  # a pause: nothing granted before this loop time
        self.server = server
        self._following = False
        self._seen: tuple[bool, float, int] | None = None  # what the pacer was last set for
        self._span, self._burst = window.span, window.burst  # the timer-only settings
        self._loop = loop
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._counter = itertools.count()

    def ready_at(self, now: float) -> float:
        """When the next slot can be granted (a pause and the server's window included)."""
        server = self.server
        if server is None:
            return max(self.window.ready_at(now), self.not_before)
        if server.following(now) is not self._following:
            self.adapt(now)
        return max(self.window.ready_at(now), self.not_before, server.ready_at(now))

    def adapt(self, now: float) -> None:
        """Set the pacer for what is known: timer-only, or following the server.

        Following it, the log keeps ``requests`` per ``per`` (no margin), and the burst
        covers a round trip's worth of sends, so that waiting for a full window to end
        (with nothing to send) is made up by the first sends of the next. Not when the
        server allows more than was configured: then ``requests`` is the caller's own cap
        (a share of the account, say), kept as documented, margin included. Back to the
        timer, sends older than ``per`` may have left the log already: for one span the
        guarantee is ``requests`` in any ``per`` seconds.
        """
        server, window = self.server, self.window
        assert server is not None
        following = server.following(now)
        seen = (following, server.latency, server.limit)
        if seen == self._seen:
            return  # nothing changed (the common case: called after every reply)
        self._following, self._seen = following, seen
        if following and server.limit <= window.capacity:
            late = math.ceil(server.latency * window.capacity / server.per) + 1
            window.reshape(server.per, max(self._burst, late), now)
        else:
            window.reshape(self._span, self._burst, now)

    def reserve(self, now: float) -> None:
        """Hold a slot for a waiter (see :meth:`_Window.reserve`)."""
        self.window.reserve(now)
        if self.server is not None:
            self.server.hold()

    def release(self) -> None:
        """The holder will not send: give its slot back."""
        self.window.release()
        if self.server is not None:
            self.server.unhold()

    def commit(self, now: float, flight: Flight | None = None) -> None:
        """The holder sends now (``flight``: the request the server's window follows)."""
        self.window.commit(now)
        if self.server is not None and flight is not None:
            self.server.send(flight)

    @property
    def waiting(self) -> bool:
        """Whether anyone waits (a reply that frees room must wake them)."""
        return bool(self._waiters)

    @property
    def queued(self) -> int:
        """Waiters not served yet."""
        return sum(1 for _, _, future in self._waiters if not future.done())

    def take_now(self, now: float) -> bool:
        """Hold a slot at once if nobody queues and one is free (the caller commits it)."""
        if self._waiters or self.ready_at(now) > now:
            return False
        self.reserve(now)
        return True

    async def hold(self, priority: int) -> None:
        """Wait until a slot is held for the caller; on cancellation nothing stays held."""
        now = self._loop.time()
        if not self._waiters and self.ready_at(now) <= now:
            self.reserve(now)
            return
        future: asyncio.Future[None] = self._loop.create_future()
        heapq.heappush(self._waiters, (priority, next(self._counter), future))
        self.wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted, but cancelled before it could run
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
            self.reserve(now)
            future.set_result(None)


class _Grant(Flight):
    """The :class:`Grant` of one global slot: tells the server's window how it fared."""

    __slots__ = ("_limiter", "kind")

    def __init__(self, sent_at: float, kind: RequestKind, limiter: InProcessRateLimiter) -> None:
        self.sent_at = sent_at  # Flight's two fields, set here: this is the hot path
        self.done = False
        self.kind = kind
        self._limiter = limiter

    def replied(self, status: int, headers: Mapping[str, str]) -> None:
        """The server answered (any status); told once, later calls are ignored."""
        if not self.done:
            self._limiter._heard(self, status, headers)

    def unanswered(self, *, maybe_counted: bool) -> None:
        """No reply came (or none will be read)."""
        if not self.done:
            self._limiter._unanswered(self, maybe_counted)


class InProcessRateLimiter:
    """The default limiter: keeps :class:`RateLimits` for every request of one process.

    Share one instance between clients of the same account in the same event loop to give
    them one budget. It binds to the event loop on first use (never at construction), so it
    can be built anywhere; using it from a second live loop is an error.

    It follows the server's own count where replies carry ``X-RateLimit-Limit`` and
    ``X-RateLimit-Remaining`` (through the :class:`Grant` each slot comes with): then other
    consumers of the account and latency jitter cost no 429, and no margin is kept.

    Args:
        rate_limits: The limits to keep; the defaults are the account's documented ones.
        burst: How many requests may leave at once after idling; ``None`` means
            ``requests // 30`` (8 for 240 a minute). Under sustained load sends are evenly
            spaced, ``(per + margin) / requests`` apart (``per / requests`` while the
            server's figures are followed, when the burst also grows to cover a round
            trip's worth of sends).
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
        server = ServerWindow(limits.requests, limits.per)
        self._global = _Gate(_Window(limits.requests, span, burst), loop, server)
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
        # X-RateLimit-Limit values that name another throttle on a route of each kind (on
        # an ordinary route there is only the global one): a reply showing one of them
        # carries no figures of the global window, whose hit it still is.
        others = {limits.starts} if limits.starts else set()
        self._other_limits = {
            RequestKind.ORDINARY: frozenset[int](),
            RequestKind.START: frozenset(others),
            RequestKind.MANUAL: frozenset({limits.manual_starts, *others}),
        }
        self._loop = loop
        return loop

    async def acquire(
        self, kind: RequestKind = RequestKind.ORDINARY, *, priority: Priority = Priority.NORMAL
    ) -> Grant:
        """Return when a request of ``kind`` may be sent; see :class:`RateLimiter`.

        Waiters for the global budget are served in this order: a manual initialise that
        holds its manual slot, then ``Priority.HIGH`` requests, then the rest; first come,
        first served within each. The :class:`Grant` returned wants to hear how the
        request fared; one never told is given up for lost after ``per`` seconds.
        """
        loop = self._bind()
        classes = self._class_gates[kind]
        if not classes:
            now = loop.time()
            if self._global.take_now(now):  # the common case under the limit: no await
                grant = _Grant(now, kind, self)
                self._global.commit(now, grant)
                return grant
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
                self._global.release()
                self._global.wake()
        except asyncio.CancelledError:
            for gate in held:
                gate.release()
                gate.wake()
            raise
        grant = _Grant(now, kind, self)
        self._global.commit(now, grant)
        for gate in held:
            gate.commit(now)
        for gate in (self._global, *held):
            gate.wake()
        return grant

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

    def _heard(self, grant: _Grant, status: int, headers: Mapping[str, str]) -> None:
        """A reply: the server's window reads it, and room it frees goes to the waiters."""
        gate = self._global
        assert gate.server is not None
        assert self._loop is not None
        now = self._loop.time()
        gate.server.replied(
            grant,
            now,
            status,
            headers,
            only_global=grant.kind is RequestKind.ORDINARY,
            other_limits=self._other_limits[grant.kind],
        )
        gate.adapt(now)
        if gate.waiting:
            gate.wake()

    def _unanswered(self, grant: _Grant, maybe_counted: bool) -> None:
        gate = self._global
        assert gate.server is not None
        assert self._loop is not None
        gate.server.lost(grant, self._loop.time(), maybe_counted=maybe_counted)
        if gate.waiting:
            gate.wake()
