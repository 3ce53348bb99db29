"""When Redis cannot be reached: fail fast, say so without the password, or keep a share.

What counts as unreachable (:data:`UNAVAILABLE`); a queue of calls that gives up together
(:class:`Connections`); the error that says nothing was sent (:func:`unavailable_error`,
naming the server by :func:`describe_server`); and, with ``on_unavailable="local"``, this
process's share of the budget until Redis answers again (:class:`LocalFallback`). A request
is never sent without a slot from one or the other, and the switches between them keep the
account's limit (the rule: :class:`LocalFallback`; the proof: the README, "How the shared
limiter works").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from redis.exceptions import AuthenticationError as RedisAuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._config import RateLimits, RequestKind
from .._errors import ConfigurationError, RateLimiterUnavailableError
from .._ratelimit import InProcessRateLimiter

logger = logging.getLogger("patchworks_async")

UNAVAILABLE: Final = (
    RedisConnectionError,  # refused, reset, DNS; BusyLoadingError is one too
    RedisTimeoutError,
    ReadOnlyError,  # a replica after a failover
    OSError,
    TimeoutError,
)
"""Errors that mean Redis cannot be reached now, rather than a bug."""


class FailedMeanwhile(RedisConnectionError):
    """Redis failed while a call waited its turn (a connection, the subscription): no retry."""


class Connections:
    """At most ``count`` calls to Redis at once, and a queue that gives up together.

    When a call finds Redis unavailable, the calls queued behind it fail (or fall back) at
    once instead of each waiting out its own ``timeout``.
    """

    def __init__(self, count: int) -> None:
        self._free = asyncio.Semaphore(count)
        self.failures = 0
        """Calls that found Redis unavailable: one that waited while this grew gives up."""

    async def take(self) -> None:
        """Wait for a free connection; raise :class:`FailedMeanwhile` if Redis failed."""
        failures = self.failures
        await self._free.acquire()
        if self.failures != failures:
            self._free.release()
            raise FailedMeanwhile("Redis failed while this call waited for a connection")

    def give_back(self, call: asyncio.Future[Any]) -> None:
        """Free the connection of a finished ``call``; count it if Redis was unavailable."""
        self._free.release()
        if not call.cancelled() and isinstance(call.exception(), UNAVAILABLE):
            self.failures += 1


def describe_server(url: str) -> str:
    """``host:port`` (or ``unix:/path``) of a Redis URL, without any credential.

    It names the server in every error, warning and log line, which never show a password.
    """
    if not isinstance(url, str):
        raise ConfigurationError("redis_url must be a string")
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError
            return f"unix:{parts.path}"
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError
        port = parts.port or 6379
    except ValueError:
        # The URL may hold a password: do not echo it.
        raise ConfigurationError(
            "redis_url must be a redis://, rediss:// or unix:// URL with a host or a path"
        ) from None
    host = parts.hostname
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def unavailable_error(server: str, exc: BaseException) -> RateLimiterUnavailableError:
    """The error that says nothing was sent because of ``exc`` from Redis at ``server``.

    Refused credentials are a misconfiguration rather than an outage, and any other error
    Redis answers with is not an outage either: the limiter raises for those even when it
    may fall back.
    """
    if isinstance(exc, RedisAuthenticationError):
        what = "refused the credentials in redis_url"
    elif isinstance(exc, UNAVAILABLE):
        what = "is unavailable"
    else:
        what = "answered with an error"
    return RateLimiterUnavailableError(
        f"the shared rate limiter's Redis at {server} {what} "
        f"({type(exc).__name__}); nothing was sent",
        host=server,
    )


def _local_share(limits: RateLimits, workers: int) -> RateLimits:
    """The part of ``limits`` one of ``workers`` processes may use on its own."""
    return RateLimits(
        requests=max(1, limits.requests // workers),
        manual_starts=max(1, limits.manual_starts // workers),
        starts=None if limits.starts is None else max(1, limits.starts // workers),
        per=limits.per,
        margin=limits.margin,
    )


class FallbackSettings(Protocol):
    """What :class:`LocalFallback` reads from its limiter, at the moment it needs it."""

    server: str
    rate_limits: RateLimits
    expected_workers: int
    recheck_every: float
    timeout: float


class _Signal:
    """A moment tasks can wait for: each :meth:`fire` wakes every task waiting until then."""

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    def next(self) -> asyncio.Future[None]:
        """A future resolved at the next :meth:`fire` (take it before checking the state)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return self._future

    def fire(self) -> None:
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_result(None)


