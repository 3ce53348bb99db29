"""``RedisRateLimiter`` against a real redis-server: one budget for many processes.

Nothing here mocks Redis (see ``redis_server.py``). Windows are shrunk to a second or two.
The guarantees are checked exactly on the slots booked in Redis (the ZSETs hold slot
indices; a span is exactly ``requests`` global slots), and loosely on the times at which
``acquire`` returns (the moment a request would be sent): those lag the slots by the event
loop's timer lateness and the way back from Redis, hence a few milliseconds of tolerance.
Round trips are counted by Redis itself (``INFO commandstats``).

The several-process tests run FakePatchworks in its own process (``fake-server``) and three
worker processes (``sys.executable -c``) that push flow starts through
``PatchworksClient(limiter=RedisRateLimiter(...))``, and judge from the server's arrival
times.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import logging
import math
import subprocess
import sys
import textwrap
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from patchworks_async import RateLimiterUnavailableError, RateLimits, RedisRateLimiter, RequestKind
from patchworks_async.testing import FakePatchworks, fake_patchworks_process

from ..support import redis_server as fixtures
from ..support.clients import client_for
from ..support.redis_server import RedisServer, free_port

redis_server = fixtures.redis_server  # a redis-server shared by this module's tests
own_redis_server = fixtures.own_redis_server  # one of the test's own, to stop and restart

ORDINARY, START, MANUAL = RequestKind.ORDINARY, RequestKind.START, RequestKind.MANUAL
TOLERANCE = 0.01
"""Seconds an acquire may return late (timer lateness, the reply's way back, scheduling)."""


def limiter(server: RedisServer, limits: RateLimits, **kwargs: Any) -> RedisRateLimiter:
    """A limiter on a fresh account (tests never share a budget by accident)."""
    kwargs.setdefault("account", f"test-{uuid.uuid4().hex[:8]}")
    return RedisRateLimiter(server.url, rate_limits=limits, **kwargs)


async def acquire_at(
    lim: RedisRateLimiter, kinds: Iterable[RequestKind], origin: float
) -> list[tuple[float, RequestKind]]:
    """Acquire concurrently; return (seconds after ``origin``, kind) in order of return."""
    loop = asyncio.get_running_loop()
    returned: list[tuple[float, RequestKind]] = []

    async def one(kind: RequestKind) -> None:
        await lim.acquire(kind)
        returned.append((loop.time() - origin, kind))

    await asyncio.gather(*(one(kind) for kind in kinds))
    return sorted(returned, key=lambda item: item[0])


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` (sorted) in any half-open interval ``[t, t + window)``."""
    return max(
        (bisect.bisect_left(times, start + window, lo=i) - i for i, start in enumerate(times)),
        default=0,
    )


def gaps(times: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def booked(lim: RedisRateLimiter, bucket: int = 0, *, count: int = 0) -> list[int]:
    """The slot indices in one of the limiter's ZSETs (0 global, 1 manual, 2 starts).

    With ``count``, first wait (up to 5 s) until that many are booked. Slot ``k`` starts at
    ``k * interval``: these are the send times the limiter guarantees, exactly.
    """
    async with Redis.from_url(lim._url) as redis:
        deadline = time.monotonic() + 5
        while True:
            slots = [int(member) for member in await redis.zrange(lim.keys[bucket], 0, -1)]
            if len(slots) >= count or time.monotonic() > deadline:
                return slots
            await asyncio.sleep(0.01)


async def booked_becomes(lim: RedisRateLimiter, count: int) -> bool:
    """Wait (up to 5 s) until exactly ``count`` global slots are booked."""
    deadline = time.monotonic() + 5
    while len(await booked(lim)) != count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def slot_times(lim: RedisRateLimiter, slots: Iterable[int]) -> list[float]:
    """Start times of ``slots`` in seconds, from the global slot 0 of this test."""
    ordered = sorted(slots)
    return [(slot - ordered[0]) * lim.interval_us / 1e6 for slot in ordered]


def most_in_a_span(slots: Iterable[int], limits: RateLimits) -> int:
    """The most slot starts in any span: a span is exactly ``requests`` global slots."""
    return max_in_window(sorted(slots), limits.requests)


# ---------------------------------------------------------------------------- one process


async def test_slots_are_exactly_one_interval_apart_and_never_over_the_limit(
    redis_server: RedisServer,
) -> None:
    limits = RateLimits(requests=20, per=1.0)  # I = 1.0167 / 20 = 50.8 ms
    interval = limits.span / limits.requests
    async with limiter(redis_server, limits) as lim:
        origin = asyncio.get_running_loop().time()
        work = asyncio.ensure_future(acquire_at(lim, [ORDINARY] * 45, origin))
        slots = await booked(lim, count=45)
        returned = [at for at, _ in await work]
    assert slots == list(range(slots[0], slots[0] + 45))  # consecutive slots, no gap
    assert most_in_a_span(slots, limits) == limits.requests
    # Each caller returned at its slot: I apart, give or take the timer's lateness.
    assert all(abs(gap - interval) < TOLERANCE for gap in gaps(returned)), gaps(returned)
    assert max_in_window(returned, limits.span - TOLERANCE) <= limits.requests
    assert returned[-1] == pytest.approx(returned[0] + 44 * interval, abs=TOLERANCE)
    assert lim.script_calls == 45


async def test_manual_calls_are_spaced_and_never_delay_ordinary_requests(
    redis_server: RedisServer,
) -> None:
    limits = RateLimits(requests=40, manual_starts=3, per=1.0)
    interval, manual_interval = limits.span / 40, limits.span / 3  # 25.4 ms, 339 ms
    async with limiter(redis_server, limits) as lim:
        loop = asyncio.get_running_loop()
        await lim.acquire(ORDINARY)  # connected and subscribed: time only the bookings
        origin = loop.time()
        manuals = asyncio.ensure_future(acquire_at(lim, [MANUAL] * 6, origin))
        crowd = asyncio.ensure_future(acquire_at(lim, [ORDINARY] * 10, origin))
        manual_booked = await booked(lim, 1, count=6)  # all booked at once
        manual_slots = slot_times(lim, manual_booked)
        await asyncio.sleep(0.3)  # the crowd is gone; five manual calls wait for their slot
        started = loop.time()
        await lim.acquire(ORDINARY)
        waited = loop.time() - started
        every_slot = await booked(lim, 0)
        manual_times = [at for at, _ in await manuals]
        crowd_times = [at for at, _ in await crowd]
    # Not behind any manual call (the next leaves at 0.34 s, the last at 1.7 s): one slot,
    # give or take scheduling.
    assert waited <= interval + 3 * TOLERANCE
    assert crowd_times[-1] <= 11 * interval + TOLERANCE  # the crowd was not held up either
    # The guarantee, on the booked slots: paced about Im apart (at least Im - I: rounding to
    # the grid), never 4 in a span, and no slower (the pace does not drift by a slot a call).
    assert min(gaps(manual_slots)) >= manual_interval - interval - 1e-6
    assert most_in_a_span(manual_booked, limits) == 3
    assert manual_slots[-1] <= 5 * manual_interval + interval
    assert most_in_a_span(every_slot, limits) <= 40
    # The callers returned at those slots.
    assert len(manual_times) == 6
    lateness = [b - a for a, b in zip(gaps(manual_slots), gaps(manual_times), strict=True)]
    assert max(map(abs, lateness)) < TOLERANCE


async def test_a_starts_cap_spaces_starts_and_manual_calls_together(
    redis_server: RedisServer,
) -> None:
    limits = RateLimits(requests=40, manual_starts=10, starts=4, per=0.5)
    interval, starts_interval = limits.span / 40, limits.span / 4  # 12.7 ms, 127 ms
    kinds = [START, MANUAL, START, START, MANUAL, START, *[ORDINARY] * 6]
    async with limiter(redis_server, limits) as lim:
        origin = asyncio.get_running_loop().time()
        work = asyncio.ensure_future(acquire_at(lim, kinds, origin))
        capped_booked = await booked(lim, 2, count=6)
        manual = set(await booked(lim, 1))
        returned = await work
    capped = slot_times(lim, capped_booked)
    assert len(manual) == 2
    assert manual <= set(capped_booked)
    assert min(gaps(capped)) >= starts_interval - interval - 1e-6
    assert most_in_a_span(capped_booked, limits) == 4
    ordinary = [at for at, kind in returned if kind is ORDINARY]
    last_capped = max(at for at, kind in returned if kind is not ORDINARY)
    assert ordinary[-1] < last_capped  # ordinary requests went between, not after them


async def test_a_pause_stops_everyone_and_sleepers_book_again(
    redis_server: RedisServer,
) -> None:
    """B's callers booked before A paused; B hears of it on the channel and books again."""
    limits = RateLimits(requests=20, per=1.0)
    account = f"pause-{uuid.uuid4().hex[:8]}"
    async with (
        limiter(redis_server, limits, account=account) as a,
        limiter(redis_server, limits, account=account) as b,
    ):
        loop = asyncio.get_running_loop()
        await a.acquire(ORDINARY)
        origin = loop.time()
        sleepers = asyncio.ensure_future(acquire_at(b, [ORDINARY] * 10, origin))
        await asyncio.sleep(0.12)  # b's ten callers have booked; two or three have returned
        paused_at = loop.time() - origin
        await a.pause(1.0)
        pause_set = loop.time() - origin
        after = asyncio.ensure_future(acquire_at(a, [ORDINARY], origin))
        returned = [at for at, _ in await sleepers]
        a_after = (await after)[0][0]
    during = [at for at in returned if pause_set + TOLERANCE < at < paused_at + 1.0 - TOLERANCE]
    assert during == [], (paused_at, pause_set, returned)
    resumed = [at for at in returned if at >= paused_at + 1.0 - TOLERANCE]
    assert len(resumed) >= 5  # most of b's callers were asleep in the pause and re-booked
    assert b.script_calls >= 10 + len(resumed)  # each re-booked once (slot given back too)
    assert a_after >= paused_at + 1.0 - TOLERANCE
    assert a._pause_seen_us == b._pause_seen_us > 0  # b heard of it through pub/sub


async def test_cancelled_callers_give_their_slots_back(redis_server: RedisServer) -> None:
    limits = RateLimits(requests=5, per=1.0)  # I = 203 ms
    async with limiter(redis_server, limits) as lim:
        await lim.acquire()
        await asyncio.sleep(limits.span / 5)
        before = len(await booked(lim))
        waiting = [asyncio.ensure_future(lim.acquire()) for _ in range(5)]
        slots = sorted(await booked(lim, count=before + 5))[-5:]
        for task in waiting[3:]:  # (which slot each got depends on Redis's order)
            task.cancel()
        assert await booked_becomes(lim, before + 3)  # both given back
        left = set(await booked(lim))
        freed = set(slots) - left
        assert len(freed) == 2
        # The next caller takes the first free slot, even one before other bookings.
        late = asyncio.ensure_future(lim.acquire())
        assert await booked_becomes(lim, before + 4)
        assert set(await booked(lim)) - left == {min(freed)}

        # Cancelled while the booking itself is in flight: the booking is given back too.
        in_flight = [asyncio.ensure_future(lim.acquire()) for _ in range(3)]
        await asyncio.sleep(0)  # each has started its script call and awaits the reply
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        assert all(task.cancelled() for task in in_flight)
        await asyncio.sleep(0.05)
        assert await booked_becomes(lim, before + 4)
        assert lim.script_calls == 1 + 5 + 2 + 1 + 3 + 3  # bookings and releases
        for task in waiting:
            task.cancel()
        late.cancel()
        await asyncio.gather(*waiting, late, return_exceptions=True)


async def test_a_flushed_redis_does_not_double_book_the_slots_sleepers_hold(
    own_redis_server: RedisServer,
) -> None:
    """Redis restarted empty (here: FLUSHALL) while callers sleep on their booked slots."""
    limits = RateLimits(requests=20, per=1.0)  # I = 50.8 ms
    account = f"flush-{uuid.uuid4().hex[:8]}"
    async with (
        limiter(own_redis_server, limits, account=account) as a,
        limiter(own_redis_server, limits, account=account) as b,
        Redis.from_url(own_redis_server.url) as admin,
    ):
        loop = asyncio.get_running_loop()
        origin = loop.time()
        sleepers = asyncio.ensure_future(acquire_at(a, [ORDINARY] * 10, origin))
        await booked(a, count=10)
        first = asyncio.ensure_future(acquire_at(b, [ORDINARY], origin))  # after a's ten
        held = await booked(a, count=11)
        for _ in range(1000):  # until b has its reply: it knows where the backlog ends
            if b._horizon:
                break
            await asyncio.sleep(0.001)
        await admin.flushall()
        await b.acquire()  # the first booking after the flush fences the backlog off
        late = loop.time() - origin
        fresh = await booked(a)
        returned = [at for at, _ in await sleepers] + [at for at, _ in await first]
    assert len(fresh) == 1
    assert fresh[0] == max(held) + 1  # not in the middle of the slots still held
    assert late >= max(returned) + limits.span / 20 - TOLERANCE
    assert max_in_window(sorted([*returned, late]), limits.span - TOLERANCE) <= 20


async def test_keys_share_one_hash_slot_and_expire(redis_server: RedisServer) -> None:
    limits = RateLimits(requests=40, manual_starts=4, starts=20, per=1.0)
    async with limiter(redis_server, limits, account="acme:eu", key_prefix="pw") as lim:
        await acquire_at(lim, [ORDINARY, START, MANUAL, ORDINARY], 0.0)
        await lim.pause(0.05)
        async with Redis.from_url(redis_server.url, decode_responses=True) as redis:
            keys = sorted(await redis.keys("pw:*"))
            ttls = {key: await redis.pttl(key) for key in keys}
    assert keys == sorted(lim.keys)
    assert all("{acme:eu}" in key for key in keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1
    # A span plus a second at most past the last booked slot (here well under a span away).
    assert all(0 < ttl <= (2 * limits.span + 1) * 1000 for ttl in ttls.values()), ttls
    assert lim.channel == "pw:{acme:eu}:pause"


async def test_one_script_call_per_acquire(redis_server: RedisServer) -> None:
    """Counted by Redis itself: INFO commandstats after CONFIG RESETSTAT.

    Commands run inside a script are counted there too, under their own names, so the check
    is: exactly one EVALSHA per acquire, and no other command than those the script runs.
    """
    limits = RateLimits(requests=2000, manual_starts=100, per=1.0)
    inside_scripts = {
        "time",
        "get",
        "exists",
        "set",
        "zrem",
        "zremrangebyscore",
        "zrange",
        "zscore",
        "zcount",
        "zadd",
        "pexpire",
    }
    async with (
        limiter(redis_server, limits) as lim,
        Redis.from_url(redis_server.url, decode_responses=True) as admin,
    ):
        # Connects (HELLO on each of the limiter's connections), subscribes, loads the script.
        await acquire_at(lim, [ORDINARY] * 10, 0.0)
        await admin.config_resetstat()
        await acquire_at(lim, [ORDINARY] * 40 + [MANUAL] * 5, 0.0)
        stats = await admin.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): row["calls"] for name, row in stats.items()}
    assert calls.pop("evalsha") == 45
    calls.pop("config|resetstat", None)
    calls.pop("info", None)
    assert set(calls) <= inside_scripts, calls


async def test_the_password_never_shows(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-Pa55w0rd"
    caplog.set_level(logging.DEBUG)
    dead = f"redis://alice:{secret}@127.0.0.1:{free_port()}/0"
    wrong = f"redis://alice:{secret}@127.0.0.1:{redis_server.port}/0"  # no such user
    texts: list[str] = []
    for url in (dead, wrong):
        lim = RedisRateLimiter(url, account="acme")
        texts.append(repr(lim))
        with pytest.raises(RateLimiterUnavailableError) as caught:
            await lim.acquire()
        error = caught.value
        assert error.host.startswith("127.0.0.1:")
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
        await lim.aclose()
    lim = RedisRateLimiter(
        dead,
        account="acme",
        rate_limits=RateLimits(requests=1000, per=1.0),
        on_unavailable="local",
        recheck_every=0.05,  # the local share opens after a lease, 2 * (0.05 + 0.1) s
        timeout=0.1,
    )
    texts.append(repr(lim))
    with pytest.warns(RuntimeWarning, match="unavailable") as warned:
        await lim.acquire()
    texts += [str(w.message) for w in warned] + [repr(lim)]
    await lim.aclose()
    texts.append(caplog.text)
    assert any("refused the credentials" in text for text in texts)
    assert all(secret not in text for text in texts)
    assert "127.0.0.1" in caplog.text


def test_the_package_imports_without_redis() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # as if it were not installed
        import patchworks_async
        assert "patchworks_async._redis" not in sys.modules
        try:
            from patchworks_async import RedisRateLimiter
        except ImportError as error:
            assert "pip install 'patchworks-async[redis]'" in str(error), error
        else:
            raise AssertionError("imported without redis")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------------- Redis down


async def test_fail_closed_when_redis_goes_away(own_redis_server: RedisServer) -> None:
    limits = RateLimits(requests=50, per=1.0)
    async with (
        FakePatchworks(requests_per_window=50, window=1.0) as fake,
        limiter(own_redis_server, limits) as lim,
        client_for(fake, limiter=lim) as pw,
    ):
        for _ in range(3):
            await pw.flows.start(101, 9001, {"n": 1})
        own_redis_server.stop()
        received = len(fake.received)
        started = time.monotonic()
        with pytest.raises(RateLimiterUnavailableError, match="is unavailable") as caught:
            await pw.flows.start(101, 9001, {"n": 2})
        assert time.monotonic() - started < 1.0
        assert isinstance(caught.value.__cause__, Exception)
        assert len(fake.received) == received  # nothing sent without a slot
        own_redis_server.start()
        await pw.flows.start(101, 9001, {"n": 3})  # back without a restart of the client
        assert len(fake.received) == received + 1


async def test_local_fallback_keeps_a_share_and_comes_back(
    own_redis_server: RedisServer,
) -> None:
    """One process's view of both switches; the account's: ``test_fallback_switches.py``.

    Its grid slots are used for at most a lease after the outage began, its share opens a
    lease and a gap after it noticed, and once Redis answers again it sends nothing more
    until it books on the grid, a lease and a gap later. Each step waits for the sends.
    """
    limits = RateLimits(requests=40, manual_starts=4, per=1.0)
    span = limits.span
    lease, gap = 2 * (0.1 + 0.2), 5 * span / 40  # 2 * (recheck_every + timeout); 5 slots
    share = limits.requests // 4
    lim = limiter(
        own_redis_server,
        limits,
        on_unavailable="local",
        expected_workers=4,
        recheck_every=0.1,
        timeout=0.2,
    )
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    changed = asyncio.Condition()

    async def push() -> None:
        while True:
            await lim.acquire()
            sent.append(loop.time())
            async with changed:
                changed.notify_all()

    async def until(done: Callable[[], bool]) -> None:
        async with changed:
            await asyncio.wait_for(changed.wait_for(done), 10)

    def after(moment: float) -> list[float]:
        return [at for at in sent if at > moment]

    fallback = lim._fallback
    async with lim:
        pushers = [asyncio.ensure_future(push()) for _ in range(8)]
        await until(lambda: len(sent) >= 30)
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            await asyncio.to_thread(own_redis_server.stop)
            await until(lambda: lim.falling_back and len(after(fallback._went_local)) >= 25)
            went_local = fallback._went_local
            await asyncio.to_thread(own_redis_server.start)
            await until(lambda: not lim.falling_back and len(after(fallback._came_back)) >= 30)
            came_back = fallback._came_back
        for pusher in pushers:
            pusher.cancel()
        await asyncio.gather(*pushers, return_exceptions=True)
    assert [w.category for w in warned] == [RuntimeWarning]  # once, for the whole outage
    assert "10 requests" in str(warned[0].message)
    opened = went_local + lease + gap
    outage = [at for at in sent if opened - TOLERANCE <= at <= came_back]
    assert [at for at in sent if went_local + lease < at < opened - TOLERANCE] == []
    assert len(outage) >= share  # it kept going...
    assert max_in_window(outage, span - TOLERANCE) <= share  # ...at its share only
    assert [at for at in sent if came_back + TOLERANCE < at < came_back + lease + gap] == []
    back = after(came_back + lease + gap)
    assert len(back) >= 0.8 * (back[-1] - back[0]) * limits.requests / span  # shared again


async def test_slots_booked_far_ahead_are_not_used_once_redis_is_gone(
    own_redis_server: RedisServer,
) -> None:
    """Two windows of backlog when Redis stops: the other processes cannot know of it.

    Their shares open a lease and a gap after they notice, so this process uses its grid
    slots for a lease after Redis's last answer at most, and sends the rest on its share.
    """
    limits = RateLimits(requests=20, per=1.0)  # I = 50.8 ms
    span = limits.span
    lease, gap = 2 * (0.05 + 0.1), 2 * span / 20  # expected_workers=1: a gap of 2 slots
    lim = limiter(
        own_redis_server,
        limits,
        on_unavailable="local",
        expected_workers=1,
        recheck_every=0.05,
        timeout=0.1,
    )
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def one() -> None:
        await lim.acquire()
        sent.append(loop.time())

    async with lim:
        await lim.acquire()  # connected and subscribed
        callers = [asyncio.ensure_future(one()) for _ in range(40)]
        await booked(lim, count=41)  # slots for the next 2 s
        await asyncio.to_thread(own_redis_server.stop)
        with pytest.warns(RuntimeWarning, match="unavailable"):
            await asyncio.gather(*callers)
        last_answer, went_local = lim._fallback._answered, lim._fallback._went_local
    on_grid = [at for at in sent if at <= last_answer + lease + TOLERANCE]
    assert len(sent) == 40
    assert len(on_grid) < 20  # most of the backlog left on the share...
    assert [at for at in sent if on_grid[-1] < at < went_local + lease + gap - TOLERANCE] == []
    on_share = [at for at in sent if at > on_grid[-1]]
    assert max_in_window(on_share, span - TOLERANCE) <= limits.requests  # ...within it


async def test_a_backlog_deeper_than_a_lease_costs_one_ping_a_lease(
    own_redis_server: RedisServer,
) -> None:
    """Redis up, 40 callers booked at once (2 s of slots), a lease of 0.3 s: the sleepers
    past the lease ask Redis with a PING before sending, one PING renewing it for the next."""
    limits = RateLimits(requests=20, per=1.0)
    span = limits.span
    lease = 2 * (0.05 + 0.1)
    lim = limiter(own_redis_server, limits, on_unavailable="local", recheck_every=0.05, timeout=0.1)
    async with lim, Redis.from_url(own_redis_server.url, decode_responses=True) as admin:
        await lim.acquire()  # connected and subscribed
        await admin.config_resetstat()
        returned = [at for at, _ in await acquire_at(lim, [ORDINARY] * 40, 0.0)]
        stats = await admin.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): row["calls"] for name, row in stats.items()}
    assert not lim.falling_back
    assert calls["evalsha"] == 40
    backlog = 40 * span / limits.requests
    assert 1 <= calls.get("ping", 0) <= math.ceil(backlog / lease), calls
    assert max_in_window(returned, span - TOLERANCE) <= limits.requests


@pytest.mark.parametrize("mode", ["fail", "local"])
async def test_a_silent_redis_costs_one_timeout_not_one_per_caller(mode: str) -> None:
    """A Redis that accepts connections and never answers (a hung server, a black hole)."""

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # swallow everything, answer nothing
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = RateLimits(requests=1000, per=1.0)
    lim = RedisRateLimiter(
        f"redis://127.0.0.1:{port}/0",
        account="acme",
        rate_limits=limits,
        on_unavailable=mode,  # type: ignore[arg-type]
        recheck_every=0.1,
        timeout=0.3,
    )
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        results = await asyncio.gather(*(lim.acquire() for _ in range(20)), return_exceptions=True)
    elapsed = time.monotonic() - started
    await lim.aclose()
    server.close()
    # The first caller waits out the timeout (twice: redis-py retries once); the others
    # were queued behind it and give up (or fall back) at once. Each waiting out its own
    # would take 20 * 0.6 s. The local share opens a lease, 2 * (0.1 + 0.3) s, later.
    lease = 2 * (0.1 + 0.3) if mode == "local" else 0.0
    assert elapsed < 4 * 0.3 + lease, elapsed
    if mode == "fail":
        assert all(isinstance(r, RateLimiterUnavailableError) for r in results), results
    else:
        assert results == [None] * 20
        assert len(warned) == 1


# ---------------------------------------------------------------------------- processes

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time

    config = json.loads(sys.argv[1])
    if config["skew"]:
        # This process's clocks run ahead; the limiter must not care (it uses Redis time).
        real_time, real_monotonic = time.time, time.monotonic
        time.time = lambda: real_time() + config["skew"]
        time.monotonic = lambda: real_monotonic() + config["skew"]

    from patchworks_async import PatchworksClient, RateLimits, RetryPolicy
    from patchworks_async import RedisRateLimiter


    def clock():  # the system-wide monotonic clock, which the fake server stamps with too
        return time.clock_gettime(time.CLOCK_MONOTONIC)


    async def main():
        urls = dict(config["urls"])
        api_key = urls.pop("api_key")
        limiter = RedisRateLimiter(
            config["redis_url"], account=config["account"],
            rate_limits=RateLimits(**config["limits"]),
        )
        sent = 0
        pauses = []
        async with limiter, PatchworksClient(
            api_key=api_key, **urls, limiter=limiter, retry=RetryPolicy(backoff_base=0)
        ) as pw:
            # Connected to Redis and subscribed, and the HTTP connection open, before the
            # start signal: a fresh process's first request is slow, which would bunch it
            # with the others' paced sends.
            await pw.flows.get(101)
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            deadline = clock() + config["seconds"]

            async def push():
                nonlocal sent
                while clock() < deadline:
                    await pw.flows.start(101, 9001, {"n": sent})
                    sent += 1

            async def pause():
                await asyncio.sleep(config["pause_after"])
                before = clock()
                await limiter.pause(config["pause"])
                pauses.append([before, clock()])

            jobs = [push() for _ in range(config["concurrency"])]
            if config["pause"]:
                jobs.append(pause())
            await asyncio.gather(*jobs)
        print(json.dumps({"sent": sent, "pauses": pauses, "calls": limiter.script_calls}))


    asyncio.run(main())
    """
)


def fake_server(requests: int, window: float, latency: float) -> Any:
    """FakePatchworks in its own process, with the account's limits shrunk to a window."""
    return fake_patchworks_process(
        "--requests", str(requests), "--window", str(window), "--latency", str(latency)
    )


async def run_workers(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start one worker process per config; let them all go at once; collect their reports."""
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for config in configs
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert (await asyncio.wait_for(worker.stdout.readline(), 30)).strip() == b"ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        outputs = [await asyncio.wait_for(worker.communicate(), 60) for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert all(worker.returncode == 0 for worker in workers)
    return [json.loads(stdout.splitlines()[-1]) for stdout, _ in outputs]


R, W, LATENCY = 40, 2.0, 0.005  # the fake's limit: 40 per 2 s; the limiter's span 2.033 s


def worker_configs(
    redis_url: str, urls: dict[str, str], n: int, seconds: float, **overrides: Any
) -> list[dict[str, Any]]:
    account = f"procs-{uuid.uuid4().hex[:8]}"
    base = {
        "redis_url": redis_url,
        "urls": urls,
        "account": account,
        "seconds": seconds,
        "limits": {"requests": R, "per": W},
        "concurrency": 4,
        "skew": 0,
        "pause": 0,
    }
    configs = [dict(base) for _ in range(n)]
    for index, changes in overrides.items():
        configs[int(index.removeprefix("worker"))].update(changes)
    return configs


def sustained(accepted: Sequence[float], window: float) -> float:
    """Accepted arrivals per second from one window after the first, over the limit."""
    steady = accepted[bisect.bisect_left(accepted, accepted[0] + window) :]
    return (len(steady) - 1) / (steady[-1] - steady[0]) / (R / window)


@pytest.mark.parametrize("skew", [0.0, 5.0], ids=["same-clocks", "one-clock-5s-ahead"])
async def test_three_processes_share_one_budget(redis_server: RedisServer, skew: float) -> None:
    async with fake_server(R, W, LATENCY) as fake:
        urls = {**fake.urls, "api_key": fake.api_key}
        configs = worker_configs(redis_server.url, urls, 3, seconds=3 * W, worker1={"skew": skew})
        reports = await run_workers(configs)
        state = await fake.state()
    arrivals = sorted(at for at, _ in state["arrivals"])  # the warm-ups included
    accepted = sorted(at for at, status in state["arrivals"] if status == 200)
    starts = accepted[len(reports) :]  # the warm-up requests came first, before the signal
    sent = [report["sent"] for report in reports]
    assert state["throttled"] == 0
    assert max_in_window(arrivals, W) <= R
    assert sustained(starts, W) >= 0.95, sustained(starts, W)
    assert min(sent) >= 0.2 * sum(sent), sent  # nobody starved
    assert sum(sent) == len(starts)
    # One script call per request, the warm-ups included: nothing polls.
    assert sum(report["calls"] for report in reports) == sum(sent) + len(reports)


async def test_a_pause_in_one_process_stops_them_all(redis_server: RedisServer) -> None:
    async with fake_server(R, W, LATENCY) as fake:
        urls = {**fake.urls, "api_key": fake.api_key}
        configs = worker_configs(
            redis_server.url, urls, 3, seconds=2.5, worker0={"pause": 1.5, "pause_after": 0.8}
        )
        reports = await run_workers(configs)
        state = await fake.state()
    ((before, after),) = reports[0]["pauses"]
    arrivals = sorted(at for at, _ in state["arrivals"])
    # Sent before the pause was set: arrive by `after + latency`. Nothing until it ends.
    quiet = [at for at in arrivals if after + LATENCY + 0.01 < at < before + 1.5]
    assert quiet == [], (before, after, quiet)
    assert any(at < before for at in arrivals)
    assert sum(before + 1.5 <= at < before + 2.0 for at in arrivals) >= 5  # all resumed
    assert state["throttled"] == 0
    assert all(report["sent"] > 0 for report in reports)
