"""The in-process limiter, run in virtual time so every timestamp is exact."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from patchworks_async import InProcessRateLimiter, Priority, RateLimits, RequestKind
from patchworks_async._ratelimit import _Window

from ..support.virtual_time import run_in_virtual_time

LIMITS = RateLimits()  # 240 a minute, 10 manual, margin 1 s: span 61 s
SPAN = LIMITS.span


def most_in_any_span(times: Sequence[float], span: float) -> int:
    """The largest number of ``times`` inside any half-open interval of length ``span``.

    Virtual time adds up float timeouts, so two sends exactly ``span`` apart can come out
    ``span - 1e-14`` apart: a nanosecond of tolerance keeps that from counting.
    """
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - span + 1e-9:
            first += 1
        most = max(most, last - first + 1)
    return most


async def send_times(
    limiter: InProcessRateLimiter, kinds: Sequence[RequestKind]
) -> list[tuple[RequestKind, float]]:
    """Queue one acquire per kind, all at once; return when each was let through."""
    loop = asyncio.get_running_loop()
    sent: list[tuple[RequestKind, float]] = []

    async def one(kind: RequestKind) -> None:
        await limiter.acquire(kind)
        sent.append((kind, loop.time()))

    await asyncio.gather(*(one(kind) for kind in kinds))
    return sent


def test_span_is_the_window_plus_a_proportionate_margin() -> None:
    assert RateLimits().span == 61.0
    assert RateLimits(per=3.0).span == pytest.approx(3.05)
    assert RateLimits(per=10.0, margin=0.5).span == 10.5


def test_never_more_than_the_limit_in_any_span_and_no_burst_of_the_whole_budget() -> None:
    sent = run_in_virtual_time(
        send_times(InProcessRateLimiter(LIMITS), [RequestKind.ORDINARY] * 1200)
    )
    times = [at for _, at in sent]
    assert most_in_any_span(times, SPAN) == 240
    # Even pacing: a small burst after idling, never the whole budget at once.
    assert most_in_any_span(times, 1.0) <= 8 + 4


def test_the_sustained_rate_is_within_two_percent_of_the_limit() -> None:
    sent = run_in_virtual_time(
        send_times(InProcessRateLimiter(LIMITS), [RequestKind.ORDINARY] * 1200)
    )
    times = sorted(at for _, at in sent)
    per_minute = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert 0.98 * 240 <= per_minute <= 240


def test_after_idling_a_small_burst_leaves_at_once() -> None:
    sent = run_in_virtual_time(
        send_times(InProcessRateLimiter(LIMITS, burst=5), [RequestKind.ORDINARY] * 20)
    )
    times = sorted(at for _, at in sent)
    assert times[:5] == [0.0] * 5
    assert times[5] == pytest.approx(SPAN / 240)


def test_manual_starts_are_spaced_and_jump_the_ordinary_queue() -> None:
    """Manual calls keep 10 per span and are not held back by a backlog of ordinary ones."""
    kinds = [RequestKind.ORDINARY] * 600 + [RequestKind.MANUAL] * 30
    sent = run_in_virtual_time(send_times(InProcessRateLimiter(LIMITS), kinds))
    manual = sorted(at for kind, at in sent if kind is RequestKind.MANUAL)
    assert most_in_any_span(manual, SPAN) == 10
    # Each manual leaves within a second of its manual slot (k * span / 10), where a FIFO
    # global queue would have held it behind hundreds of ordinary requests.
    for k, at in enumerate(manual):
        assert at <= k * SPAN / 10 + 1.0
    assert most_in_any_span([at for _, at in sent], SPAN) == 240


def test_a_waiting_manual_start_holds_no_global_slot() -> None:
    """With manual calls queued on their own bucket, ordinary ones still use the full budget."""
    kinds = [RequestKind.MANUAL] * 40 + [RequestKind.ORDINARY] * 400
    sent = run_in_virtual_time(send_times(InProcessRateLimiter(LIMITS), kinds))
    first_span = [at for _, at in sent if at < SPAN]
    assert len(first_span) == 240


def test_the_starts_cap_limits_starts_and_manual_but_not_ordinary_requests() -> None:
    limits = RateLimits(starts=20)
    kinds = [RequestKind.START] * 60 + [RequestKind.MANUAL] * 5 + [RequestKind.ORDINARY] * 100
    sent = run_in_virtual_time(send_times(InProcessRateLimiter(limits), kinds))
    starts = [at for kind, at in sent if kind is not RequestKind.ORDINARY]
    ordinary = [at for kind, at in sent if kind is RequestKind.ORDINARY]
    assert most_in_any_span(starts, limits.span) == 20
    assert max(ordinary) < limits.span  # never waited on the starts bucket


def test_a_pause_stops_every_sender_including_those_already_queued() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        limiter = InProcessRateLimiter(LIMITS, burst=1)
        waiting = asyncio.gather(*(limiter.acquire() for _ in range(5)))
        await asyncio.sleep(0.3)  # one sent at 0, one at 0.254, the rest queued
        await limiter.pause(10.0)
        times: list[float] = []
        for _ in range(3):
            await limiter.acquire()
            times.append(loop.time())
        await waiting
        return times

    times = run_in_virtual_time(scenario())
    assert min(times) >= 10.3


def test_cancelled_waiters_give_their_slots_back() -> None:
    """Cancelling queued callers leaves the others exactly as fast as if they never came."""

    async def last_send(total: int, cancelled: int) -> float:
        loop = asyncio.get_running_loop()
        limiter = InProcessRateLimiter(LIMITS)
        tasks = [asyncio.create_task(limiter.acquire()) for _ in range(total)]
        await asyncio.sleep(1.0)
        for task in tasks[-cancelled:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return loop.time()

    without = run_in_virtual_time(last_send(100, 1))
    with_cancellations = run_in_virtual_time(last_send(400, 301))
    assert with_cancellations == pytest.approx(without)


def test_a_manual_call_cancelled_while_queued_for_its_global_slot_gives_back_its_manual_slot() -> (
    None
):
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        limiter = InProcessRateLimiter(LIMITS)
        await limiter.pause(30.0)
        # Ten manual calls take every manual slot, then queue for a global one.
        queued = [asyncio.create_task(limiter.acquire(RequestKind.MANUAL)) for _ in range(10)]
        await asyncio.sleep(29.0)  # virtual time (run_in_virtual_time): instant
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        await limiter.acquire(RequestKind.MANUAL)
        return loop.time()

    assert run_in_virtual_time(scenario()) == pytest.approx(30.0)


def test_a_caller_cancelled_between_its_grant_and_its_turn_gives_the_slot_back() -> None:
    """The grant is made in a timer callback; the caller can be cancelled before it runs."""

    async def scenario() -> None:
        limiter = InProcessRateLimiter(LIMITS)
        await limiter.pause(5.0)
        task = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(1.0)
        gate = limiter._global
        gate.not_before = -math.inf
        gate.wake()  # grants the slot to the task...
        task.cancel()  # ...which is cancelled before it could use it
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gate.window._held == 0
        assert gate.window.ready_at(asyncio.get_running_loop().time()) <= 1.0

    run_in_virtual_time(scenario())


def test_a_limiter_used_from_a_second_live_loop_refuses() -> None:
    limiter = InProcessRateLimiter(LIMITS)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(limiter.acquire())
        with pytest.raises(RuntimeError, match="another event loop"):
            run_in_virtual_time(limiter.acquire())
    finally:
        first.close()
    run_in_virtual_time(limiter.acquire())  # the first loop is closed: it rebinds


class TestWindow:
    """The bookkeeping itself, with times passed in."""

    def test_held_slots_count_as_sends_made_now(self) -> None:
        window = _Window(capacity=2, span=10.0, burst=2)
        window.reserve(0.0)
        window.reserve(0.0)
        assert window.ready_at(0.0) == math.inf  # full of held slots: wait for a commit
        window.commit(3.0)
        window.commit(3.0)
        assert window.ready_at(4.0) == 13.0

    def test_release_undoes_a_reservation(self) -> None:
        window = _Window(capacity=1, span=10.0, burst=1)
        window.reserve(0.0)
        window.release()
        assert window.ready_at(0.0) == 0.0

    def test_pacing_spaces_sends_by_span_over_capacity(self) -> None:
        window = _Window(capacity=4, span=8.0, burst=1)
        window.reserve(0.0)
        window.commit(0.0)
        assert window.ready_at(0.0) == 2.0


def test_high_priority_requests_go_ahead_of_normal_ones_already_waiting() -> None:
    """An API handler's request is not stuck behind a bulk job's backlog."""

    async def scenario() -> list[str]:
        limiter = InProcessRateLimiter(RateLimits(requests=60, per=60.0), burst=1)
        order: list[str] = []

        async def one(name: str, priority: Priority) -> None:
            await limiter.acquire(RequestKind.ORDINARY, priority=priority)
            order.append(name)

        backlog = [asyncio.create_task(one(f"bulk {n}", Priority.NORMAL)) for n in range(5)]
        await asyncio.sleep(0)  # the backlog queues (the first one goes at once)
        handler = asyncio.create_task(one("handler", Priority.HIGH))
        await asyncio.gather(*backlog, handler)
        return order

    order = run_in_virtual_time(scenario())
    assert order[:2] == ["bulk 0", "handler"]
    assert order[2:] == ["bulk 1", "bulk 2", "bulk 3", "bulk 4"]


def test_a_manual_initialise_still_goes_before_a_high_priority_request() -> None:
    async def scenario() -> list[str]:
        limiter = InProcessRateLimiter(RateLimits(requests=60, per=60.0), burst=1)
        order: list[str] = []

        async def one(name: str, kind: RequestKind, priority: Priority) -> None:
            await limiter.acquire(kind, priority=priority)
            order.append(name)

        first = asyncio.create_task(one("first", RequestKind.ORDINARY, Priority.NORMAL))
        await asyncio.sleep(0)
        high = asyncio.create_task(one("high", RequestKind.ORDINARY, Priority.HIGH))
        manual = asyncio.create_task(one("manual", RequestKind.MANUAL, Priority.NORMAL))
        await asyncio.gather(first, high, manual)
        return order

    assert run_in_virtual_time(scenario()) == ["first", "manual", "high"]
