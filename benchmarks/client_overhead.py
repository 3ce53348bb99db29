"""Client overhead: requests/s through ``PatchworksClient`` versus raw aiohttp, side by side.

What it measures:
    N flow starts (``flows.start(101, 9001, payload)`` with a ~1 KB JSON payload) sent at a
    concurrency of 32 worker tasks through the client, versus the same number of raw
    ``aiohttp.ClientSession.post(url, data=body, headers=headers)`` calls carrying the very
    same body bytes (built once, up front, with ``encode_start_body``) and the same headers to
    the same URL, the reply read inside ``async with``. Rounds alternate (raw, client, raw,
    client, ...) after a warm-up of each (5 rounds of each side; 3 with ``--quick``), all in one
    process and one event loop, and the median requests/s of each side is compared.

    The rate limits are set far above the load (server and client alike: 10**9 a minute), so
    the client's limiter never waits: what is measured is the limiter's bookkeeping plus
    everything else the client does per call (serialising the payload, building the URL,
    auth, the retry wrapper, decoding the JSON reply, parsing rate-limit headers, the reply
    model).

    A third, informational side, "raw+enc", is raw aiohttp that also serialises the payload
    on every request (``encode_start_body`` per call), which is what an application using
    aiohttp directly would have to do; client/raw+enc separates the cost of the client's
    machinery from the cost of JSON encoding.

Goal:
    client requests/s >= 0.85 x raw aiohttp requests/s (ratio of the medians), with no 429
    (``fake.throttled == 0``) and every start accepted.

Caveat:
    ``FakePatchworks`` runs in the same process and event loop as the senders, so each
    request's server-side work (aiohttp's server, routing, the throttle model, validation,
    recording) is paid on the same core as the client's. Every side shares that cost equally,
    so the ratio is fair, but it *understates* the client's overhead relative to aiohttp
    alone: against a remote server the same added microseconds would be a larger fraction of
    each request. "added us/request" (1/client_rate - 1/raw_rate) is the cost the client adds
    per call on this machine, whatever the server costs.

The machine this runs on is noisy: only ratios measured in one run mean anything.
``--profile`` also runs one raw and one client round under cProfile and prints where the
client's extra time goes (profiled times are inflated, function-call-heavy code most).

Run: ``python benchmarks/client_overhead.py [--quick] [-n N] [--rounds K] [--profile]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import pstats
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import attrs

from patchworks_async import PatchworksClient, RateLimits, encode_start_body
from patchworks_async._transport import user_agent
from patchworks_async.testing import FakePatchworks, ServiceURLs, fake_patchworks_process

GOAL_RATIO = 0.85
FLOW_ID = 101
VERSION_ID = 9001
CONCURRENCY = 32
UNLIMITED = 10**9
MAX_BODY_BYTES = 8 * 1024 * 1024
SIDES = ("raw", "client", "raw+enc")

Send = Callable[[], Awaitable[None]]
ProfileRow = tuple[int, float]  # calls, own time in seconds


def make_payload(target_bytes: int = 1024) -> dict[str, object]:
    """An order batch whose compact JSON is about ``target_bytes`` long."""
    orders: list[dict[str, object]] = []
    payload: dict[str, object] = {"source": "benchmark", "orders": orders}
    index = 0
    while len(encode_start_body(1, None, payload, max_body_bytes=MAX_BODY_BYTES)) < target_bytes:
        orders.append(
            {
                "id": 100000 + index,
                "sku": f"SKU-{index:05d}",
                "qty": index % 7 + 1,
                "price": round(9.99 + index, 2),
                "ship_to": "GB",
            }
        )
        index += 1
    return payload


@attrs.frozen
class Target:
    """Where the senders aim: the fake's URLs, and the fake itself when it is in-process."""

    urls: ServiceURLs
    api_key: str
    fake: FakePatchworks | None = None


def unlimited_client(target: Target) -> PatchworksClient:
    """A client for ``target`` whose limiter never has to wait."""
    return PatchworksClient(
        api_key=target.api_key,
        **target.urls,
        rate_limits=RateLimits(requests=UNLIMITED, per=60),
    )


@contextlib.asynccontextmanager
async def serve(in_process: bool) -> AsyncIterator[Target]:
    """FakePatchworks in this process (sharing the loop), or in a process of its own."""
    if in_process:
        async with FakePatchworks(requests_per_window=UNLIMITED, window=60.0) as fake:
            yield Target(fake.urls, fake.api_key, fake)
        return
    async with fake_patchworks_process("--requests", str(UNLIMITED)) as remote:
        yield Target(remote.urls, remote.api_key)


@attrs.frozen
class Round:
    """One round of one side."""

    rate: float  # requests per second of wall time
    cpu_us: float  # process CPU time per request, in microseconds
    throttled: int  # 429s the server sent
    accepted: int  # starts the server accepted


