"""A rate limiter shared by every process that uses one account, through Redis.

Several workers sharing one API key share one budget. :class:`RedisRateLimiter` keeps the
same guarantees as :class:`~patchworks_async.InProcessRateLimiter`, across every process
that points at the same Redis with the same ``account``:

* at most ``requests`` sends in any ``per + margin`` seconds, in total;
* a manual initialise also at most ``manual_starts`` per span (and starts, when a ``starts``
  cap is set, at most ``starts``), and a manual call waiting for its manual slot never
  holds a global slot, so it never delays ordinary requests;
* a 429 seen by any worker pauses all of them.

How: a send slot grid, booked in one Lua script per request
-------------------------------------------------------------
Time comes from Redis (``redis.call('TIME')`` inside the scripts), never from the client's
clock, so a worker whose clock is minutes off changes nothing. The global bucket has an
interval ``I = span / requests``; time is cut into slots ``[k*I, (k+1)*I)``, and a request
is sent at the start of the slot it booked. Any window of ``span`` seconds holds at most
``requests`` slot starts, so booking distinct slots *is* the guarantee, exactly, whatever
the number of processes. The script books the first free slot at or after
``max(now, pause_until)`` and returns how long to wait for it, in whole microseconds; the
caller sleeps that long and sends. One round trip per request, no polling, first come first
served across processes (within a process, callers booking at the same moment on different
connections are served in the order Redis runs their scripts). The actual send lags the
slot's start by the event loop's timer lateness (about a millisecond) and the reply's way
back from Redis, which the margin absorbs like network jitter.

There is no burst: after idling, requests still leave ``I`` apart (the in-process limiter
lets ``requests // 30`` go at once). Sustained load is evenly paced, as the server wants.

Keys (all in one Redis Cluster hash slot, thanks to the ``{account}`` hash tag)::

    {prefix}:{account}:global       ZSET of booked global slot indices (score = index)
    {prefix}:{account}:global:head  the last booked index + 1; lives as long as the ZSET
    {prefix}:{account}:manual       ZSET of the global indices booked by manual calls
    {prefix}:{account}:starts       ZSET of the global indices booked by starts (cap set)
    {prefix}:{account}:pause_until  Redis time (microseconds) before which nothing is booked
    {prefix}:{account}:pause        pub/sub channel announcing pauses (not a key)

Every booking trims indices older than ``now - span`` and sets each key's time-to-live to
the end of its last booked slot plus a span (and a second), so an idle account's keys
disappear on their own.

Ordinary bookings take the *first free* global index at or after ``ceil(at / I)``. Indices
are usually taken in one dense run (the backlog), so the script checks that run with one
``ZCOUNT`` and, only when it has a hole, finds the first hole by binary search over
``ZCOUNT`` (``O(log^2 n)``), never by a walk. The search starts from the ZSET itself (its
last member is the head), so a slot given back by a cancelled caller, or left before a
manual booking, is reused by the next caller; the ``head`` key is only a record of it,
whose presence says that the account's state is intact (see below).

Manual calls and starts: a log on the global grid, not a second grid
--------------------------------------------------------------------
A manual call books its global slot in the same script, at or after the earliest time its
manual bucket allows, so that it never holds a global slot while it waits for a manual one.
The global index ``g`` it books is recorded in the manual ZSET (and in the starts ZSET when
a ``starts`` cap is set; a start does the same with the starts ZSET alone). Manual bookings
are made in time order, each after the previous one, and a new one must be

* *exact*: at or after the ``manual_starts``-th latest manual booking plus ``span``, so that
  no window of ``span`` seconds ever holds more than ``manual_starts`` manual send times;
* *paced*: at or after the latest one plus ``Im - I`` (``Im = span / manual_starts``), so
  that manual calls do not leave in a burst. Rounding up to the global grid adds up to
  ``I``, so gaps are about ``Im`` and the exact rule above corrects any excess; pacing on
  ``latest + Im`` alone would be exact too but would drift late by up to ``I`` per call.

Starts use the same two rules with ``Is = span / starts``. The ZSETs are sliding logs of
send times on the global grid, so the guarantee is exactly the in-process limiter's: at
most ``capacity`` sends in any ``span``, for every bucket.

(Booking the manual bucket on its own grid of cells ``[m*Im, (m+1)*Im)`` and requiring the
global slot to fall inside the booked cell is *not* enough: a send late in cell ``m`` and
one at the start of cell ``m + manual_starts`` are less than ``span`` apart, so a window can
hold ``manual_starts + 1`` of them.)

A manual call does not overtake ordinary requests that already booked their slots (they
are committed sleepers in other processes): under an ordinary backlog, a manual call's
global slot is the first free one after its manual time, which may be after the backlog.
Ordinary requests booked *later* never delay it: they take the slots before and after it.

Pauses
------
``pause(seconds)`` (after a 429) sets ``pause_until = max(pause_until, now + seconds)`` in
Redis time and publishes it on the account's channel. New bookings never start before it.
A caller that booked before the pause and is sleeping on a slot inside it learns of the
pause either from this process (``pause()`` was called here) or from the channel, to which
each limiter subscribes on first use; when it wakes, it books again (giving the old slot
back in the same round trip) instead of sending. A pause published less than a pub/sub
delivery (well under a millisecond on a LAN) before a slot can still let that one send go.

Cancellation
------------
A caller cancelled while sleeping on its slot gives the slot back (a fire-and-forget
``ZREM``), and one cancelled while its booking is in flight gives back whatever the booking
returns, so capacity never leaks.

Redis restarting empty
----------------------
Without persistence, a restarted (or flushed) Redis forgets the booked slots, while their
callers still sleep on them. Each booking reply carries the last booked index, and each
limiter passes the latest one it has seen to its next booking: a script that finds the
``head`` key gone (it lives exactly as long as the last booking) while that index is still
ahead fences it off, by setting ``pause_until`` (without announcing it, since the sleepers'
slots stay valid) to the end of that slot. The first process to book after the restart
fences off the backlog it knew of: all of it, but for the bookings made since that
process's previous one. A failover to a replica whose clock differs from the primary's
shifts the grid by the difference: keep the Redis hosts' clocks synchronised (NTP).

When Redis is unavailable
-------------------------
A request is never sent without a slot. Connection errors, timeouts (``timeout``, 2 s by
default) and a read-only replica count as "unavailable":

* ``on_unavailable="fail"`` (the default): :meth:`acquire` raises
  :class:`RateLimiterUnavailableError` (its ``__cause__`` is redis-py's error) and nothing
  is sent. Each later call tries Redis again, so requests flow again once it is back.
* ``on_unavailable="local"``: this process falls back, with one warning (``warnings.warn``
  once per limiter, and a log line at each switch), to an
  :class:`~patchworks_async.InProcessRateLimiter` holding a conservative share of the
  budget (``requests // expected_workers``, and so on for each bucket, at least 1, paced
  without a burst). A background task pings Redis every ``recheck_every`` seconds and
  switches back to the shared budget as soon as it answers (telling Redis of any pause
  this process took meanwhile). The switches are not exact: the slots booked before
  Redis went away and the local share's first sends can share a window (both are paced,
  so a window then holds about ``requests`` plus one send per process), and while some
  workers are back on Redis and others still on their share (at most ``recheck_every``
  seconds), the account can see the shared rate plus their shares.

Redis refusing the credentials in ``redis_url`` is a misconfiguration, not an outage: it
raises :class:`RateLimiterUnavailableError` in both modes. Any other error Redis answers
with raises it too.

Script calls run on at most ``connections`` connections at once (plus one for the pause
channel); the others queue for a connection. When a call finds Redis unavailable, the calls
queued behind it fail (or fall back) at once instead of each waiting out its own timeout.

The Redis client and the pub/sub connection are created on first use in the running event
loop and closed by :meth:`RedisRateLimiter.aclose` (or ``async with limiter``): a client
does not close a limiter it was given. A password in ``redis_url`` never appears in a
repr, a log line or an exception raised here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import warnings
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import urlsplit

try:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.commands.core import AsyncScript
    from redis.exceptions import AuthenticationError as RedisAuthenticationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ReadOnlyError, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError(
        "RedisRateLimiter needs the redis package: pip install 'patchworks-async[redis]'"
    ) from exc

from ._config import RateLimits
from ._errors import ConfigurationError, RateLimiterUnavailableError
from ._ratelimit import InProcessRateLimiter, RequestKind

__all__ = ["RateLimiterUnavailableError", "RedisRateLimiter"]

logger = logging.getLogger("patchworks_async")

OnUnavailable = Literal["fail", "local"]

_UNAVAILABLE: Final = (
    RedisConnectionError,  # refused, reset, DNS; BusyLoadingError is one too
    RedisTimeoutError,
    ReadOnlyError,  # a replica after a failover
    OSError,
    TimeoutError,
)
"""Errors that mean Redis cannot be reached now, rather than a bug."""

_US: Final = 1_000_000
_TTL_SLACK_MS: Final = 1000

# Shared helpers of the scripts. Numbers given to redis.call are formatted with %d: Lua's
# own tostring uses %.14g, which would turn a 15-digit index into a rounded exponent.
_LUA_PRELUDE: Final = """
local function d(x) return string.format('%d', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

BOOK_SCRIPT: Final = (
    _LUA_PRELUDE
    + """
-- KEYS: global, manual, starts, pause_until, global:head (all with the account's hash tag)
-- ARGV: I (global interval, us), span (us),
--       Im (manual interval, us; 0: not a manual call), manual_starts,
--       Is (starts interval, us; 0: no starts bucket), starts,
--       release (an index to give back first, or ''),
--       horizon (the last global index this client saw booked, or 0)
-- Returns {delay_us, index, now_us, top}: send at the start of global slot `index`, that is
-- `delay_us` from now (Redis time); `top` is the last global index booked.
local G, M, S, P, H = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local I, span = tonumber(ARGV[1]), tonumber(ARGV[2])
local Im, Is = tonumber(ARGV[3]), tonumber(ARGV[5])
local function last(key)
  local top = redis.call('ZRANGE', key, -1, -1)[1]
  if top then return tonumber(top) end
  return nil
end
local function expire(key, index)
  redis.call('PEXPIRE', key, d(math.ceil((index * I - now + span) / 1000) + SLACK_MS))
end

if ARGV[7] ~= '' then
  redis.call('ZREM', G, ARGV[7])
  redis.call('ZREM', M, ARGV[7])
  redis.call('ZREM', S, ARGV[7])
end
-- Forget slots that started more than a span ago: they can no longer share a window
-- with a new booking.
local stale = '(' .. d(math.ceil((now - span) / I))
redis.call('ZREMRANGEBYSCORE', G, '-inf', stale)

local horizon = tonumber(ARGV[8])
if horizon > 0 and (horizon + 1) * I > now and redis.call('EXISTS', H) == 0 then
  -- The account's state is gone (Redis restarted or was flushed: the head lives as long
  -- as the last booking) while this client knows of slots booked up to `horizon`, which
  -- their callers will still use: fence them off for everyone, as a pause that is not
  -- announced (those callers must not book again).
  local fence = math.floor((horizon + 1) * I)  -- floor: ceil(fence / I) is horizon + 1
  if fence > tonumber(redis.call('GET', P) or '0') then
    redis.call('SET', P, d(fence), 'PX', d(math.ceil((fence - now) / 1000) + SLACK_MS))
  end
end
local at = math.max(now, tonumber(redis.call('GET', P) or '0'))
local buckets = {}
if Im > 0 then buckets[#buckets + 1] = {M, Im, tonumber(ARGV[4])} end
if Is > 0 then buckets[#buckets + 1] = {S, Is, tonumber(ARGV[6])} end
for _, bucket in ipairs(buckets) do
  local key, gap, cap = bucket[1], bucket[2], bucket[3]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', stale)
  local previous = last(key)
  if previous then
    -- Paced, with one global slot of slack so that rounding up to the grid cannot drift;
    -- always after the previous booking, so that bookings stay in time order.
    at = math.max(at, previous * I + math.max(gap - I, I))
    -- Exact: at most `cap` send times in any span.
    local oldest = redis.call('ZRANGE', key, -cap, -cap)[1]
    if oldest then at = math.max(at, tonumber(oldest) * I + span) end
  end
end

-- The first free global index >= k: a walk would be linear in the backlog, so check the
-- run [k, top] with ZCOUNT and binary-search it for a hole when it has one.
local function first_free(k)
  if not redis.call('ZSCORE', G, d(k)) then return k end
  local top = last(G)
  if redis.call('ZCOUNT', G, d(k), d(top)) == top - k + 1 then return top + 1 end
  local lo, hi = k + 1, top
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if redis.call('ZCOUNT', G, d(lo), d(mid)) < mid - lo + 1 then hi = mid else lo = mid + 1 end
  end
  return lo
end

local k = first_free(math.ceil(at / I))
redis.call('ZADD', G, d(k), d(k))
local top = last(G)
expire(G, top)
redis.call('SET', H, d(top + 1), 'PX', d(math.ceil((top * I - now + span) / 1000) + SLACK_MS))
for _, bucket in ipairs(buckets) do
  redis.call('ZADD', bucket[1], d(k), d(k))
  expire(bucket[1], k)
end
return {math.max(0, math.ceil(k * I - now)), k, now, top}
"""
).replace("SLACK_MS", str(_TTL_SLACK_MS))

RELEASE_SCRIPT: Final = """
-- KEYS: global, manual, starts. ARGV: the index to give back (an unused booking).
for i = 1, 3 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""

PAUSE_SCRIPT: Final = (
    _LUA_PRELUDE
    + """
-- KEYS: pause_until. ARGV: seconds (us), the channel. Returns {pause_until_us, now_us}.
local stop = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], d(stop), 'PX', d(math.ceil((stop - now) / 1000) + SLACK_MS))
redis.call('PUBLISH', ARGV[2], d(stop) .. ' ' .. d(now))
return {stop, now}
"""
).replace("SLACK_MS", str(_TTL_SLACK_MS))


class _FailedMeanwhile(RedisConnectionError):
    """Redis failed while a call waited for a connection: it is not tried again."""


def _describe_server(url: str) -> str:
    """``host:port`` (or ``unix:/path``) of a Redis URL, without any credential."""
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


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value or "{" in value or "}" in value:
        raise ConfigurationError(
            f"{what} must be a non-empty string without braces (they delimit the Redis "
            f"Cluster hash tag), not {value!r}"
        )
    return value


async def _close_quietly(pubsub: PubSub) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]


def _local_share(limits: RateLimits, workers: int) -> RateLimits:
    """The part of ``limits`` one of ``workers`` processes may use on its own."""
    return RateLimits(
        requests=max(1, limits.requests // workers),
        manual_starts=max(1, limits.manual_starts // workers),
        starts=None if limits.starts is None else max(1, limits.starts // workers),
        per=limits.per,
        margin=limits.margin,
    )


class RedisRateLimiter:
    """Keeps :class:`RateLimits` for every process of an account together, through Redis.

    Pass it to each client as ``limiter=``; give every process the same ``redis_url``,
    ``account`` and ``rate_limits``. See the module documentation for how it works::

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
            answers again.
        key_prefix: The first part of every Redis key.
        expected_workers: How many processes share the account, for the local fallback's
            share (``requests // expected_workers``, at least 1, and so on for each bucket).
        recheck_every: Seconds between checks for Redis while falling back.
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
        self.server = _describe_server(redis_url)
        self.account = _check_name("account", account)
        _check_name("key_prefix", key_prefix)
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
        span_us = limits.span * _US
        self.interval_us = span_us / limits.requests
        if self.interval_us < 1.0:
            raise ConfigurationError(
                "RedisRateLimiter books microsecond slots: at most 1,000,000 requests a second"
            )
        base = f"{key_prefix}:{{{account}}}"
        self.keys: tuple[str, str, str, str, str] = (
            f"{base}:global",
            f"{base}:manual",
            f"{base}:starts",
            f"{base}:pause_until",
            f"{base}:global:head",
        )
        """Every Redis key of the account: all share the ``{account}`` hash tag."""
        self.channel = f"{base}:pause"
        fmt = repr
        common = (fmt(self.interval_us), fmt(span_us))
        manual = (fmt(span_us / limits.manual_starts), str(limits.manual_starts))
        starts = (fmt(span_us / limits.starts), str(limits.starts)) if limits.starts else ("0", "0")
        self._argv: dict[RequestKind, tuple[str, ...]] = {
            RequestKind.ORDINARY: (*common, "0", "0", "0", "0"),
            RequestKind.START: (*common, "0", "0", *starts),
            RequestKind.MANUAL: (*common, *manual, *starts),
        }
        self.script_calls = 0
        """Scripts run on Redis so far (bookings, releases, pauses): one round trip each."""

        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: Redis | None = None
        self._book_script: AsyncScript
        self._release_script: AsyncScript
        self._pause_script: AsyncScript
        self._subscribe_lock: asyncio.Lock
        self._connections: asyncio.Semaphore
        self._failures = 0  # calls that found Redis unavailable
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = False
        self._background: set[asyncio.Task[Any]] = set()
        self._pause_seen_us = 0  # the latest pause_until heard of, in Redis microseconds
        self._horizon = 0  # the last global slot index seen booked (by any process)
        self._pause_local_end = -math.inf  # the same, on this loop's clock
        self._local: InProcessRateLimiter | None = None
        self._recheck: asyncio.Task[None] | None = None
        self._warned = False

    def __repr__(self) -> str:
        mode = "local fallback" if self.falling_back else "shared"
        return f"<RedisRateLimiter account={self.account!r} redis={self.server} {mode}>"

    @property
    def falling_back(self) -> bool:
        """True while Redis is unavailable and this process keeps its local share."""
        return self._recheck is not None

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
        self._connections = asyncio.Semaphore(self.connections)
        self._failures = 0
        self._pubsub, self._reader, self._subscribed = None, None, False
        self._background = set()
        self._local, self._recheck = None, None
        self._pause_local_end = -math.inf
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
        tasks = [t for t in (self._reader, self._recheck, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._reader, self._recheck, self._subscribed = None, None, False
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
        if self._recheck is not None:
            await self._local_acquire(kind)
            return
        release = ""
        argv = self._argv[kind]
        while True:
            try:
                if not self._subscribed:
                    await self._subscribe(redis)
                delay_us, index, now_us = await self._book((*argv, release, str(self._horizon)))
            except RedisAuthenticationError as exc:  # a misconfiguration: never fall back
                raise self._error(exc) from exc
            except _UNAVAILABLE as exc:
                self._unavailable(exc)  # raises unless falling back
                await self._local_acquire(kind)
                return
            except RedisError as exc:
                raise self._error(exc) from exc
            slot_us = now_us + delay_us
            if delay_us > 0:
                try:
                    await asyncio.sleep(delay_us / _US)
                except asyncio.CancelledError:
                    self._release_soon(index)
                    raise
            if self._pause_seen_us <= slot_us:
                return
            # A pause that covers this slot was set after it was booked: book again,
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
        self._pause_local_end = max(self._pause_local_end, loop.time() + seconds)
        if self._recheck is None:
            try:
                args = (str(math.ceil(seconds * _US)), self.channel)
                call = await self._call(self._pause_script, self.keys[3:4], args)
                stop, now = await asyncio.shield(call)  # set even if the caller is cancelled
                self._heard_pause(int(stop), int(now))
                return
            except RedisAuthenticationError as exc:
                raise self._error(exc) from exc
            except _UNAVAILABLE as exc:
                self._unavailable(exc)
            except RedisError as exc:
                raise self._error(exc) from exc
        if self._local is not None:
            await self._local.pause(seconds)

    # ------------------------------------------------------------------ Redis side

    async def _call(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[str]
    ) -> asyncio.Future[Any]:
        """Wait for one of the ``connections``, then start ``script``; return its future.

        The call runs to its end even if the caller is cancelled (callers shield it), so a
        booking is never lost half-way and redis-py never has to drop a connection. A
        caller that waited here while Redis failed fails too, without trying again, so that
        a queue of callers does not wait out one timeout each.
        """
        failures = self._failures
        await self._connections.acquire()
        if self._failures != failures:
            self._connections.release()
            raise _FailedMeanwhile("Redis failed while this call waited for a connection")
        self.script_calls += 1
        call = asyncio.ensure_future(script(keys=keys, args=args))
        call.add_done_callback(self._call_done)
        return call

    def _call_done(self, call: asyncio.Future[Any]) -> None:
        self._connections.release()
        if not call.cancelled() and isinstance(call.exception(), _UNAVAILABLE):
            self._failures += 1

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
        failures = self._failures
        async with self._subscribe_lock:
            if self._subscribed:
                return
            if self._failures != failures:
                raise _FailedMeanwhile("Redis failed while this call waited to subscribe")
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
                if isinstance(exc, _UNAVAILABLE):
                    self._failures += 1
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
                end = self._loop.time() + (stop_us - now_us) / _US
                self._pause_local_end = max(self._pause_local_end, end)

    # ------------------------------------------------------------------ unavailability

    def _error(self, exc: BaseException) -> RateLimiterUnavailableError:
        if isinstance(exc, RedisAuthenticationError):
            what = "refused the credentials in redis_url"
        elif isinstance(exc, _UNAVAILABLE):
            what = "is unavailable"
        else:
            what = "answered with an error"
        return RateLimiterUnavailableError(
            f"the shared rate limiter's Redis at {self.server} {what} "
            f"({type(exc).__name__}); nothing was sent",
            host=self.server,
        )

    def _unavailable(self, exc: BaseException) -> None:
        """Redis cannot be reached: raise, or switch this process to its local share."""
        if self.on_unavailable == "fail":
            raise self._error(exc) from exc
        if self._recheck is not None:
            return
        share = _local_share(self.rate_limits, self.expected_workers)
        message = (
            f"the shared rate limiter's Redis at {self.server} is unavailable "
            f"({type(exc).__name__}); this process now keeps a local share of the "
            f"account's budget ({share.requests} requests, {share.manual_starts} manual "
            f"per {share.span:g} s) and rechecks Redis every {self.recheck_every:g} s"
        )
        logger.warning("%s", message)
        assert self._loop is not None
        if self._local is None:
            self._local = InProcessRateLimiter(share, burst=1)
        self._recheck = self._loop.create_task(self._wait_for_redis())
        self._subscribed = False
        if not self._warned:
            self._warned = True
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    async def _local_acquire(self, kind: RequestKind) -> None:
        local = self._local
        assert local is not None
        assert self._loop is not None
        remaining = self._pause_local_end - self._loop.time()
        if remaining > 0:
            await local.pause(remaining)  # a pause heard from Redis before it went away
        await local.acquire(kind)

    async def _wait_for_redis(self) -> None:
        """Probe Redis every ``recheck_every`` seconds; return to the shared budget."""
        while True:
            await asyncio.sleep(self.recheck_every)
            redis = self._redis
            if redis is None:
                return
            try:
                await redis.ping()
                assert self._loop is not None
                remaining = self._pause_local_end - self._loop.time()
                if remaining > 0:  # a 429 seen meanwhile: tell the other processes
                    self.script_calls += 1
                    args = (str(math.ceil(remaining * _US)), self.channel)
                    await self._pause_script(keys=self.keys[3:4], args=args)
            except (RedisError, OSError):
                continue
            logger.warning(
                "the shared rate limiter's Redis at %s answers again: back to the shared budget",
                self.server,
            )
            self._recheck = None
            return
