"""``FakePatchworks(co_tenant=...)``: another consumer of the account, counted by the throttle.

The model is tested with times passed in (``CoTenant``, and the fake's ``RateLimits`` whose
``attempt`` takes the arrival time), the switch through the fake's three doors: the
argument, the property, ``configure`` (and ``/_fake/settings`` for another process).
"""

from __future__ import annotations

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks, fake_patchworks_process
from patchworks_async.testing._co_tenant import CoTenant
from patchworks_async.testing._rate_limits import RateLimits
from patchworks_async.testing._throttle import FixedWindowThrottle, Limit, Verdict


def limits(share: float, since: float = 0.0) -> RateLimits:
    throttles = RateLimits(
        requests_per_window=60, manual_per_window=10, starts_per_window=None, window=3.0
    )
    throttles.set_co_tenant(share, since)
    return throttles


def sent(tenant: CoTenant, now: float) -> list[float]:
    """The times of the requests ``tenant`` sends by ``now``, through an idle throttle."""
    times: list[float] = []
    throttle, account = FixedWindowThrottle(), Limit("global", 60, 3.0)

    def attempt(at: float) -> Verdict:
        times.append(at)
        return throttle.attempt([account], at)

    tenant.replay(now, attempt, lambda at: False)  # never skip: see every request
    return times


class TestTheModel:
    def test_it_spends_its_share_of_every_window_at_a_steady_pace(self) -> None:
        tenant = CoTenant(0.3, requests=60, window=3.0, since=10.0)
        times = sent(tenant, 10.0 + 9.0 - 1e-9)
        assert len(times) == 3 * 18  # 30% of 60, in each of three windows
        assert times[:3] == pytest.approx([10.0, 10.0 + 1 / 6, 10.0 + 2 / 6])
        assert sent(tenant, 19.0) == [19.0]  # each is sent once
        assert (tenant.hits, tenant.refused) == (3 * 18 + 1, 0)

    def test_a_window_it_opens_holds_exactly_its_share(self) -> None:
        throttles = limits(0.3)
        throttles.attempt("core", 2.999)  # the 18 hits of [0, 3) are replayed first
        assert throttles.co_tenant_state(2.999) == {"share": 0.3, "hits": 18, "refused": 0}

    @pytest.mark.parametrize("share", [-0.1, 1.0, 1.5, float("nan"), True, "0.3"])
    def test_a_share_outside_0_to_1_is_refused(self, share: object) -> None:
        with pytest.raises(ValueError, match="co_tenant"):
            limits(share)  # type: ignore[arg-type]


class TestTheThrottleCountsIt:
    def test_remaining_falls_faster_than_the_clients_own_requests_explain(self) -> None:
        alone, shared = limits(0.0), limits(0.3)
        for at in (1.0, 2.0):
            seen_alone = alone.attempt("core", at).remaining
            seen_shared = shared.attempt("core", at).remaining
        assert seen_alone == 58
        assert seen_shared == 58 - 13  # its hits at 0, 1/6, ..., 2

    def test_a_client_that_ignores_it_is_refused(self) -> None:
        """Sending the whole limit, evenly, as if alone: the co-tenant's share is missing."""
        throttles = limits(0.3)
        refused = sum(not throttles.attempt("start", 0.025 + n * 0.05).allowed for n in range(300))
        assert refused > 0

    def test_it_is_refused_too_when_the_client_takes_the_whole_window(self) -> None:
        throttles = limits(0.5)
        for n in range(59):
            throttles.attempt("core", 0.001 * (n + 1))
        throttles.attempt("core", 2.9)
        assert throttles.co_tenant_state(2.9)["refused"] > 0

    def test_its_requests_meet_the_global_throttle_only(self) -> None:
        throttles = limits(0.3)
        throttles.attempt("core", 2.9)
        manual = throttles.attempt("manual", 2.95)
        assert (manual.key, manual.remaining) == ("manual", 9)

    def test_a_reset_forgets_its_hits_and_its_counts_but_not_its_pace(self) -> None:
        throttles = limits(0.3)
        throttles.attempt("core", 1.0)
        throttles.reset()
        assert throttles.co_tenant_state(0.0)["hits"] == 0
        assert throttles.co_tenant == 0.3

    @pytest.mark.parametrize("share", [0.3, 0.31, 0.99])
    def test_its_traffic_with_no_request_is_replayed_a_window_at_a_time(self, share: float) -> None:
        """As hit by hit through the throttle, in a step per window: hours of it do not
        hold up the first request."""
        throttles = limits(share, since=-7200.0)
        seen = throttles.attempt("core", 0.05).remaining
        one_by_one, account = FixedWindowThrottle(), Limit("global", 60, 3.0)
        tenant = CoTenant(share, requests=60, window=3.0, since=-7200.0)
        tenant.replay(0.05, lambda at: one_by_one.attempt([account], at), lambda at: False)
        assert one_by_one.attempt([account], 0.05).remaining == seen
        assert throttles.co_tenant_state(0.05)["hits"] == tenant.hits


class TestTheSwitch:
    def test_it_is_an_argument_a_property_and_a_switch_of_configure(self) -> None:
        fake = FakePatchworks(co_tenant=0.3)
        assert fake.co_tenant == 0.3
        fake.co_tenant = 0.5
        assert fake.co_tenant == 0.5
        assert fake.configure(co_tenant=0.2, queue_delay=0)["co_tenant"] == 0.2
        assert fake.co_tenant == 0.2
        assert fake.configure(co_tenant=0)["co_tenant"] == 0.0
        assert fake.state()["co_tenant"] == {"share": 0.0, "hits": 0, "refused": 0}

    def test_configure_changes_nothing_when_the_share_is_bad(self) -> None:
        fake = FakePatchworks()
        with pytest.raises(ValueError, match="co_tenant"):
            fake.configure(queue_delay=0, co_tenant=1.5)
        assert (fake.queue_delay, fake.co_tenant) == (0.5, 0.0)
        with pytest.raises(ValueError, match="run_outcome"):
            fake.configure(co_tenant=0.3, run_outcome=9)
        assert fake.co_tenant == 0.0

    async def test_the_clients_replies_show_it(self, session: aiohttp.ClientSession) -> None:
        async with FakePatchworks(requests_per_window=600, window=60.0, co_tenant=0.5) as fake:
            url = f"{fake.core_url}/flows/101"
            auth = {"Authorization": fake.api_key}
            async with session.get(url, headers=auth) as reply:
                first = int(reply.headers["X-RateLimit-Remaining"])
            state = fake.state()["co_tenant"]
        # It sends one request every 0.2 s from the moment the fake was built.
        assert first == 600 - 1 - state["hits"]
        assert state["hits"] >= 1
        assert len(fake.received) == 1  # its requests are not the client's

    async def test_the_settings_route_sets_it_in_another_process(self) -> None:
        async with fake_patchworks_process("--requests", "60", "--window", "3") as remote:
            assert (await remote.configure(co_tenant=0.3))["co_tenant"] == 0.3
            with pytest.raises(ValueError, match="co_tenant"):
                await remote.configure(co_tenant=2)
            assert (await remote.state())["co_tenant"]["share"] == 0.3
