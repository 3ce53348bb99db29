"""Per-call options: bounded waits for a slot, and clients that share one connection."""

from __future__ import annotations

import builtins

import pytest

from patchworks_async import (
    ConfigurationError,
    InProcessRateLimiter,
    PatchworksClient,
    Priority,
    RateLimits,
    RateLimitTimeoutError,
    RetryPolicy,
)
from patchworks_async.testing import FakePatchworks, Fault

from ..support.clients import client_for

ONE_A_MINUTE = RateLimits(requests=1, per=60.0)


class TestMaxWait:
    async def test_a_request_that_cannot_get_a_slot_in_time_raises_and_sends_nothing(
        self, fake: FakePatchworks
    ) -> None:
        async with client_for(fake, rate_limits=ONE_A_MINUTE, max_wait=0.05) as pw:
            await pw.flows.get(101)  # the one request of the minute
            with pytest.raises(RateLimitTimeoutError) as caught:
                await pw.flows.start(101, 9001, "x")
        assert len(fake.received) == 1
        assert isinstance(caught.value, builtins.TimeoutError)
        assert caught.value.max_wait == 0.05
        assert caught.value.retry_after is not None and caught.value.retry_after > 0

    async def test_requests_that_give_up_waiting_send_nothing_later(
        self, fake: FakePatchworks
    ) -> None:
        """A request that timed out waiting holds nothing and never leaves afterwards."""
        limiter = InProcessRateLimiter(RateLimits(requests=2, per=60.0), burst=2)
        async with client_for(fake, limiter=limiter) as pw:
            hurried = pw.with_options(max_wait=0.01)
            await pw.flows.get(101)
            await pw.flows.get(101)  # the minute's two slots
            for _ in range(3):
                with pytest.raises(RateLimitTimeoutError):
                    await hurried.flows.get(101)
            assert limiter.estimated_wait() == pytest.approx(limiter.rate_limits.span, abs=1)
        assert len(fake.received) == 2

    @pytest.mark.parametrize("max_wait", [0, -1, float("nan"), float("inf"), "2"])
    def test_a_max_wait_that_is_not_a_positive_number_is_refused(self, max_wait: object) -> None:
        with pytest.raises(ConfigurationError, match="max_wait"):
            PatchworksClient(api_key="k", max_wait=max_wait)  # type: ignore[arg-type]


class TestWithOptions:
    async def test_a_view_shares_the_session_the_limiter_and_the_login(self) -> None:
        async with FakePatchworks() as fake:
            async with client_for(
                fake, email=fake.email, password=fake.password, rate_limits=ONE_A_MINUTE
            ) as pw:
                view = pw.with_options(timeout=5, max_wait=0.05)
                await pw.flows.get(101)
                with pytest.raises(RateLimitTimeoutError):
                    await view.flows.get(101)  # the parent spent the minute's one slot
                assert view.limiter is pw.limiter
            assert fake.login_count == 1

    async def test_a_view_changes_only_what_it_names(self, fake: FakePatchworks) -> None:
        retry = RetryPolicy(attempts=2, backoff_base=0)
        pw = client_for(fake, timeout=7, retry=retry)
        view = pw.with_options(priority="high")
        assert (view.timeout, view.retry, view.max_wait) == (7, retry, None)
        assert (view.priority, pw.priority) == (Priority.HIGH, Priority.NORMAL)
        again = view.with_options(max_wait=None, timeout=3)
        assert (again.timeout, again.priority, again.max_wait) == (3, Priority.HIGH, None)
        await pw.aclose()

    async def test_closing_a_view_closes_nothing_and_closing_the_client_closes_both(
        self, fake: FakePatchworks
    ) -> None:
        pw = client_for(fake)
        async with pw.with_options(timeout=5) as view:
            await view.flows.get(101)
        await pw.flows.get(101)  # still open
        await pw.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await view.flows.get(101)

    async def test_a_views_retry_policy_is_its_own(self, fake: FakePatchworks) -> None:
        fake.inject(Fault.UNAVAILABLE_BEFORE, times=3, route="core")
        async with client_for(fake, retry=RetryPolicy(attempts=1)) as pw:
            patient = pw.with_options(retry=RetryPolicy(attempts=4, backoff_base=0))
            flow = await patient.flows.get(101)
        assert flow.id == 101
        assert [r.status for r in fake.received] == [503, 503, 503, 200]

    @pytest.mark.parametrize(
        ("option", "value"),
        [("priority", "urgent"), ("retry", 3), ("timeout", 0), ("timeout", None)],
    )
    def test_bad_options_are_refused(self, option: str, value: object) -> None:
        with pytest.raises(ConfigurationError, match=option):
            PatchworksClient(api_key="k").with_options(**{option: value})  # type: ignore[arg-type]
