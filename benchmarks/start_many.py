"""Bulk starts: ``flows.start_many`` over a generator of payloads, rate and peak memory.

What it measures:
    ``flows.start_many(101, 9001, payloads, concurrency=32)`` over a generator of N payloads
    of about 1 KB each (default 100,000; ``--quick`` 5,000), against FakePatchworks served
    from its own process (so that the server's records do not count in this process's
    memory) with limits far above the load. It reports requests per second and this
    process's peak RSS while ``start_many`` runs above the RSS of an idle client that has
    already sent a few starts (connections open, code paths warm). A run with a tenth of
    the items comes first in the same process: if memory grew with the item count, the
    second run would raise the peak well above the first.

    How the memory figure is taken: the RSS is sampled every 10 ms (``/proc/self/statm``,
    Linux) while ``start_many`` runs, and the highest sample is compared with the RSS
    sampled just before the first run, after a ``gc.collect()``. Not ``ru_maxrss``: that
    is the process's high-water mark since it began, set by start-up (imports, spawning
    the server), and it hides whatever ``start_many`` holds below it.

    What the memory figure counts: everything this process holds beyond the idle client
    while ``start_many`` runs (its generator, the items and tasks in flight, their
    replies, aiohttp's buffers), and nothing that grows with the item count unless
    ``start_many`` does. The client's limiter keeps a log of the sends of its last window
    (``per + margin`` seconds), and what it follows of the server's count keeps each reply
    of the server's current window: under the real limits that is at most 240 entries
    each, but under 10**9 requests *a minute* it would be every send and every reply of
    the last minute, about 3 MB for 100,000 starts in the send log alone, which is the
    limiter's memory and not ``start_many``'s. So the limits here, the client's and the
    fake's alike, are 10**9 requests *a second* (``RateLimits(requests=10**9, per=1)``,
    ``fake-server --window 1``): still far above the load, the same limiter code on every
    send, but state that holds about one second of sends and replies (a few thousand
    entries), whatever the count.

    The rate is the pair's (client and fake) rather than ``start_many``'s alone: the fake
    allocates every new id by scanning the ids it holds, so its cost per start grows with
    the starts it has stored, and in a long run it becomes the bottleneck (at 100,000
    items it runs at a fraction of the rate of the first thousands, and the run takes many
    minutes; ``-n 30000`` is a medium size that shows the memory staying flat).

    The journal's cost, measured side by side: the same items with and without
    ``journal=`` (a SQLite file: each item is committed as ``sending`` after its rate-limit
    slot is granted and before it is sent, and each outcome before it is yielded, with
    group commits), first with limits far above the load (the rate ratio), then paced at
    60 requests per 3 s window against the fake's throttle with 0-25 ms of latency jitter
    (sustained fraction of the limit, and 429s), where the journal's fsync sits between the
    limiter and the send.

Goal:
    Peak RSS within 60 MB of the idle client, whatever the item count; every item yields
    exactly one result, all ``started``. With a journal, paced: the same sustained fraction
    of the limit as without (>= 0.97) and zero 429s.

Run: ``python benchmarks/start_many.py [--quick] [-n N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from _measure import sustained_fraction

from patchworks_async import PatchworksClient, RateLimits, StartStatus
from patchworks_async.testing import fake_patchworks_process

GOAL_MB = 60.0
UNLIMITED = 10**9
# Far above the load, with windows short enough that what the limiter keeps of its own
# sends and of the server's replies stays a few thousand entries long whatever the item
# count (see the module docstring).
FAR_ABOVE_THE_LOAD = RateLimits(requests=UNLIMITED, per=1.0)
FAR_ABOVE_THE_LOAD_SERVER = ("--requests", str(UNLIMITED), "--window", "1")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
SAMPLE_EVERY = 0.01


def payloads(count: int) -> Iterator[dict[str, object]]:
    """About 1 KB of JSON each, made one at a time."""
    for i in range(count):
        yield {
            "order": 100_000 + i,
            "customer": f"CUST-{i % 9973:05d}",
            "lines": [
                {"sku": f"SKU-{(i + k) % 5000:05d}", "qty": k + 1, "price": 9.99 + k}
                for k in range(14)
            ],
        }


def rss_mb() -> float:
    """This process's resident set size now, in MB (Linux: ``/proc/self/statm``, in pages)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES / 2**20


