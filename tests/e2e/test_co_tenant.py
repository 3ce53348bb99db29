"""The client sharing its account with another consumer, over real sockets.

``FakePatchworks(co_tenant=...)`` spends part of every window as a steady integration
would. The client cannot see it, except in ``X-RateLimit-Remaining`` falling faster than
its own requests explain: from the second window on it must take what is left without a
single 429 (in the first it may meet the co-tenant before it has measured its pace).
"""

from __future__ import annotations

import asyncio

from patchworks_async import RateLimits
from patchworks_async.testing import FakePatchworks

from ..support.clients import client_for

REQUESTS, WINDOW = 30, 1.0


async def test_with_a_co_tenant_the_client_draws_no_429_after_the_first_window() -> None:
    async with FakePatchworks(
        requests_per_window=REQUESTS, window=WINDOW, co_tenant=0.5, latency=(0.0, 0.01), seed=1
    ) as fake:
        limits = RateLimits(requests=REQUESTS, per=WINDOW)
        async with client_for(fake, rate_limits=limits) as pw:
            started = await asyncio.gather(
                *(pw.flows.start(101, 9001, {"n": n}) for n in range(45))
            )
        tenant = fake.state()["co_tenant"]
    assert len(started) == len(fake.starts) == 45
    first = fake.received[0].at
    assert [r.at - first for r in fake.received if r.status == 429 and r.at >= first + WINDOW] == []
    # Three windows are all the client has to learn the co-tenant's pace: it may take a
    # few of its requests meanwhile (the unit tests check that it stops once it knows).
    assert tenant["refused"] <= tenant["hits"] // 4
