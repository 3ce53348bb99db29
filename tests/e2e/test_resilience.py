"""Throttling, retries and faults end to end: limits are kept, and nothing starts twice."""

from __future__ import annotations

import asyncio
import math

import pytest

from patchworks_async import (
    InProcessRateLimiter,
    OutcomeUnknownError,
    RateLimitError,
    RateLimits,
    RequestKind,
    RetryPolicy,
    ServerError,
    TimeoutError,
    TransportError,
)
from patchworks_async.testing import FakePatchworks, Fault

from ..support.clients import INSTANT_RETRIES, client_for


class TestRateLimits:
    async def test_limits_that_match_the_server_draw_no_429(self) -> None:
        """Through a shrunken Laravel window with jittered latency, the server never refuses."""
        async with (
            FakePatchworks(requests_per_window=20, window=1.0, latency=(0.0, 0.01), seed=7) as fake,
            client_for(fake, rate_limits=RateLimits(requests=20, per=1.0)) as pw,
        ):
            await asyncio.gather(*(pw.flows.start(101, 9001, f"#{i}") for i in range(50)))
        assert fake.throttled == 0
        assert len(fake.starts) == 50

    async def test_a_429_pauses_every_sender_and_the_refused_request_is_sent_again(
        self,
    ) -> None:
        """A client configured above the server's limit learns from 429s and loses nothing."""
        async with (
            FakePatchworks(requests_per_window=5, window=1.0) as fake,
            client_for(fake, rate_limits=RateLimits(requests=100, per=1.0)) as pw,
        ):
            results = await asyncio.gather(*(pw.flows.start(101, 9001, f"#{i}") for i in range(8)))
        assert fake.throttled >= 1
        assert sorted(run.payload for run in fake.starts) == sorted(f"#{i}" for i in range(8))
        assert len({r.id for r in results}) == 8
        refused = [r for r in fake.received if r.status == 429]
        first_refusal = min(r.at for r in refused)
        retry_after = int(refused[0].header("Retry-After") or 0)  # type: ignore[arg-type]
        later = [r.at for r in fake.received if r.at > first_refusal and r.status != 429]
        # Nobody sent anything until Retry-After + 1 had passed (allowing a little latency).
        assert min(later) >= first_refusal + retry_after + 1 - 0.05

    async def test_manual_starts_keep_their_own_limit_alongside_ordinary_traffic(self) -> None:
        async with (
            FakePatchworks(requests_per_window=30, manual_per_window=3, window=1.0) as fake,
            client_for(fake, rate_limits=RateLimits(requests=30, manual_starts=3, per=1.0)) as pw,
        ):
            await asyncio.gather(
                *(pw.flows.initialise(101, 9001, f"m{i}") for i in range(5)),
                *(pw.flows.get(101) for _ in range(40)),
            )
        assert fake.throttled == 0
        assert sum(run.manual for run in fake.starts) == 5

    async def test_a_caller_cancelled_while_waiting_for_a_token_sends_nothing(self) -> None:
        # Two tokens a minute, both spent at once: the next three callers wait a minute at
        # least, so nothing but their cancellation can end their wait during the test.
        limits = RateLimits(requests=2, per=60.0)
        limiter = InProcessRateLimiter(limits, burst=2)
        async with (
            FakePatchworks(requests_per_window=2, window=60.0) as fake,
            client_for(fake, limiter=limiter) as pw,
        ):
            await asyncio.gather(*(pw.flows.start(101, 9001, f"#{i}") for i in range(2)))
            next_token = limiter.estimated_wait(RequestKind.START)
            assert next_token is not None
            assert next_token > 30
            tasks = [asyncio.create_task(pw.flows.start(101, 9001, f"#{i}")) for i in range(3)]
            # Let all three queue (each adds a token's interval to the estimate), then cancel.
            all_queued = next_token + 2.5 * limits.per / limits.requests
            while (limiter.estimated_wait(RequestKind.START) or 0) < all_queued:  # noqa: ASYNC110
                await asyncio.sleep(0)
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
            # The cancelled callers left no token stranded: the next one is no later than
            # it was before they queued.
            assert (limiter.estimated_wait(RequestKind.START) or math.inf) <= next_token
        assert len(fake.starts) == 2
        assert [r.route for r in fake.received] == ["start", "start"]

    async def test_a_server_that_keeps_refusing_raises_rate_limit_error(self) -> None:
        async with (
            FakePatchworks(requests_per_window=1, window=30.0) as fake,
            client_for(
                fake,
                rate_limits=RateLimits(requests=100, per=1.0),
                retry=RetryPolicy(backoff_base=0.0, max_rate_limited_waits=0),
            ) as pw,
        ):
            await pw.flows.get(101)
            with pytest.raises(RateLimitError) as caught:
                await pw.flows.get(101)
        assert caught.value.retry_after is not None
        assert 28 <= caught.value.retry_after <= 30
        assert fake.throttled == 1


