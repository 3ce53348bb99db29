"""The in-process limiter following the server's own count, in virtual time.

The server is the fake's own pure model of Laravel's throttle (``FixedWindowThrottle``) and
of another consumer of the account (``CoTenant``), with seeded latency: see
``tests/support/model_server.py``. 60 requests per 3 s window, as the benchmark runs it,
so that a few hundred requests cover many windows; every figure is exact and repeatable.
"""

from __future__ import annotations

import asyncio

import pytest

from patchworks_async import InProcessRateLimiter, Priority, RateLimits, RequestKind

from ..support.model_server import ModelServer, Run, simulate
from ..support.virtual_time import run_in_virtual_time

REQUESTS, PER = 60, 3.0
LIMITS = RateLimits(requests=REQUESTS, per=PER)  # margin per / 60: 50 ms
SEEDS = [1, 2, 3]


def run(seed: int, count: int = 400, **server: object) -> Run:
    model = ModelServer(REQUESTS, PER, seed=seed, **server)  # type: ignore[arg-type]
    return simulate(InProcessRateLimiter(LIMITS), model, count=count)


def headers(remaining: int, limit: int = REQUESTS) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining)}


class TestAlone:
    @pytest.mark.parametrize("seed", SEEDS)
    def test_with_jitter_below_the_margin_it_uses_the_whole_limit(self, seed: int) -> None:
        """The timer alone keeps a 50 ms margin: 0.983 of the limit at best."""
        outcome = run(seed, latency=(0.0, 0.025))
        assert outcome.refused == []
        assert outcome.sustained() >= 0.99

    @pytest.mark.parametrize("seed", SEEDS)
    def test_with_jitter_ten_times_the_margin_it_draws_no_429(self, seed: int) -> None:
        """The timer alone draws 429s here: up to 500 ms late, a request lands in a
        window that the ones sent after it have filled already."""
        outcome = run(seed, latency=(0.0, 0.5))
        assert outcome.refused == []
        assert outcome.sustained() >= 0.97

    @pytest.mark.parametrize("seed", SEEDS)
    def test_with_latency_both_ways_replies_overtaking_each_other_it_draws_no_429(
        self, seed: int
    ) -> None:
        outcome = run(seed, latency=(0.0, 0.25), reply_latency=(0.0, 0.25))
        assert outcome.refused == []
        assert outcome.sustained() >= 0.96


class TestWithACoTenant:
    @pytest.mark.parametrize("share", [0.3, 0.8])
    @pytest.mark.parametrize("seed", SEEDS)
    def test_it_takes_what_the_co_tenant_leaves_and_draws_no_429(
        self, share: float, seed: int
    ) -> None:
        """Another consumer spends ``share`` of every window: the count falls faster than
        our requests explain. We keep its share for it and take the rest."""
        outcome = run(seed, latency=(0.0, 0.025), co_tenant=share)
        assert outcome.refused_after(PER) == 0
        assert outcome.sustained() >= 0.90
        # Its share is left to it, once its pace is known (a few windows).
        assert outcome.co_tenant_refused_after(4 * PER) <= 0.01 * outcome.co_tenant_hits

    @pytest.mark.parametrize("seed", SEEDS)
    def test_with_latency_both_ways_it_still_draws_no_429(self, seed: int) -> None:
        outcome = run(seed, latency=(0.0, 0.1), reply_latency=(0.0, 0.1), co_tenant=0.8)
        assert outcome.refused_after(PER) == 0
        assert outcome.sustained() >= 0.90

    @pytest.mark.parametrize("seed", SEEDS)
    def test_it_joins_a_co_tenant_already_at_work(self, seed: int) -> None:
        """The co-tenant opened the window, and keeps opening them, before our first
        request: we never see a window begin."""
        outcome = run(seed, latency=(0.0, 0.025), co_tenant=0.8, co_tenant_since=-1.3)
        assert outcome.refused_after(PER) == 0
        assert outcome.sustained() >= 0.90

    def test_the_timer_alone_draws_429s_from_a_co_tenant(self) -> None:
        """What the server's figures buy: without them, the limiter learns of the other
        consumer only by being refused."""
        outcome = run(1, latency=(0.0, 0.025), co_tenant=0.3, headers=False)
        assert outcome.refused_after(PER) > 0


class TestStackedThrottles:
    @pytest.mark.parametrize("share", [0.0, 0.3])
    def test_manual_initialises_figures_do_not_throttle_ordinary_requests(
        self, share: float
    ) -> None:
        """A manual reply shows the 10-a-minute throttle's Remaining (the lowest): taken for
        the global window's, it would hold ordinary requests back to ten a window."""
        kinds = [RequestKind.ORDINARY] * 9 + [RequestKind.MANUAL]
        model = ModelServer(REQUESTS, PER, seed=1, latency=(0.0, 0.025), co_tenant=share)
        outcome = simulate(InProcessRateLimiter(LIMITS), model, count=400, kinds=kinds)
        assert outcome.refused_by == {}
        assert outcome.sustained() >= 0.97
        assert outcome.co_tenant_refused_after(4 * PER) <= 0.01 * outcome.co_tenant_hits


