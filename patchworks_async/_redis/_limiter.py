"""The limiter itself: bound to one event loop, one Redis script call per request.

Each request books its send slot with ``book.lua`` and sleeps until the slot starts. A pause
is set in Redis and announced on the account's channel, which every limiter listens to, so
that callers asleep on a slot inside the pause book again instead of sending. Why that keeps
the limits exactly: the README, "How the shared limiter works".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Self

try:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.commands.core import AsyncScript
    from redis.exceptions import AuthenticationError as RedisAuthenticationError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError(
        "RedisRateLimiter needs the redis package: pip install 'patchworks-async[redis]'"
    ) from exc

from .._config import RateLimits, RequestKind
from .._errors import ConfigurationError
from ._fallback import (
    UNAVAILABLE,
    Connections,
    FailedMeanwhile,
    LocalFallback,
    describe_server,
    unavailable_error,
)
from ._scripts import (
    BOOK_SCRIPT,
    PAUSE_SCRIPT,
    RELEASE_SCRIPT,
    US,
    account_keys,
    booking_args,
    check_key_part,
    pause_channel,
)

__all__ = ["RedisRateLimiter"]

logger = logging.getLogger("patchworks_async")

OnUnavailable = Literal["fail", "local"]


async def _close_quietly(pubsub: PubSub) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]


class RedisRateLimiter:
    """Keeps :class:`RateLimits` for every process of an account together, through Redis.

    Pass it to each client as ``limiter=``; give every process the same ``redis_url``,
    ``account`` and ``rate_limits``. How it works: the README, "How the shared limiter
    works"::

        limiter = RedisRateLimiter("redis://127.0.0.1:6379/0", account="acme")
        async with limiter, PatchworksClient(api_key=key, limiter=limiter) as pw:
            ...

    Args:
        redis_url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` or
            ``unix:///path/to/socket``. The password never reaches a log line, a repr or
            an error message.
        account: Names the shared budget: every process with the same ``account`` (and
            ``key_prefix``) shares one. No braces.
        rate_limits: The account's limits; the documented defaults when omitted.
        on_unavailable: ``"fail"``: when Redis cannot be reached, :meth:`acquire` raises
            :class:`RateLimiterUnavailableError` and nothing is sent. ``"local"``: warn once
            and fall back to an in-process limiter with a share of the budget, until Redis
            answers again. Both switches keep at most ``requests`` sends in any ``per +
            margin`` seconds across the processes, at a cost: after each switch a process
            waits up to a lease (``2 * (recheck_every + timeout)``) plus
            ``expected_workers + 1`` slots before it sends again (a span, for manual calls
            and capped starts). Why: the README, "How the shared limiter works".
        key_prefix: The first part of every Redis key.
        expected_workers: How many processes share the account, for the local fallback's
            share (``requests // expected_workers``, at least 1, and so on for each bucket).
            Give every process the same value, and run no more processes than it says.
        recheck_every: Seconds between checks for Redis while falling back. With
            ``timeout`` it sets the lease: give every process the same two values.
        timeout: Seconds to wait for Redis to connect or to answer before it counts as
            unavailable.
        connections: Script calls in flight at once, each on its own connection (plus one
            for the pause channel). A booking takes one round trip, so a few connections
            book thousands of requests a second; more only add connections to Redis.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        account: str,
        rate_limits: RateLimits | None = None,
        on_unavailable: OnUnavailable = "fail",
        key_prefix: str = "patchworks",
        expected_workers: int = 4,
        recheck_every: float = 1.0,
        timeout: float = 2.0,
        connections: int = 4,
    ) -> None:
        self.server = describe_server(redis_url)
        self.account = check_key_part("account", account)
        check_key_part("key_prefix", key_prefix)
        if on_unavailable not in ("fail", "local"):
            raise ConfigurationError(
                f'on_unavailable must be "fail" or "local", not {on_unavailable!r}'
            )
        if isinstance(expected_workers, bool) or not isinstance(expected_workers, int):
            raise ConfigurationError("expected_workers must be an int")
        if expected_workers < 1:
            raise ConfigurationError(f"expected_workers must be >= 1, not {expected_workers}")
        if not recheck_every > 0 or not timeout > 0:
            raise ConfigurationError("recheck_every and timeout must be positive")
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise ConfigurationError(f"connections must be an int >= 1, not {connections!r}")
        self.connections = connections
        self.rate_limits = rate_limits or RateLimits()
        self.on_unavailable: OnUnavailable = on_unavailable
        self.expected_workers = expected_workers
        self.recheck_every = float(recheck_every)
        self.timeout = float(timeout)
        self._url = redis_url

        limits = self.rate_limits
        self.interval_us = limits.span * US / limits.requests
        if self.interval_us < 1.0:
            raise ConfigurationError(
                "RedisRateLimiter books microsecond slots: at most 1,000,000 requests a second"
            )
        self.keys = account_keys(key_prefix, account)
        """Every Redis key of the account: all share the ``{account}`` hash tag."""
        self.channel = pause_channel(key_prefix, account)
        self._argv = booking_args(limits)
        self.script_calls = 0
        """Scripts run on Redis so far (bookings, releases, pauses): one round trip each."""

        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: Redis | None = None
        self._book_script: AsyncScript
        self._release_script: AsyncScript
        self._pause_script: AsyncScript
        self._subscribe_lock: asyncio.Lock
        self._connections: Connections
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = False
        self._background: set[asyncio.Task[Any]] = set()
        self._pause_seen_us = 0  # the latest pause_until heard of, in Redis microseconds
        self._horizon = 0  # the last slot seen booked: fenced off if Redis restarts empty
        self._fallback = LocalFallback(self)  # keeps its own loop-clock record of pauses

    def __repr__(self) -> str:
        mode = "local fallback" if self.falling_back else "shared"
        return f"<RedisRateLimiter account={self.account!r} redis={self.server} {mode}>"

    @property
    def falling_back(self) -> bool:
        """True while Redis is unavailable and this process keeps its local share."""
        return self._fallback.active

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ binding, closing

    def _bind(self) -> Redis:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._redis is not None:
            return self._redis
        if self._loop is not None and self._loop is not loop and not self._loop.is_closed():
            raise RuntimeError(
                "this rate limiter is bound to another event loop; create one per loop"
            )
        client = Redis.from_url(
            self._url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            # One immediate retry: a pooled connection may be stale after a restart.
            retry=Retry(NoBackoff(), 1),
        )
        self._loop, self._redis = loop, client
        self._book_script = client.register_script(BOOK_SCRIPT)
        self._release_script = client.register_script(RELEASE_SCRIPT)
        self._pause_script = client.register_script(PAUSE_SCRIPT)
        self._subscribe_lock = asyncio.Lock()
        self._connections = Connections(self.connections)
        self._pubsub, self._reader, self._subscribed = None, None, False
        self._background = set()
        self._fallback.reset()
        return client

    async def aclose(self) -> None:
        """Close the Redis connections and stop background work; safe to call twice.

        Slots given back by cancelled callers are released first (for up to ``timeout``).
        The limiter may be used again afterwards: it reconnects on first use.
        """
        redis, self._redis = self._redis, None
        if redis is None:
            return
        pending = [task for task in self._background if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.timeout)
        recheck = self._fallback.recheck
        tasks = [t for t in (self._reader, recheck, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._reader, self._fallback.recheck, self._subscribed = None, None, False
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await _close_quietly(pubsub)
        with contextlib.suppress(RedisError, OSError):
            await redis.aclose()

    # ------------------------------------------------------------------ the protocol

    async def acquire(self, kind: RequestKind = RequestKind.ORDINARY) -> None:
        """Return when one request of ``kind`` may be sent, immediately.

        Raises:
            RateLimiterUnavailableError: Redis cannot be reached and ``on_unavailable`` is
                ``"fail"`` (or Redis answered with an error), so nothing may be sent.
        """
        redis = self._bind()
        loop = asyncio.get_running_loop()
        fallback = self._fallback
        release = ""
        argv = self._argv[kind]
        while True:
            if fallback.active:
                if await fallback.acquire(kind):
                    return
                continue  # Redis answers again: book on the grid
            await fallback.until_shared(kind)  # right after an outage only
            if fallback.active:
                continue
            started, outages = loop.time(), fallback.outages
            try:
                if not self._subscribed:
                    await self._subscribe(redis)
                delay_us, index, now_us = await self._book((*argv, release, str(self._horizon)))
            except (RedisError, OSError) as exc:
                self._failed(exc, started)  # raises unless falling back
                continue
            fallback.answered(started)
            slot_us = now_us + delay_us  # in Redis time, like the pauses heard of
            if delay_us > 0:
                try:
                    await asyncio.sleep(delay_us / US)
                except asyncio.CancelledError:
                    self._release_soon(index)
                    raise
            if self._pause_seen_us <= slot_us:
                try:
                    usable = self.on_unavailable == "fail" or await self._may_use_slot(
                        redis, outages
                    )
                except BaseException:
                    self._release_soon(index)
                    raise
                if usable:
                    return
                # Redis has not answered for a lease: use the local share, or book again
                # (giving this slot back) if Redis is back from an outage that may have
                # emptied it.
            # Or a pause that covers this slot was set after it was booked: book again,
            # giving this slot back in the same round trip.
            release = str(index)

    async def pause(self, seconds: float) -> None:
        """Let no process of the account send for ``seconds`` from now (a 429 was seen).

        Raises:
            RateLimiterUnavailableError: Redis cannot be reached and ``on_unavailable`` is
                ``"fail"``: this process's next ``acquire`` would raise it too.
        """
        self._bind()
        loop = asyncio.get_running_loop()
        self._fallback.note_pause(loop.time() + seconds)
        if not self._fallback.active:
            started = loop.time()
            try:
                args = (str(math.ceil(seconds * US)), self.channel)
                call = await self._call(self._pause_script, self.keys[3:4], args)
                stop, now = await asyncio.shield(call)  # set even if the caller is cancelled
                self._heard_pause(int(stop), int(now))
                return
            except (RedisError, OSError) as exc:
                self._failed(exc, started)  # raises unless falling back
        await self._fallback.pause(seconds)

    # ------------------------------------------------------------------ Redis side

    async def _call(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[str]
    ) -> asyncio.Future[Any]:
        """Wait for one of the ``connections``, then start ``script``; return its future.

        The call runs to its end even if the caller is cancelled (callers shield it), so a
        booking is never lost half-way and redis-py never has to drop a connection. A
        caller that waited here while Redis failed fails too (see :class:`Connections`).
        """
        await self._connections.take()
        self.script_calls += 1
        call = asyncio.ensure_future(script(keys=keys, args=args))
        call.add_done_callback(self._connections.give_back)
        return call

    async def _book(self, argv: tuple[str, ...]) -> tuple[int, int, int]:
        """Run the booking script; if the caller is cancelled meanwhile, give the slot back."""
        call = await self._call(self._book_script, self.keys, argv)
        try:
            delay_us, index, now_us, top = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(self._release_late_booking)
            raise
        self._horizon = max(self._horizon, int(top))
        return int(delay_us), int(index), int(now_us)

    def _release_late_booking(self, call: asyncio.Future[Any]) -> None:
        if call.cancelled() or call.exception() is not None:
            return
        self._release_soon(int(call.result()[1]))

    def _release_soon(self, index: int) -> None:
        """Give back an unused slot without making the (cancelled) caller wait."""
        if self._redis is None or self._loop is None or self._loop.is_closed():
            return
        task = self._loop.create_task(self._release(index))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release(self, index: int) -> None:
        try:
            call = await self._call(self._release_script, self.keys[:3], (str(index),))
            await call
        except (RedisError, OSError) as exc:
            logger.debug("could not give back rate-limit slot %d: %s", index, type(exc).__name__)

    async def _subscribe(self, redis: Redis) -> None:
        """Listen to the account's pause channel; wait until Redis confirms it."""
        failures = self._connections.failures
        async with self._subscribe_lock:
            if self._subscribed:
                return
            if self._connections.failures != failures:
                raise FailedMeanwhile("Redis failed while this call waited to subscribe")
            old_reader, self._reader = self._reader, None
            if old_reader is not None:
                old_reader.cancel()
            old, self._pubsub = self._pubsub, None
            if old is not None:
                await _close_quietly(old)
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=self.timeout)
                    if message is None:
                        raise RedisTimeoutError("no confirmation of the pause subscription")
                    if message["type"] == "subscribe":
                        break
            except BaseException as exc:
                if isinstance(exc, UNAVAILABLE):
                    self._connections.failures += 1
                await _close_quietly(pubsub)
                raise
            self._pubsub, self._subscribed = pubsub, True
            assert self._loop is not None
            self._reader = self._loop.create_task(self._listen(pubsub))

    async def _listen(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    stop, now = (int(part) for part in message["data"].split())
                    self._heard_pause(stop, now)
        except Exception as exc:  # a lost connection, mostly: subscribe again when needed
            logger.debug("pause subscription lost: %s", type(exc).__name__)
        finally:
            if self._pubsub is pubsub:
                self._subscribed = False

    def _heard_pause(self, stop_us: int, now_us: int) -> None:
        """A pause until ``stop_us`` (Redis time, read at ``now_us``) was set somewhere."""
        if stop_us > self._pause_seen_us:
            self._pause_seen_us = stop_us
            if self._loop is not None:
                end = self._loop.time() + (stop_us - now_us) / US
                self._fallback.note_pause(end)

    # ------------------------------------------------------------------ unavailability

    def _failed(self, exc: BaseException, started: float) -> None:
        """A call started at ``started`` failed: raise, or (only if Redis is unreachable)
        switch to the local share."""
        reachable = isinstance(exc, RedisAuthenticationError) or not isinstance(exc, UNAVAILABLE)
        if reachable or self.on_unavailable == "fail":
            raise unavailable_error(self.server, exc) from exc
        if not self._fallback.active:
            self._subscribed = False  # the pause channel went with Redis: subscribe when back
        self._fallback.failed(exc, started, self._probe)

    async def _may_use_slot(self, redis: Redis, outages: int) -> bool:
        """With a local fallback: may the slot booked when ``outages`` were counted be used?

        Only within a lease of a Redis answer (see :class:`LocalFallback`): past it, a
        ``PING`` answered now renews the lease; one that fails switches to the local share.
        Under load the bookings themselves keep the lease, so the ``PING`` is rare.
        """
        trusted = self._fallback.trusts_grid(outages)
        if trusted is not None:
            return trusted
        started = asyncio.get_running_loop().time()
        try:
            await redis.ping()
        except (RedisError, OSError) as exc:
            self._failed(exc, started)  # raises unless falling back
            return False
        self._fallback.answered(started)
        return self._fallback.trusts_grid(outages) is True

    async def _probe(self) -> bool:
        """For the fallback: True once Redis answers, told of any pause taken meanwhile.

        False once the limiter is closed; redis-py's error while Redis is still away.
        """
        redis = self._redis
        if redis is None:
            return False
        await redis.ping()
        remaining = self._fallback.pause_remaining()
        if remaining > 0:  # a 429 seen meanwhile: tell the other processes
            self.script_calls += 1
            args = (str(math.ceil(remaining * US)), self.channel)
            await self._pause_script(keys=self.keys[3:4], args=args)
        return True