async def run_workers(n: int, concurrency: int, send: Send) -> tuple[float, float]:
    """Send ``n`` requests from ``concurrency`` worker tasks.

    Returns:
        Requests per second of wall time, and microseconds of process CPU time per request
        (less disturbed than wall time by other tenants of the machine; the fake server's
        work is in it too).
    """
    jobs = iter(range(n))

    async def worker() -> None:
        for _ in jobs:  # one shared iterator: the workers split the jobs between them
            await send()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


class Bench:
    """The senders, aimed at one fake server."""

    def __init__(
        self, target: Target, client: PatchworksClient, session: aiohttp.ClientSession
    ) -> None:
        self.fake = target.fake
        self.client = client
        self.session = session
        self.payload = make_payload()
        self.body = self.encode()
        self.url = f"{target.urls['start_url']}/flows/{FLOW_ID}/start/{VERSION_ID}"
        # The headers the client's transport sends, byte for byte.
        self.headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
            "Authorization": target.api_key,
        }
        self.raw_failures = 0
        self.senders: dict[str, Send] = {
            "raw": self.send_raw,
            "client": self.send_client,
            "raw+enc": self.send_raw_encoding,
        }

    def encode(self) -> bytes:
        return encode_start_body(FLOW_ID, VERSION_ID, self.payload, max_body_bytes=MAX_BODY_BYTES)

    async def post(self, body: bytes) -> None:
        async with self.session.post(self.url, data=body, headers=self.headers) as reply:
            await reply.read()
            if reply.status != 200:
                self.raw_failures += 1

    async def send_raw(self) -> None:
        await self.post(self.body)

    async def send_raw_encoding(self) -> None:
        await self.post(self.encode())

    async def send_client(self) -> None:
        await self.client.flows.start(FLOW_ID, VERSION_ID, self.payload)

    async def round(self, side: str, n: int) -> Round:
        if self.fake is not None:
            self.fake.reset_records()
            self.fake.flow_runs.clear()  # every start leaves a run behind in the fake's store
        failures_before = self.raw_failures
        gc.collect()  # do not make one side pay for collecting the other's garbage
        # As timeit does, keep the cyclic collector out of the timed part: its passes scale
        # with everything alive in the process (the fake's records included), not with
        # the side being measured.
        gc.disable()
        try:
            rate, cpu_us = await run_workers(n, CONCURRENCY, self.senders[side])
        finally:
            gc.enable()
        if self.fake is not None:
            return Round(rate, cpu_us, self.fake.throttled, len(self.fake.starts))
        # Out of process the server's records are out of reach: the client raises on any
        # refusal, and raw counts its non-200s.
        return Round(rate, cpu_us, 0, n - (self.raw_failures - failures_before))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Client overhead versus raw aiohttp.")
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument("-n", type=int, default=None, help="requests per round (3000; quick 300)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each side (5; quick 3)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one round each")
    parser.add_argument(
        "--server-process",
        action="store_true",
        help="serve FakePatchworks from its own process instead of this event loop",
    )
    args = parser.parse_args(argv)
    n: int = max(1, args.n) if args.n is not None else (300 if args.quick else 3000)
    rounds: int = max(1, args.rounds) if args.rounds is not None else (3 if args.quick else 5)
    return asyncio.run(run(n, rounds, args.profile, in_process=not args.server_process))