class TestWithoutTheHeaders:
    def test_it_sends_exactly_as_the_timer_only_limiter_does(self) -> None:
        """Replies without ``X-RateLimit-*``: the same send times as never telling it."""

        def send_times(tell: bool) -> list[float]:
            model = ModelServer(REQUESTS, PER, seed=1, latency=(0.0, 0.025), headers=False)
            limiter = InProcessRateLimiter(LIMITS)

            async def scenario() -> list[float]:
                loop = asyncio.get_running_loop()
                times: list[float] = []

                async def one() -> None:
                    grant = await limiter.acquire()
                    times.append(loop.time())
                    status, reply = await model.send()
                    if tell:
                        grant.replied(status, reply)

                await asyncio.gather(*(one() for _ in range(300)))
                return times

            return run_in_virtual_time(scenario())

        assert send_times(tell=True) == send_times(tell=False)

    def test_the_margin_is_kept_until_the_server_shows_its_figures(self) -> None:
        async def scenario() -> list[float]:
            limiter = InProcessRateLimiter(LIMITS)
            grant = await limiter.acquire()
            spans = [limiter._global.window.span]
            grant.replied(200, {})
            spans.append(limiter._global.window.span)
            grant = await limiter.acquire()
            grant.replied(200, headers(58))
            spans.append(limiter._global.window.span)
            await asyncio.sleep(2 * PER + 0.5)  # the figures go stale
            await limiter.acquire()
            spans.append(limiter._global.window.span)
            return spans

        assert run_in_virtual_time(scenario()) == [LIMITS.span, LIMITS.span, PER, LIMITS.span]


class TestTheLimitersPromisesStillHold:
    def test_waiters_cancelled_while_the_window_is_full_hold_nothing(self) -> None:
        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            limiter = InProcessRateLimiter(LIMITS)
            grant = await limiter.acquire()
            grant.replied(200, headers(0))  # the server's window is full
            waiters = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
            await asyncio.sleep(1.0)
            assert not any(task.done() for task in waiters)
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            server = limiter._global.server
            assert server is not None
            assert (server.held, server.flying, limiter._global.window._held) == (0, 0, 0)
            await limiter.acquire()  # the window's end frees the next slot, as it should
            assert loop.time() == pytest.approx(PER, abs=0.01)

        run_in_virtual_time(scenario())

    def test_a_full_window_reopens_to_manual_then_high_then_normal_requests(self) -> None:
        async def scenario() -> list[str]:
            limiter = InProcessRateLimiter(LIMITS)
            grant = await limiter.acquire()
            grant.replied(200, headers(0))
            order: list[str] = []

            async def one(name: str, kind: RequestKind, priority: Priority) -> None:
                await limiter.acquire(kind, priority=priority)
                order.append(name)

            tasks = [
                asyncio.create_task(one("normal", RequestKind.ORDINARY, Priority.NORMAL)),
                asyncio.create_task(one("high", RequestKind.ORDINARY, Priority.HIGH)),
                asyncio.create_task(one("manual", RequestKind.MANUAL, Priority.NORMAL)),
            ]
            await asyncio.gather(*tasks)
            return order

        assert run_in_virtual_time(scenario()) == ["manual", "high", "normal"]

    def test_estimated_wait_is_the_time_left_in_a_full_window(self) -> None:
        async def scenario() -> float | None:
            limiter = InProcessRateLimiter(LIMITS)
            grant = await limiter.acquire()
            await asyncio.sleep(0.5)
            grant.replied(200, headers(0))  # its window ends by 0.5 + per
            await asyncio.sleep(1.0)
            return limiter.estimated_wait()

        assert run_in_virtual_time(scenario()) == pytest.approx(PER - 1.0)

    def test_a_429_holds_every_request_until_retry_after_plus_a_second(self) -> None:
        async def scenario() -> float:
            loop = asyncio.get_running_loop()
            limiter = InProcessRateLimiter(LIMITS)
            grant = await limiter.acquire()
            grant.replied(429, {**headers(0), "Retry-After": "1"})
            await limiter.acquire()
            return loop.time()

        assert run_in_virtual_time(scenario()) == pytest.approx(2.0)

    def test_the_fast_path_stays_a_fast_path_under_the_limit(self) -> None:
        """A request with room to spare is let through without waiting on anything."""

        async def scenario() -> bool:
            limiter = InProcessRateLimiter(LIMITS)
            grant = await limiter.acquire()
            grant.replied(200, headers(REQUESTS - 1))
            acquiring = limiter.acquire()
            try:
                acquiring.send(None)
            except StopIteration:
                return True  # finished without suspending
            acquiring.close()
            return False

        assert run_in_virtual_time(scenario())

    def test_a_grant_never_told_frees_its_place_after_a_window(self) -> None:
        """It is in flight (spent) until then; a reply that never comes must not shrink
        the budget for ever."""

        async def scenario() -> list[float]:
            limiter = InProcessRateLimiter(RateLimits(requests=2, per=PER), burst=2)
            told = await limiter.acquire()
            told.replied(200, headers(1, limit=2))
            await asyncio.sleep(1.0)
            await limiter.acquire()  # never told
            server = limiter._global.server
            assert server is not None
            return [server.available(t) for t in (1.0, PER + 0.5, 1.0 + PER + 0.001)]

        # Spent in its window, still in flight at the start of the next, then given up.
        assert run_in_virtual_time(scenario()) == [0, 1, 2]