class LocalFallback:
    """This process's share of the account's budget while Redis is unavailable.

    The share is an :class:`InProcessRateLimiter` made on the first outage (paced, without a
    burst) and kept, with its log, for later ones. While it is in use, a task probes Redis
    every ``recheck_every`` seconds and hands back to the shared budget once Redis answers.

    Both switches keep the account's limit, across processes that cannot talk to each
    other, with one rule: **a process trusts what it last heard from Redis for**
    :attr:`lease` **seconds**, ``2 * (recheck_every + timeout)``, and no longer.

    * A slot booked on the shared grid is used only while a Redis call that *started* less
      than a lease ago was answered (:meth:`trusts_grid`); past that the limiter asks Redis
      (a ``PING``) before sending. So once Redis is gone, no process sends on the grid for
      more than a lease, whatever it had booked: this process's local share opens a lease
      plus a short gap (:meth:`gap`) after it learnt of the outage.
    * A local send is made only while a Redis call that started less than a lease ago
      failed. So once Redis is back, no process sends on its share for more than a lease:
      this process books on the grid again a lease plus the gap after Redis answered it.

    Why the gap makes the limit exact, and what the switches cost: the README, "How the
    shared limiter works".
    """

    def __init__(self, settings: FallbackSettings) -> None:
        self._settings = settings
        self.local: InProcessRateLimiter | None = None
        self.recheck: asyncio.Task[None] | None = None
        """The task waiting for Redis: set while this process uses its share."""
        self.pause_end = -math.inf
        """The latest pause heard of (here or from Redis), on the event loop's clock."""
        self.outages = 0
        """Switches to the local share so far: a slot booked before the last one is old."""
        self._warned = False
        self._reset_clocks()

    def _reset_clocks(self) -> None:
        # All on the event loop's clock: only durations are compared with other processes.
        self._answered = -math.inf  # start of the latest call Redis answered
        self._missed = -math.inf  # start of the latest call that found Redis unavailable
        self._trusted_before_outage = -math.inf  # when old slots stopped being trusted
        self._went_local = -math.inf  # when this process learnt of the last outage
        self._came_back = -math.inf  # when Redis last answered a probe
        self._switched = _Signal()  # fired at each switch, either way
        self._missed_again = _Signal()  # fired when a failed call renews the local lease

    @property
    def active(self) -> bool:
        """True while Redis is unavailable and this process keeps its local share."""
        return self.recheck is not None

    @property
    def lease(self) -> float:
        """Seconds for which a call's outcome (answered, or not) is trusted.

        Long enough that the probes, one every ``recheck_every`` seconds and each given up
        after ``timeout``, renew it before it runs out even when Redis hangs.
        """
        settings = self._settings
        return 2 * (settings.recheck_every + settings.timeout)

    def gap(self, kind: RequestKind) -> float:
        """Seconds between one mode's last possible send of ``kind`` and the other's first.

        Global: ``expected_workers + 1`` grid slots. Each local share sends at most
        ``requests // expected_workers`` per span, paced, so all of them together send no
        faster than the grid's one send per slot; a window that holds both the grid's last
        sends and the shares' first ones then holds at most ``requests``, the ``+ 1`` slots
        paying for the rounding on both sides. Manual calls and capped starts: a whole span,
        so that a window never holds both (their grid logs are paced less tightly).
        """
        limits = self._settings.rate_limits
        if kind is RequestKind.MANUAL or (kind is RequestKind.START and limits.starts):
            return limits.span
        return (self._settings.expected_workers + 1) * limits.span / limits.requests

    def reset(self) -> None:
        """Forget the share and the pauses: the limiter was bound to a new event loop."""
        self.local, self.recheck = None, None
        self.pause_end = -math.inf
        self._reset_clocks()

    def note_pause(self, end: float) -> None:
        """Remember a pause until ``end`` (loop time), for when the share takes over."""
        self.pause_end = max(self.pause_end, end)

    def pause_remaining(self) -> float:
        """Seconds left of the latest pause heard of (negative once it is over)."""
        return self.pause_end - asyncio.get_running_loop().time()

    def answered(self, started: float) -> None:
        """A Redis call that started at ``started`` (loop time) was answered."""
        self._answered = max(self._answered, started)

    def trusts_grid(self, booked_in: int) -> bool | None:
        """May a grid slot booked when :attr:`outages` was ``booked_in`` be used now?

        True while a call that started less than a lease ago was answered; None when only
        a call answered now would say (Redis may be gone); False when Redis is known to be
        gone. A slot booked before the last outage is trusted only for the lease it had
        when the outage began: Redis may have come back empty, and others book it again.
        """
        now = asyncio.get_running_loop().time()
        if booked_in != self.outages:
            return booked_in == self.outages - 1 and now <= self._trusted_before_outage
        if now <= self._answered + self.lease:
            return True
        return False if self.active else None

    def failed(
        self, exc: BaseException, started: float, probe: Callable[[], Awaitable[bool]]
    ) -> None:
        """A call that started at ``started`` found Redis unavailable: switch to the share.

        Warns the first time only; logs each switch.

        Args:
            exc: What redis-py raised, named (never shown) in the warning.
            started: When the call started (loop time): Redis was down at some moment
                after it, which renews the local lease. Not for :class:`FailedMeanwhile`:
                the call that did fail may have started earlier.
            probe: Called every ``recheck_every`` seconds: returns True once Redis answers
                (and knows of any pause taken meanwhile), False once the limiter is closed,
                and raises :class:`RedisError` or :class:`OSError` while Redis is still away.
        """
        if not isinstance(exc, FailedMeanwhile):
            self._missed = max(self._missed, started)
            self._missed_again.fire()
        if self.active:
            return
        settings = self._settings
        loop = asyncio.get_running_loop()
        share = _local_share(settings.rate_limits, settings.expected_workers)
        message = (
            f"the shared rate limiter's Redis at {settings.server} is unavailable "
            f"({type(exc).__name__}); in {self.lease + self.gap(RequestKind.ORDINARY):.3g} s, "
            f"once no process can still send on the shared budget, this process keeps a "
            f"local share of the account's budget ({share.requests} requests, "
            f"{share.manual_starts} manual per {share.span:g} s); it rechecks Redis every "
            f"{settings.recheck_every:g} s"
        )
        logger.warning("%s", message)
        if self.local is None:
            self.local = InProcessRateLimiter(share, burst=1)
        self.outages += 1
        self._trusted_before_outage = self._answered + self.lease
        self._went_local = loop.time()
        self.recheck = loop.create_task(self._wait_for_redis(probe))
        self._switched.fire()
        if not self._warned:
            self._warned = True
            # At the line that awaited acquire() or pause(), two calls up from here.
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    async def acquire(self, kind: RequestKind) -> bool:
        """Wait until the local share lets one request of ``kind`` go.

        Returns:
            True: send it now. False: Redis answers again, book a slot on the grid instead.
        """
        local = self.local
        assert local is not None
        loop = asyncio.get_running_loop()
        while self.active:
            switched = self._switched.next()
            now = loop.time()
            opens = self._went_local + self.lease + self.gap(kind)
            if now < opens:  # the grid's last slots may still be in use somewhere
                await asyncio.wait({switched}, timeout=opens - now)  # never cancels it
                continue
            if now > self._missed + self.lease:  # Redis may be back: wait for a probe
                renewed = self._missed_again.next()
                await asyncio.wait({switched, renewed}, return_when=asyncio.FIRST_COMPLETED)
                continue
            remaining = self.pause_remaining()
            if remaining > 0:
                await local.pause(remaining)  # a pause heard from Redis before it went away
            if not await self._take(local, kind, switched):
                continue
            if self.active and loop.time() <= self._missed + self.lease:
                return True
            # Granted too late: the share counts a send that was not made, which is safe.
        return False

    @staticmethod
    async def _take(
        local: InProcessRateLimiter, kind: RequestKind, switched: asyncio.Future[None]
    ) -> bool:
        """Wait for a slot of the share, unless the process switches back first."""
        # The share's Grant (if any) is not used: the share stays timer-only, as the
        # switches' bound assumes (paced, no burst, margin kept).
        take = asyncio.ensure_future(local.acquire(kind))
        either: set[asyncio.Future[Any]] = {take, switched}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not take.done():
                take.cancel()  # nothing stays held (the share is cancellation-safe)
                with contextlib.suppress(asyncio.CancelledError):
                    await take
        if take.cancelled():
            return False
        take.result()
        return True

    async def until_shared(self, kind: RequestKind) -> None:
        """Wait until this process may book ``kind`` on the grid after an outage.

        A lease and the gap after Redis answered again: other processes may still send on
        their shares until their local lease runs out.
        """
        loop = asyncio.get_running_loop()
        wait = self._came_back + self.lease + self.gap(kind) - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)

    async def pause(self, seconds: float) -> None:
        """Pause the local share too, if there is one (it may take over again)."""
        if self.local is not None:
            await self.local.pause(seconds)

    async def _wait_for_redis(self, probe: Callable[[], Awaitable[bool]]) -> None:
        """Probe Redis every ``recheck_every`` seconds; return to the shared budget.

        However it ends (Redis answered, the limiter was closed), the callers waiting on the
        share are woken to look again, so that none waits for a probe that will not come.
        """
        settings = self._settings
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(settings.recheck_every)
                started = loop.time()
                try:
                    # Bounded here, whatever redis-py's retries take, so that the lease holds.
                    async with asyncio.timeout(settings.timeout):
                        if not await probe():
                            return
                except (RedisError, OSError):  # TimeoutError is an OSError
                    self._missed = max(self._missed, started)
                    self._missed_again.fire()
                    continue
                self.answered(started)
                self._came_back = loop.time()
                logger.warning(
                    "the shared rate limiter's Redis at %s answers again: this process books "
                    "on the shared budget again in %.3g s",
                    settings.server,
                    self.lease + self.gap(RequestKind.ORDINARY),
                )
                return
        finally:
            if self.recheck is asyncio.current_task():
                self.recheck = None
            self._switched.fire()
