"""When Redis cannot be reached: fail fast, say so without the password, or keep a share.

What counts as unreachable (:data:`UNAVAILABLE`); a queue of calls that gives up together
(:class:`Connections`); the error that says nothing was sent (:func:`unavailable_error`,
naming the server by :func:`describe_server`); and, with ``on_unavailable="local"``, this
process's share of the budget until Redis answers again (:class:`LocalFallback`). A request
is never sent without a slot from one or the other. The switches are not exact: the README,
"How the shared limiter works".
"""

from __future__ import annotations

import asyncio
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


class LocalFallback:
    """This process's share of the account's budget while Redis is unavailable.

    The share is an :class:`InProcessRateLimiter` made on the first outage (paced, without a
    burst) and kept, with its log, for later ones. While it is in use, a task probes Redis
    every ``recheck_every`` seconds and hands back to the shared budget once Redis answers.
    """

    def __init__(self, settings: FallbackSettings) -> None:
        self._settings = settings
        self.local: InProcessRateLimiter | None = None
        self.recheck: asyncio.Task[None] | None = None
        """The task waiting for Redis: set while this process uses its share."""
        self.pause_end = -math.inf
        """The latest pause heard of (here or from Redis), on the event loop's clock."""
        self._warned = False

    @property
    def active(self) -> bool:
        """True while Redis is unavailable and this process keeps its local share."""
        return self.recheck is not None

    def reset(self) -> None:
        """Forget the share and the pauses: the limiter was bound to a new event loop."""
        self.local, self.recheck = None, None
        self.pause_end = -math.inf

    def note_pause(self, end: float) -> None:
        """Remember a pause until ``end`` (loop time), for when the share takes over."""
        self.pause_end = max(self.pause_end, end)

    def pause_remaining(self) -> float:
        """Seconds left of the latest pause heard of (negative once it is over)."""
        return self.pause_end - asyncio.get_running_loop().time()

    def start(self, exc: BaseException, probe: Callable[[], Awaitable[bool]]) -> None:
        """Switch to the local share after ``exc``; warn the first time only.

        Args:
            exc: What redis-py raised, named (never shown) in the warning.
            probe: Called every ``recheck_every`` seconds: returns True once Redis answers
                (and knows of any pause taken meanwhile), False once the limiter is closed,
                and raises :class:`RedisError` or :class:`OSError` while Redis is still away.
        """
        settings = self._settings
        share = _local_share(settings.rate_limits, settings.expected_workers)
        message = (
            f"the shared rate limiter's Redis at {settings.server} is unavailable "
            f"({type(exc).__name__}); this process now keeps a local share of the "
            f"account's budget ({share.requests} requests, {share.manual_starts} manual "
            f"per {share.span:g} s) and rechecks Redis every {settings.recheck_every:g} s"
        )
        logger.warning("%s", message)
        if self.local is None:
            self.local = InProcessRateLimiter(share, burst=1)
        self.recheck = asyncio.get_running_loop().create_task(self._wait_for_redis(probe))
        if not self._warned:
            self._warned = True
            # At the line that awaited acquire() or pause(), two calls up from here.
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    async def acquire(self, kind: RequestKind) -> None:
        """Return when the local share lets one request of ``kind`` go."""
        local = self.local
        assert local is not None
        remaining = self.pause_remaining()
        if remaining > 0:
            await local.pause(remaining)  # a pause heard from Redis before it went away
        await local.acquire(kind)

    async def pause(self, seconds: float) -> None:
        """Pause the local share too, if there is one (it may take over again)."""
        if self.local is not None:
            await self.local.pause(seconds)

    async def _wait_for_redis(self, probe: Callable[[], Awaitable[bool]]) -> None:
        """Probe Redis every ``recheck_every`` seconds; return to the shared budget."""
        while True:
            await asyncio.sleep(self._settings.recheck_every)
            try:
                if not await probe():
                    return
            except (RedisError, OSError):
                continue
            logger.warning(
                "the shared rate limiter's Redis at %s answers again: back to the shared budget",
                self._settings.server,
            )
            self.recheck = None
            return
