"""Client overhead: requests/s through ``PatchworksClient`` versus raw aiohttp, side by side.

What it measures:
    N flow starts (``flows.start(101, 9001, payload)`` with a ~1 KB JSON payload) sent at a
    concurrency of 32 through the client, versus the same number of raw
    ``aiohttp.ClientSession.post(url, data=body, headers=headers)`` calls carrying the very
    same body bytes (built once with ``encode_start_body``) and the same headers to the same
    URL, with the reply read inside ``async with``. Raw and client rounds alternate
    (raw, client, raw, client, ...) after a warm-up of each, all in one process, and the
    median requests/s of each side is compared.

    The rate limits are set far above the load (server and client alike: 10**9 a minute), so
    the client's limiter never waits: what is measured is its bookkeeping, plus everything
    else the client does per call (encoding the payload, URL building, auth, retries and
    429 handling scaffolding, JSON decoding of the reply, rate-limit header parsing, the
    reply model).

Goal:
    client requests/s >= 0.85 x raw aiohttp requests/s (the ratio of the medians), with no
    429 (``fake.throttled == 0``) and every start accepted.

Caveat:
    ``FakePatchworks`` runs in the same process and event loop as both senders, so each
    request's server-side work (routing, throttle model, JSON validation, recording) is paid
    on the same core as the client's. Both sides share that cost equally, so the ratio is
    fair, but it *understates* the client's overhead relative to aiohttp alone: against a
    remote server the same added microseconds per request would be a larger fraction. The
    "added us/request" line (1/client_rate - 1/raw_rate) is the cost the client adds per call
    on this machine, independent of how expensive the server is.

The machine this runs on is noisy; only the ratio, measured in one run, is meaningful.
``--profile`` additionally runs one client round and one raw round under cProfile and prints
where the time goes.

Run: ``python benchmarks/client_overhead.py [--quick] [-n N] [--rounds K] [--profile]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

from patchworks_async import PatchworksClient, RateLimits, encode_start_body
from patchworks_async._transport import user_agent
from patchworks_async.testing import FakePatchworks

GOAL_RATIO = 0.85
FLOW_ID = 101
VERSION_ID = 9001
CONCURRENCY = 32
UNLIMITED = 10**9
MAX_BODY_BYTES = 8 * 1024 * 1024

Send = Callable[[], Awaitable[None]]


def make_payload(target_bytes: int = 1024) -> dict[str, object]:
    """An order batch whose compact JSON is about ``target_bytes`` long."""
    orders: list[dict[str, object]] = []
    payload: dict[str, object] = {"source": "benchmark", "orders": orders}
    index = 0
    while True:
        orders.append(
            {
                "id": 100000 + index,
                "sku": f"SKU-{index:05d}",
                "qty": index % 7 + 1,
                "price": round(9.99 + index, 2),
                "ship_to": "GB",
            }
        )
        size = len(encode_start_body(1, None, payload, max_body_bytes=MAX_BODY_BYTES))
        if size >= target_bytes:
            return payload
        index += 1


async def run_workers(n: int, concurrency: int, send: Send) -> float:
    """Send ``n`` requests with ``concurrency`` worker tasks; return requests per second."""
    jobs = iter(range(n))

    async def worker() -> None:
        for _ in jobs:  # one shared iterator: the workers split the jobs between them
            await send()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


def unlimited_client(fake: FakePatchworks) -> PatchworksClient:
    """A client for ``fake`` whose limiter never has to wait."""
    return PatchworksClient(
        api_key=fake.api_key,
        core_url=fake.core_url,
        start_url=fake.start_url,
        login_url=fake.login_url,
        rate_limits=RateLimits(requests=UNLIMITED, per=60),
    )


class Bench:
    """The two senders, aimed at one fake server."""

    def __init__(
        self, fake: FakePatchworks, client: PatchworksClient, session: aiohttp.ClientSession
    ) -> None:
        self.fake = fake
        self.client = client
        self.session = session
        self.payload = make_payload()
        self.body = encode_start_body(
            FLOW_ID, VERSION_ID, self.payload, max_body_bytes=MAX_BODY_BYTES
        )
        self.url = f"{fake.start_url}/flows/{FLOW_ID}/start/{VERSION_ID}"
        # The headers the client's transport sends, byte for byte.
        self.headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
            "Authorization": fake.api_key,
        }
        self.raw_failures = 0

    async def send_raw(self) -> None:
        async with self.session.post(self.url, data=self.body, headers=self.headers) as reply:
            await reply.read()
            if reply.status != 200:
                self.raw_failures += 1

    async def send_client(self) -> None:
        await self.client.flows.start(FLOW_ID, VERSION_ID, self.payload)

    async def round(self, side: str, n: int) -> tuple[float, int, int]:
        """One round; returns requests/s, 429s seen by the server, and starts accepted."""
        self.fake.reset_records()
        send = self.send_raw if side == "raw" else self.send_client
        rate = await run_workers(n, CONCURRENCY, send)
        return rate, self.fake.throttled, len(self.fake.starts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument("-n", type=int, default=None, help="requests per round (3000; quick 300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side (3)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one round each")
    args = parser.parse_args(argv)
    n: int = args.n if args.n is not None else (300 if args.quick else 3000)
    rounds: int = max(1, args.rounds)
    return asyncio.run(run(n, rounds, args.profile))


async def run(n: int, rounds: int, profile: bool) -> int:
    async with FakePatchworks(requests_per_window=UNLIMITED, window=60.0) as fake:
        client = unlimited_client(fake)
        async with client, aiohttp.ClientSession() as session:
            bench = Bench(fake, client, session)
            payload_bytes = len(bench.body) - len(
                encode_start_body(FLOW_ID, VERSION_ID, "x", max_body_bytes=MAX_BODY_BYTES)
            )
            print(
                f"client_overhead: n={n} per round, {rounds} rounds each, concurrency "
                f"{CONCURRENCY}, body {len(bench.body)} bytes (payload ~{payload_bytes + 1})"
            )
            print(f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}")
            warm = max(100, n // 5)
            await bench.round("raw", warm)
            await bench.round("client", warm)

            rates: dict[str, list[float]] = {"raw": [], "client": []}
            throttled = 0
            missing_starts = 0
            print()
            print(f"{'round':>5}  {'side':<6}  {'req/s':>9}  {'429s':>5}  {'starts':>6}")
            for number in range(1, rounds + 1):
                for side in ("raw", "client"):
                    rate, refused, accepted = await bench.round(side, n)
                    rates[side].append(rate)
                    throttled += refused
                    missing_starts += n - accepted
                    print(f"{number:>5}  {side:<6}  {rate:>9.0f}  {refused:>5}  {accepted:>6}")

    raw = statistics.median(rates["raw"])
    cli = statistics.median(rates["client"])
    ratio = cli / raw
    pair_ratios = [c / r for r, c in zip(rates["raw"], rates["client"], strict=True)]
    added_us = (1 / cli - 1 / raw) * 1e6
    print()
    print(f"median raw aiohttp : {raw:9.0f} req/s")
    print(f"median client      : {cli:9.0f} req/s")
    print(
        f"per-round ratios   : {', '.join(f'{r:.3f}' for r in pair_ratios)} "
        f"(min {min(pair_ratios):.3f}, max {max(pair_ratios):.3f})"
    )
    print(f"added by client    : {added_us:9.1f} us/request (server shares the loop)")
    print(f"429s seen by server: {throttled}; starts missing: {missing_starts}; "
          f"raw non-200: {bench.raw_failures}")

    if profile:
        # Profile outside the timed rounds, with a fresh server: profiling slows everything.
        profiles = await profile_rounds(min(n, 2000))
        print(profiles)

    met = ratio >= GOAL_RATIO and throttled == 0 and missing_starts == 0
    print(
        f"RESULT: client/raw = {ratio:.3f} (goal >= {GOAL_RATIO}), "
        f"429s = {throttled}, {'goal met' if met else 'goal MISSED'}"
    )
    return 0


async def profile_rounds(n: int) -> str:
    """Profile one raw and one client round (inside the running loop, one task each)."""
    parts: list[str] = []
    async with FakePatchworks(requests_per_window=UNLIMITED, window=60.0) as fake:
        client = unlimited_client(fake)
        async with client, aiohttp.ClientSession() as session:
            bench = Bench(fake, client, session)
            await bench.round("raw", 200)
            await bench.round("client", 200)
            for side in ("raw", "client"):
                profiler = cProfile.Profile()
                profiler.enable()
                rate, _, _ = await bench.round(side, n)
                profiler.disable()
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                out.write(f"\n===== cProfile: {side}, {n} requests, {rate:.0f} req/s "
                          f"under the profiler =====\n")
                stats.sort_stats("tottime").print_stats(20)
                if side == "client":
                    stats.sort_stats("cumulative").print_stats(r"patchworks_async/(?!testing)", 25)
                parts.append(out.getvalue())
    return "".join(parts)


if __name__ == "__main__":
    sys.exit(main())
