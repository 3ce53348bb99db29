"""The demo: a few hundred flow starts through the client against an embedded fake server.

The fake's Laravel window is shrunk to a few seconds so that several windows pass in a
short run; the client is told the same limits, and keeps them: zero 429s, and a sustained
rate within a couple of percent of the limit. The starts go through ``flows.start_many``,
as a batch loader would send them.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from attrs import frozen

from .. import PatchworksClient, RateLimits, StartStatus
from ..testing import FakePatchworks

__all__ = ["DEMO_FLOW", "DEMO_VERSION", "DemoResult", "run_demo", "whole_windows_rate"]

DEMO_FLOW = 101
DEMO_VERSION = 9001


@frozen
class DemoResult:
    """What the demo measured.

    Attributes:
        starts: Flow starts pushed.
        accepted: Starts the fake server accepted (its own count).
        refused_429: Requests the fake server refused with a 429.
        elapsed: Seconds from the first start to the last result.
        limit_per_second: The account's limit, per second.
        sustained_per_second: Starts per second over the server's whole windows (see
            :func:`whole_windows_rate`).
        started: Items ``start_many`` reported as started (the client's count).
    """

    starts: int
    accepted: int
    refused_429: int
    elapsed: float
    limit_per_second: float
    sustained_per_second: float
    started: int = 0

    @property
    def utilisation(self) -> float:
        """The sustained rate as a fraction of the limit."""
        return self.sustained_per_second / self.limit_per_second

    @property
    def ok(self) -> bool:
        """Every start accepted, by the server and the client's account alike, and no 429."""
        return self.accepted == self.started == self.starts and self.refused_429 == 0

    def summary(self) -> str:
        """The one-line summary the CLI prints (its format is stable: tools parse it)."""
        return (
            f"accepted {self.accepted}/{self.starts} | 429s {self.refused_429} | "
            f"rate {self.sustained_per_second:.2f}/s against a limit of "
            f"{self.limit_per_second:.2f}/s ({self.utilisation:.1%}) | "
            f"{self.elapsed:.1f} s"
        )


def whole_windows_rate(arrivals: Sequence[float], window: float) -> float:
    """Arrivals per second over the server's whole fixed windows.

    Laravel's window opens at the first request after the previous one ended, so the
    windows are rebuilt from the sorted arrival times. The rate is counted from the second
    window's opening to the last one's: the first may open before the pace settles and
    the last is cut short by the end of the run, and a rate from the first arrival to the
    last would favour a run that packs each window early (it can read above the limit
    although no window held more than it allows). With fewer than three windows, the
    rate from the first arrival to the last; 0.0 with fewer than two arrivals.
    """
    openings, i = [], 0
    while i < len(arrivals):
        openings.append(arrivals[i])
        i = bisect.bisect_left(arrivals, arrivals[i] + window, lo=i)
    if len(openings) >= 3:
        first, last = openings[1], openings[-1]
        inside = bisect.bisect_left(arrivals, last) - bisect.bisect_left(arrivals, first)
        return inside / (last - first)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return (len(arrivals) - 1) / span if span else 0.0


def _orders(starts: int) -> Iterator[dict[str, Any]]:
    """Payloads shaped like a small order, generated lazily as ``start_many`` reads them."""
    for i in range(starts):
        yield {"order": i, "lines": [{"sku": "A-1", "qty": 2}]}


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
        progress: Called after every result with (results so far, started so far,
            429s the server sent so far).
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
        done = started = 0
        began = time.monotonic()
        async with contextlib.aclosing(
            client.flows.start_many(
                DEMO_FLOW, DEMO_VERSION, _orders(starts), concurrency=concurrency
            )
        ) as results:
            async for result in results:
                done += 1
                started += result.status is StartStatus.STARTED
                if progress is not None:
                    progress(done, started, fake.throttled)
        elapsed = time.monotonic() - began
        arrivals = sorted(run.received_at for run in fake.starts)
        return DemoResult(
            starts=starts,
            accepted=len(fake.starts),
            refused_429=fake.throttled,
            elapsed=elapsed,
            limit_per_second=requests / window,
            sustained_per_second=whole_windows_rate(arrivals, window),
            started=started,
        )
