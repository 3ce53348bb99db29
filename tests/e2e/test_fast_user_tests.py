"""What a user's own test suite gets from ``fake.client()``: fast, and never a stray 429."""

from __future__ import annotations

import time

from patchworks_async import StartStatus
from patchworks_async.testing import FakePatchworks


async def test_a_hundred_starts_against_a_default_fake_take_a_fraction_of_a_second(
    fake_patchworks: FakePatchworks,
) -> None:
    """The fixture's fake keeps the real 240 a minute; its client bursts under it."""
    began = time.monotonic()
    async with (
        fake_patchworks.client() as pw,
        pw.flows.start_many(101, 9001, [{"order": n} for n in range(100)]) as results,
    ):
        statuses = [result.status async for result in results]
    elapsed = time.monotonic() - began
    assert statuses == [StartStatus.STARTED] * 100
    assert fake_patchworks.throttled == 0
    # Paced at the real 240 a minute it would take 23 s; a generous bound, not a benchmark.
    assert elapsed < 10


async def test_the_client_keeps_the_fakes_own_limits(fake_patchworks: FakePatchworks) -> None:
    async with FakePatchworks(requests_per_window=30, window=2.0) as small:
        pw = small.client()
        assert pw.rate_limits is not None
        assert (pw.rate_limits.requests, pw.rate_limits.per) == (30, 2.0)
        async with pw, pw.flows.start_many(101, 9001, ["x"] * 40) as results:
            assert {r.status async for r in results} == {StartStatus.STARTED}
        assert small.throttled == 0  # the 31st waited for the window rather than be refused


async def test_the_client_can_log_in_instead(fake_patchworks: FakePatchworks) -> None:
    fake = fake_patchworks
    async with fake.client(email=fake.email, password=fake.password) as pw:
        await pw.flows.get(101)
    assert fake.login_count == 1
