"""Bulk starts: ``flows.start_many`` over a generator of payloads, rate and peak memory.

What it measures:
    ``flows.start_many(101, 9001, payloads, concurrency=32)`` over a generator of N payloads
    of about 1 KB each (default 100,000; ``--quick`` 5,000), against FakePatchworks served
    from its own process (so that the server's records do not count in this process's
    memory) with limits far above the load. It reports requests per second and this
    process's peak RSS (``ru_maxrss``) above an idle client that has already sent a few
    starts (connections open, code paths warm). A run with a tenth of the items comes first
    in the same process: if memory grew with the item count, the second run would raise
    the peak well above the first.

Goal:
    Peak RSS within 60 MB of the idle client, whatever the item count; every item yields
    exactly one result, all ``started``.

Run: ``python benchmarks/start_many.py [--quick] [-n N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator

from patchworks_async import PatchworksClient, RateLimits, StartStatus
from patchworks_async.testing import fake_patchworks_process

GOAL_MB = 60.0
UNLIMITED = 10**9


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


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def push(pw: PatchworksClient, count: int) -> tuple[float, Counter[StartStatus], int]:
    """Run start_many over ``count`` payloads; return rate, statuses and distinct indexes."""
    statuses: Counter[StartStatus] = Counter()
    seen = 0
    began = time.perf_counter()
    async with contextlib.aclosing(
        pw.flows.start_many(101, 9001, payloads(count), concurrency=32)
    ) as results:
        async for result in results:
            statuses[result.status] += 1
            seen += 1
    return count / (time.perf_counter() - began), statuses, seen


async def run(count: int) -> int:
    async with (
        fake_patchworks_process("--requests", str(UNLIMITED)) as fake,
        PatchworksClient(
            api_key=fake.api_key, **fake.urls, rate_limits=RateLimits(requests=UNLIMITED)
        ) as pw,
    ):
        await push(pw, 200)  # warm: connections, code paths
        idle = peak_rss_mb()
        rows = []
        for n in (max(1, count // 10), count):
            rate, statuses, seen = await push(pw, n)
            rows.append((n, rate, peak_rss_mb() - idle, statuses, seen))
    print(
        f"start_many: concurrency 32, ~1 KB payloads from a generator; server in its own "
        f"process; python {sys.version.split()[0]}"
    )
    print(f"idle client peak RSS: {idle:.1f} MB")
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
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="start_many rate and peak memory.")
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument("-n", type=int, default=None, help="payloads (100000; quick 5000)")
    args = parser.parse_args(argv)
    count: int = max(10, args.n) if args.n is not None else (5_000 if args.quick else 100_000)
    return asyncio.run(run(count))


if __name__ == "__main__":
    sys.exit(main())