class PeakRss:
    """The highest RSS sampled while the block runs (every ``SAMPLE_EVERY`` seconds)."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._sampler: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            await asyncio.sleep(SAMPLE_EVERY)

    async def __aenter__(self) -> PeakRss:
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._sampler is not None
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        self.peak = max(self.peak, rss_mb())


async def push(
    pw: PatchworksClient, count: int, journal: Path | None = None, concurrency: int = 32
) -> tuple[float, Counter[StartStatus], int]:
    """Run start_many over ``count`` payloads; return rate, statuses and distinct indexes."""
    statuses: Counter[StartStatus] = Counter()
    seen = 0
    began = time.perf_counter()
    async with contextlib.aclosing(
        pw.flows.start_many(101, 9001, payloads(count), concurrency=concurrency, journal=journal)
    ) as results:
        async for result in results:
            statuses[result.status] += 1
            seen += 1
    return count / (time.perf_counter() - began), statuses, seen


async def run(count: int) -> int:
    async with (
        fake_patchworks_process(*FAR_ABOVE_THE_LOAD_SERVER) as fake,
        PatchworksClient(api_key=fake.api_key, **fake.urls, rate_limits=FAR_ABOVE_THE_LOAD) as pw,
    ):
        await push(pw, 200)  # warm: connections, code paths
        gc.collect()
        idle = rss_mb()
        rows = []
        for n in (max(1, count // 10), count):
            async with PeakRss() as rss:
                rate, statuses, seen = await push(pw, n)
            rows.append((n, rate, rss.peak - idle, statuses, seen))
    print(
        f"start_many: concurrency 32, ~1 KB payloads from a generator; server in its own "
        f"process; client and server limits 10**9 a second (the limiter keeps ~1 s of sends "
        f"and replies, whatever the count); python {sys.version.split()[0]}"
    )
    print(f"idle client RSS: {idle:.1f} MB (peaks: the highest RSS sampled every 10 ms)")
    print(f"{'items':>8}  {'req/s':>7}  {'peak RSS over idle MB':>21}  statuses")
    ok = True
    for n, rate, grown, statuses, seen in rows:
        summary = ", ".join(f"{status} {number}" for status, number in sorted(statuses.items()))
        print(f"{n:>8}  {rate:>7.0f}  {grown:>21.1f}  {summary}")
        ok = ok and seen == n and statuses[StartStatus.STARTED] == n
    n, rate, grown, _, _ = rows[-1]
    met = ok and grown <= GOAL_MB
    print(
        f"RESULT: {n} items at {rate:.0f} req/s, peak RSS {grown:.1f} MB over the idle client "
        f"(goal <= {GOAL_MB:.0f} MB; {rows[0][2]:.1f} MB after {rows[0][0]} items), every item "
        f"one result: {ok}: {'goal met' if met else 'goal MISSED'}"
    )
    await journal_cost(max(200, count // 10), 100 if count <= 5_000 else 400)
    return 0


async def journal_cost(count: int, paced: int) -> None:
    """The journal's cost: rate without limits, and use of a paced limit, side by side."""
    print(f"journal cost: {count} items without limits, then {paced} items at 60 per 3 s")
    with tempfile.TemporaryDirectory() as tmp:
        rates: dict[bool, list[float]] = {False: [], True: []}
        async with (
            fake_patchworks_process(*FAR_ABOVE_THE_LOAD_SERVER) as fake,
            PatchworksClient(
                api_key=fake.api_key, **fake.urls, rate_limits=FAR_ABOVE_THE_LOAD
            ) as pw,
        ):
            for round_ in range(2):
                for journaled in (False, True):
                    journal = Path(tmp, f"fast-{round_}.sqlite") if journaled else None
                    rate, _, _ = await push(pw, count, journal)
                    rates[journaled].append(rate)
        plain, journaled_rate = max(rates[False]), max(rates[True])
        print(
            f"  no limits: {plain:.0f} req/s without a journal, {journaled_rate:.0f} with one "
            f"(journal/plain {journaled_rate / plain:.2f})"
        )
        for journaled in (False, True):
            async with (
                fake_patchworks_process(
                    "--requests", "60", "--window", "3", "--latency", "0,0.025"
                ) as fake,
                PatchworksClient(
                    api_key=fake.api_key,
                    **fake.urls,
                    rate_limits=RateLimits(requests=60, per=3.0),
                ) as pw,
            ):
                journal = Path(tmp, "paced.sqlite") if journaled else None
                await push(pw, paced, journal, concurrency=16)
                arrivals = (await fake.state())["arrivals"]
            accepted = sorted(at for at, status in arrivals if status != 429)
            refused = sum(status == 429 for _, status in arrivals)
            fraction = sustained_fraction(accepted, 60, 3.0) or 0.0
            label = "with a journal   " if journaled else "without a journal"
            print(f"  60 per 3 s, {label}: sustained {fraction:.3f} of the limit, {refused} x 429")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="start_many rate and peak memory.")
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument("-n", type=int, default=None, help="payloads (100000; quick 5000)")
    args = parser.parse_args(argv)
    count: int = max(10, args.n) if args.n is not None else (5_000 if args.quick else 100_000)
    return asyncio.run(run(count))


if __name__ == "__main__":
    sys.exit(main())