async def run(n: int, rounds: int, profile: bool, in_process: bool = True) -> int:
    rounds_of: dict[str, list[Round]] = {side: [] for side in SIDES}
    throttled = 0
    missing_starts = 0
    async with (
        serve(in_process) as target,
        unlimited_client(target) as client,
        aiohttp.ClientSession() as session,
    ):
        bench = Bench(target, client, session)
        where = "in-process" if in_process else "in its own process"
        print(
            f"client_overhead: {n} starts per round, {rounds} rounds of each side, "
            f"concurrency {CONCURRENCY}, body {len(bench.body)} bytes; python "
            f"{sys.version.split()[0]}, aiohttp {aiohttp.__version__}; server {where}"
        )
        for side in SIDES:  # warm-up: connections, caches, code paths
            await bench.round(side, max(100, n // 5))
        print()
        print(
            f"{'round':>5}  {'side':<8}  {'req/s':>7}  {'CPU us/req':>10}  {'429s':>4}  "
            f"{'starts':>6}"
        )
        for number in range(1, rounds + 1):
            for side in SIDES:
                result = await bench.round(side, n)
                rounds_of[side].append(result)
                throttled += result.throttled
                missing_starts += n - result.accepted
                print(
                    f"{number:>5}  {side:<8}  {result.rate:>7.0f}  {result.cpu_us:>10.1f}  "
                    f"{result.throttled:>4}  {result.accepted:>6}"
                )
        raw_failures = bench.raw_failures

    rate = {side: statistics.median(r.rate for r in rounds_of[side]) for side in SIDES}
    cpu = {side: statistics.median(r.cpu_us for r in rounds_of[side]) for side in SIDES}
    ratio = rate["client"] / rate["raw"]
    per_round = [
        c.rate / r.rate for r, c in zip(rounds_of["raw"], rounds_of["client"], strict=True)
    ]
    print()
    print(f"{'side':<8}  {'median req/s':>12}  {'wall us/req':>11}  {'CPU us/req':>10}")
    for side in SIDES:
        print(f"{side:<8}  {rate[side]:>12.0f}  {1e6 / rate[side]:>11.1f}  {cpu[side]:>10.1f}")
    print()
    print(f"client/raw per round : {', '.join(f'{r:.3f}' for r in per_round)}")
    print(
        f"client/raw by CPU    : {cpu['raw'] / cpu['client']:.3f} "
        f"(raw CPU per request / client CPU per request)"
    )
    added_wall = 1e6 / rate["client"] - 1e6 / rate["raw"]
    added_enc = 1e6 / rate["client"] - 1e6 / rate["raw+enc"]
    print(
        f"added by the client  : {added_wall:.1f} us/request over raw "
        f"(CPU: {cpu['client'] - cpu['raw']:.1f}), {added_enc:.1f} over raw+enc "
        f"(CPU: {cpu['client'] - cpu['raw+enc']:.1f})"
    )
    print(
        f"429s seen by server  : {throttled}; starts missing: {missing_starts}; "
        f"raw non-200: {raw_failures}"
    )

    if profile:
        print(await profile_rounds(min(n, 3000)))

    met = ratio >= GOAL_RATIO and throttled == 0 and missing_starts == 0
    print(
        f"RESULT: client/raw = {ratio:.3f} (goal >= {GOAL_RATIO}; by CPU time "
        f"{cpu['raw'] / cpu['client']:.3f}), client/raw+enc = "
        f"{rate['client'] / rate['raw+enc']:.3f} (informational), 429s = {throttled}: "
        f"{'goal met' if met else 'goal MISSED'}"
    )
    return 0


def _own_times(profiler: cProfile.Profile) -> dict[tuple[str, int, str], ProfileRow]:
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {key: (row[1], row[2]) for key, row in stats.items()}


def _area(key: tuple[str, int, str]) -> str:
    """Group a profiled function by where it lives."""
    filename, _, name = key
    if "patchworks_async/testing" in filename:
        return "fake server"
    if "patchworks_async" in filename:
        return "patchworks_async"
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    if filename == "~":
        return f"builtin {name}"
    return "stdlib " + "/".join(filename.rsplit("/", 2)[-2:])


def _short(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    for marker in ("site-packages/", "/lib/python3."):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            if marker.startswith("/lib"):
                filename = filename.split("/", 1)[1]
    filename = filename.replace(sys.path[0] + "/", "")
    return f"{filename.rsplit('patchworks_async/', 1)[-1]}:{line}({name})"


async def profile_rounds(n: int) -> str:
    """Profile one raw and one client round; report the client's extra own time by area."""
    own: dict[str, dict[tuple[str, int, str], ProfileRow]] = {}
    async with (
        serve(in_process=True) as target,
        unlimited_client(target) as client,
        aiohttp.ClientSession() as session,
    ):
        bench = Bench(target, client, session)
        for side in ("raw", "client"):
            await bench.round(side, 300)
        for side in ("raw", "client"):
            profiler = cProfile.Profile()
            profiler.enable()
            await bench.round(side, n)
            profiler.disable()
            own[side] = _own_times(profiler)
    raw, cli = own["raw"], own["client"]
    lines = [f"\ncProfile, {n} requests each side: own time per request (us), client - raw"]
    areas: dict[str, float] = {}
    totals: dict[str, float] = {"raw": 0.0, "client": 0.0}
    for side, table in own.items():
        for key, (_, seconds) in table.items():
            totals[side] += seconds
            area = _area(key)
            areas[area] = areas.get(area, 0.0) + (seconds if side == "client" else -seconds)
    lines.append(
        f"  total: raw {totals['raw'] / n * 1e6:.1f}, client {totals['client'] / n * 1e6:.1f}, "
        f"extra {(totals['client'] - totals['raw']) / n * 1e6:.1f}"
    )
    lines.append("  by area:")
    for area, seconds in sorted(areas.items(), key=lambda item: -item[1])[:10]:
        lines.append(f"    {seconds / n * 1e6:7.1f}  {area}")
    lines.append("  by function (extra own time, extra calls per request):")
    diffs = []
    for key in raw.keys() | cli.keys():
        raw_calls, raw_seconds = raw.get(key, (0, 0.0))
        cli_calls, cli_seconds = cli.get(key, (0, 0.0))
        diffs.append((cli_seconds - raw_seconds, (cli_calls - raw_calls) / n, key))
    diffs.sort(reverse=True)
    for seconds, calls, key in diffs[:20]:
        lines.append(f"    {seconds / n * 1e6:7.1f}  {calls:5.1f}  {_short(key)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