class TestNothingStartsTwice:
    @pytest.mark.parametrize(
        ("fault", "processed"),
        [
            (Fault.UNAVAILABLE_BEFORE, 0),
            (Fault.HTML_ERROR_BEFORE, 0),
            (Fault.DROP_BEFORE, 0),
            (Fault.SERVER_ERROR_AFTER, 1),
            (Fault.DROP_AFTER, 1),
        ],
    )
    async def test_an_ambiguous_failure_raises_outcome_unknown_and_is_not_resent(
        self, fake: FakePatchworks, fault: Fault, processed: int
    ) -> None:
        fake.inject(fault, route="start")
        async with client_for(fake) as pw:
            with pytest.raises(OutcomeUnknownError):
                await pw.flows.start(101, 9001, "once")
        assert len(fake.starts) == processed
        assert sum(r.route == "start" for r in fake.received) == 1

    async def test_a_timeout_after_sending_is_an_unknown_outcome(
        self, fake: FakePatchworks
    ) -> None:
        fake.slow_seconds = 2.0
        fake.inject(Fault.SLOW_AFTER, route="start")
        async with client_for(fake, timeout=0.3) as pw:
            with pytest.raises(OutcomeUnknownError, match="timed out"):
                await pw.flows.start(101, 9001, "once")
        assert len(fake.starts) == 1

    async def test_a_5xx_on_a_start_keeps_the_status_and_cause(self, fake: FakePatchworks) -> None:
        fake.inject(Fault.SERVER_ERROR_AFTER, route="start")
        async with client_for(fake) as pw:
            with pytest.raises(OutcomeUnknownError) as caught:
                await pw.flows.start(101, 9001, "once")
        assert caught.value.status == 500
        assert isinstance(caught.value.__cause__, ServerError)

    async def test_opting_in_resends_ambiguous_starts(self, fake: FakePatchworks) -> None:
        fake.inject(Fault.DROP_BEFORE, route="start")
        retry = RetryPolicy(backoff_base=0.0, retry_ambiguous_starts=True)
        async with client_for(fake, retry=retry) as pw:
            started = await pw.flows.start(101, 9001, "resent")
        assert started.id == fake.starts[0].run_id
        assert len(fake.starts) == 1

    async def test_opting_in_can_start_twice_which_is_why_it_is_off(
        self, fake: FakePatchworks
    ) -> None:
        fake.inject(Fault.DROP_AFTER, route="start")
        retry = RetryPolicy(backoff_base=0.0, retry_ambiguous_starts=True)
        async with client_for(fake, retry=retry) as pw:
            await pw.flows.start(101, 9001, "twice")
        assert len(fake.starts) == 2

    async def test_a_manual_initialise_is_protected_in_the_same_way(
        self, fake: FakePatchworks
    ) -> None:
        fake.inject(Fault.DROP_AFTER, route="manual")
        async with client_for(fake) as pw:
            with pytest.raises(OutcomeUnknownError):
                await pw.flows.initialise(101, 9001, "once")
        assert len(fake.starts) == 1


class TestIdempotentRetries:
    @pytest.mark.parametrize(
        "fault",
        [Fault.UNAVAILABLE_BEFORE, Fault.HTML_ERROR_BEFORE, Fault.DROP_BEFORE, Fault.DROP_AFTER],
    )
    async def test_reads_are_retried_through_transient_failures(
        self, fake: FakePatchworks, fault: Fault
    ) -> None:
        fake.inject(fault, times=2, route="core")
        async with client_for(fake) as pw:
            flow = await pw.flows.get(101)
        assert flow.id == 101
        assert sum(r.route == "core" for r in fake.received) == 3

    async def test_retries_stop_after_the_configured_attempts(self, fake: FakePatchworks) -> None:
        fake.inject(Fault.UNAVAILABLE_BEFORE, times=10, route="core")
        async with client_for(fake, retry=RetryPolicy(attempts=3, backoff_base=0.0)) as pw:
            with pytest.raises(ServerError) as caught:
                await pw.flows.get(101)
        assert caught.value.status == 503
        assert sum(r.route == "core" for r in fake.received) == 3

    async def test_an_html_error_page_gives_a_clean_error(self, fake: FakePatchworks) -> None:
        fake.inject(Fault.HTML_ERROR_BEFORE, times=10, route="core")
        async with client_for(fake, retry=RetryPolicy(attempts=1)) as pw:
            with pytest.raises(ServerError, match="502") as caught:
                await pw.flows.get(101)
        assert "Bad Gateway" in str(caught.value.body)

    async def test_a_read_timeout_is_a_timeout_error_after_retries(
        self, fake: FakePatchworks
    ) -> None:
        fake.slow_seconds = 2.0
        fake.inject(Fault.SLOW_AFTER, times=2, route="core")
        async with client_for(
            fake, timeout=0.2, retry=RetryPolicy(attempts=2, backoff_base=0.0)
        ) as pw:
            with pytest.raises(TimeoutError) as caught:
                await pw.flows.get(101)
        assert isinstance(caught.value, TransportError)

    async def test_retries_take_a_token_each(self, fake: FakePatchworks) -> None:
        from .test_client import CountingLimiter

        limiter = CountingLimiter()
        fake.inject(Fault.UNAVAILABLE_BEFORE, times=2, route="core")
        async with client_for(fake, limiter=limiter, retry=INSTANT_RETRIES) as pw:
            await pw.flows.get(101)
        assert len(limiter.acquired) == 3
