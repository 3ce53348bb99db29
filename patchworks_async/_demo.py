"""The demo: a few hundred flow starts through the client against an embedded fake server.

The fake's Laravel window is shrunk to a few seconds so that several windows pass in a
short run; the client is told the same limits, and keeps them: zero 429s, and a sustained
rate within a couple of percent of the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from attrs import frozen

from ._client import PatchworksClient
from ._config import RateLimits
from .testing import FakePatchworks

__all__ = ["DemoResult", "run_demo"]


@frozen
class DemoResult:
    """What the demo measured."""

    starts: int
    accepted: int
    refused_429: int
    elapsed: float
    limit_per_second: float
    sustained_per_second: float

    @property
    def utilisation(self) -> float:
        """The sustained rate as a fraction of the limit."""
        return self.sustained_per_second / self.limit_per_second


async def run_demo(
    *,
    starts: int = 300,
    requests: int = 60,
    window: float = 3.0,
    concurrency: int = 64,
    progress: Callable[[int, int, int], None] | None = None,
) -> DemoResult:
    """Push ``starts`` flow starts through a client against an in-process FakePatchworks.

    Args:
        starts: How many flow starts to push.
        requests: The fake account's limit per window (the client is given the same).
        window: The window in seconds (60 in production; shrunk so the demo is short).
        concurrency: How many starts are in flight at once.
        progress: Called about once a second with (accepted, refused_429, starts).
    """
    jitter = window / 60 / 2  # below the client's margin (window / 60), as on a real network
    async with (
        FakePatchworks(
            requests_per_window=requests, window=window, latency=(0.0, jitter), seed=1
        ) as fake,
        PatchworksClient(
            api_key=fake.api_key,
            **fake.urls,
            rate_limits=RateLimits(requests=requests, per=window),
        ) as client,
    ):
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(starts):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await client.flows.start(
                    101, 9001, {"order": i, "lines": [{"sku": "A-1", "qty": 2}]}
                )

        async def report() -> None:
            while True:
                await asyncio.sleep(1.0)
                if progress is not None:
                    progress(len(fake.starts), fake.throttled, starts)

        began = time.monotonic()
        reporter = asyncio.create_task(report())
        try:
            await asyncio.gather(*(worker() for _ in range(min(concurrency, starts))))
        finally:
            reporter.cancel()
        elapsed = time.monotonic() - began
        arrivals = sorted(run.received_at for run in fake.starts)
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        return DemoResult(
            starts=starts,
            accepted=len(fake.starts),
            refused_429=fake.throttled,
            elapsed=elapsed,
            limit_per_second=requests / window,
            sustained_per_second=(len(arrivals) - 1) / span if span else 0.0,
        )
