"""Client overhead: requests/s through ``PatchworksClient`` versus what you would write without it.

What it measures:
    N flow starts (``flows.start(101, 9001, payload)`` with a ~1 KB JSON payload) sent at a
    concurrency of 32 worker tasks, three ways, side by side in one process and one event loop:

    * ``client``: ``PatchworksClient.flows.start``.
    * ``peer``: the fair comparison, a hand-rolled client built the way a careful user would
      build one (``HandRolledClient`` below): an aiohttp session, an
      ``aiolimiter.AsyncLimiter``, ``backoff.on_exception`` retrying connections that were
      never made, the body encoded with ``json.dumps`` on every call, the reply read with
      ``await response.json()`` after ``raise_for_status()``. It sends the very same bytes
      (checked at start-up). It does less than the client: no 429 handling, no rate-limit
      headers, no sliding log that keeps a Laravel window, no outcome classification, no
      reply model; client/peer is what that machinery costs.
    * ``raw``: a floor, not a peer: ``aiohttp.ClientSession.post(url, data=body, headers=...)``
      with a body encoded once, up front, and the client's headers, the reply read with
      ``read()`` and not decoded. No encoding, no limiter, no retry wrapper, no JSON.

    After a warm-up of each side, rounds follow one another (6 rounds of N = 2000 starts
    for each side; 3 of 300 with ``--quick``), the order of the sides rotating from round
    to round so that each side goes first equally often, and the median requests/s (and
    median CPU time per request) of each side is compared. The rate limits are set far
    above the load (server, client and peer alike: 10**9 a minute), so no limiter ever
    waits: what is measured is the limiter's bookkeeping plus everything else each side
    does per call.

    By default the fake server runs in a process of its own (``fake_patchworks_process``),
    so this process's CPU time per request is the sender's alone, and "by CPU" ratios
    compare the senders' costs without the wall-clock noise of other tenants. The server
    sits on the other core; if it is the bottleneck, wall-clock ratios move towards 1, and
    CPU ratios do not. ``--in-process`` serves ``FakePatchworks`` from this event loop
    instead (the old default): every side then pays the server's work on the same core, which
    dilutes every ratio towards 1 and *understates* the client's overhead.

Goal:
    client throughput >= 0.85 x the hand-rolled peer's, with no 429 and every start
    accepted, judged by CPU time per request (median peer CPU us/request over the client's):
    that is the ratio of requests/s when the sender is the bottleneck, and other tenants of
    the machine disturb it far less than wall time. The ratio of median requests/s is
    printed beside it (on a busy machine its rounds swing widely: quote it as a range over
    runs). client/raw is printed too, as the floor it is.

The machine this runs on is noisy: only ratios measured in one run mean anything, and one
run's ratio is one sample (quote a range over several runs). ``--profile`` also runs one
round of each side under cProfile, timed by this process's CPU clock so that waiting on the
server is not counted, and prints where the client's extra time goes (profiled times are
inflated, function-call-heavy code most). It profiles this process only: with the
server in its own process that is the senders alone; with ``--in-process`` the fake's
handlers are in every side's figures (the "fake server" area), which the differences cancel.

Run: ``python benchmarks/client_overhead.py [--quick] [-n N] [--rounds K] [--profile]
[--in-process]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import pstats
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import attrs
import backoff
from aiolimiter import AsyncLimiter

from patchworks_async import PatchworksClient, RateLimits, encode_start_body
from patchworks_async._protocol import user_agent
from patchworks_async.testing import FakePatchworks, ServiceURLs, fake_patchworks_process

GOAL_RATIO = 0.85
FLOW_ID = 101
VERSION_ID = 9001
CONCURRENCY = 32
UNLIMITED = 10**9
MAX_BODY_BYTES = 8 * 1024 * 1024
SIDES = ("raw", "peer", "client")
COMPACT = (",", ":")

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


class HandRolledClient:
    """The peer: a Patchworks start client as a careful user would write it on aiohttp.

    One session with the credentials as default headers, one ``AsyncLimiter`` created in
    the running loop, retries through ``backoff`` only for connections that were never made
    (resending a start that may have arrived could start the flow twice), the body encoded
    on every call, the reply checked and decoded.
    """

    def __init__(self, start_url: str, api_key: str, requests_per_minute: int) -> None:
        self.start_url = start_url
        self.api_key = api_key
        self.requests_per_minute = requests_per_minute

    async def __aenter__(self) -> HandRolledClient:
        self.limiter = AsyncLimiter(self.requests_per_minute, 60)
        self.session = aiohttp.ClientSession(
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Authorization": self.api_key,
            }
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.session.close()

    @staticmethod
    def encode(flow_id: int, version_id: int, payload: object) -> bytes:
        """The start body: the payload as a JSON string inside a JSON object."""
        body = {
            "payload": json.dumps(payload, separators=COMPACT),
            "flow_id": flow_id,
            "version_id": version_id,
        }
        return json.dumps(body, separators=COMPACT).encode()

    @backoff.on_exception(backoff.expo, aiohttp.ClientConnectorError, max_tries=4)
    async def start_flow(self, flow_id: int, version_id: int, payload: object) -> Any:
        body = self.encode(flow_id, version_id, payload)
        async with (
            self.limiter,
            self.session.post(
                f"{self.start_url}/flows/{flow_id}/start/{version_id}", data=body
            ) as response,
        ):
            response.raise_for_status()
            return await response.json()


@attrs.frozen
class Target:
    """Where the senders aim, and how to read what the server saw."""

    urls: ServiceURLs
    api_key: str
    # Clears the server's records and returns what it saw since the last call:
    # (429s, starts accepted).
    counts: Callable[[], Awaitable[tuple[int, int]]]


@contextlib.asynccontextmanager
async def serve(in_process: bool) -> AsyncIterator[Target]:
    """A fresh FakePatchworks in this process (sharing the loop), or in a process of its own."""
    if in_process:
        async with FakePatchworks(requests_per_window=UNLIMITED, window=60.0) as fake:

            async def in_process_counts() -> tuple[int, int]:
                counts = fake.throttled, len(fake.starts)
                fake.reset_records()
                fake.clear_runs()  # every start leaves a run, a log and a payload behind
                return counts

            yield Target(fake.urls, fake.api_key, in_process_counts)
        return
    async with fake_patchworks_process("--requests", str(UNLIMITED)) as remote:

        async def remote_counts() -> tuple[int, int]:
            state = await remote.state()
            await remote.reset()  # the records only: the runs stay (no route clears them)
            return state["throttled"], len(state["starts"])

        yield Target(remote.urls, remote.api_key, remote_counts)


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
        (less disturbed than wall time by other tenants of the machine; with the server
        in-process, its work is in it too).
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
    """The three senders, aimed at one fake server."""

    def __init__(
        self,
        target: Target,
        client: PatchworksClient,
        peer: HandRolledClient,
        session: aiohttp.ClientSession,
    ) -> None:
        self.counts = target.counts
        self.client = client
        self.peer = peer
        self.session = session
        self.payload = PAYLOAD
        self.body = encode_start_body(
            FLOW_ID, VERSION_ID, self.payload, max_body_bytes=MAX_BODY_BYTES
        )
        if peer.encode(FLOW_ID, VERSION_ID, self.payload) != self.body:
            raise AssertionError("the peer must send the very bytes the client sends")
        self.url = f"{target.urls['start_url']}/flows/{FLOW_ID}/start/{VERSION_ID}"
        # The headers the client's transport sends, byte for byte.
        self.headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
            "Authorization": target.api_key,
        }
        self.senders: dict[str, Send] = {
            "raw": self.send_raw,
            "peer": self.send_peer,
            "client": self.send_client,
        }

    async def send_raw(self) -> None:
        async with self.session.post(self.url, data=self.body, headers=self.headers) as reply:
            await reply.read()

    async def send_peer(self) -> None:
        await self.peer.start_flow(FLOW_ID, VERSION_ID, self.payload)

    async def send_client(self) -> None:
        await self.client.flows.start(FLOW_ID, VERSION_ID, self.payload)

    async def round(self, side: str, n: int, profiler: cProfile.Profile | None = None) -> Round:
        await self.counts()  # start from empty records
        gc.collect()  # do not make one side pay for collecting the other's garbage
        # As timeit does, keep the cyclic collector out of the timed part: its passes scale
        # with everything alive in the process (an in-process fake's records included), not
        # with the side being measured.
        gc.disable()
        if profiler is not None:
            profiler.enable()
        try:
            rate, cpu_us = await run_workers(n, CONCURRENCY, self.senders[side])
        finally:
            if profiler is not None:
                profiler.disable()
            gc.enable()
        throttled, accepted = await self.counts()
        return Round(rate, cpu_us, throttled, accepted)


PAYLOAD = make_payload()


@contextlib.asynccontextmanager
async def fresh_bench(in_process: bool) -> AsyncIterator[Bench]:
    """A fresh server and fresh senders: no side inherits another's records or connections.

    The fake allocates ids by scanning every id it holds, so its cost per start grows with
    the starts it has stored, and a remote fake's runs cannot be cleared: one server for
    the whole run would slow down round after round and become the bottleneck.
    """
    async with (
        serve(in_process) as target,
        PatchworksClient(
            api_key=target.api_key,
            **target.urls,
            rate_limits=RateLimits(requests=UNLIMITED, per=60),
        ) as client,
        HandRolledClient(target.urls["start_url"], target.api_key, UNLIMITED) as peer,
        aiohttp.ClientSession() as session,
    ):
        yield Bench(target, client, peer, session)


async def measure(
    side: str, n: int, in_process: bool, profiler: cProfile.Profile | None = None
) -> Round:
    """One round of one side against a fresh server, after a warm-up on it."""
    async with fresh_bench(in_process) as bench:
        await bench.round(side, max(100, n // 10))  # connections, caches, code paths
        return await bench.round(side, n, profiler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Client overhead versus a hand-rolled aiohttp client and raw aiohttp."
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument("-n", type=int, default=None, help="requests per round (2000; quick 300)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each side (6; quick 2)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one round each")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--in-process",
        action="store_true",
        help="serve FakePatchworks from this event loop (dilutes every ratio towards 1)",
    )
    where.add_argument(
        "--server-process",
        action="store_true",
        help="serve FakePatchworks from its own process (the default and recommended mode)",
    )
    args = parser.parse_args(argv)
    n: int = max(1, args.n) if args.n is not None else (300 if args.quick else 2000)
    rounds: int = max(1, args.rounds) if args.rounds is not None else (2 if args.quick else 6)
    return asyncio.run(run(n, rounds, args.profile, in_process=args.in_process))


async def run(n: int, rounds: int, profile: bool, in_process: bool = False) -> int:
    rounds_of: dict[str, list[Round]] = {side: [] for side in SIDES}
    throttled = 0
    missing_starts = 0
    where = "in this process (ratios diluted)" if in_process else "in its own process"
    body = encode_start_body(FLOW_ID, VERSION_ID, PAYLOAD, max_body_bytes=MAX_BODY_BYTES)
    print(
        f"client_overhead: {n} starts per round, {rounds} rounds of each side, "
        f"concurrency {CONCURRENCY}, body {len(body)} bytes (the same on every side); "
        f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}; server {where}, "
        f"a fresh one for every round"
    )
    print(
        "sides: client = PatchworksClient; peer = hand-rolled aiohttp + AsyncLimiter + "
        "backoff + json.dumps/response.json(); raw = aiohttp posting pre-encoded bytes, "
        "reply not decoded (a floor)"
    )
    print()
    print(
        f"{'round':>5}  {'side':<6}  {'req/s':>7}  {'CPU us/req':>10}  {'429s':>4}  {'starts':>6}"
    )
    for number in range(1, rounds + 1):
        shift = (number - 1) % len(SIDES)  # rotate the order: no side always goes first
        for side in SIDES[shift:] + SIDES[:shift]:
            result = await measure(side, n, in_process)
            rounds_of[side].append(result)
            throttled += result.throttled
            missing_starts += n - result.accepted
            print(
                f"{number:>5}  {side:<6}  {result.rate:>7.0f}  {result.cpu_us:>10.1f}  "
                f"{result.throttled:>4}  {result.accepted:>6}"
            )

    rate = {side: statistics.median(r.rate for r in rounds_of[side]) for side in SIDES}
    cpu = {side: statistics.median(r.cpu_us for r in rounds_of[side]) for side in SIDES}
    print()
    print(f"{'side':<6}  {'median req/s':>12}  {'wall us/req':>11}  {'CPU us/req':>10}")
    for side in SIDES:
        print(f"{side:<6}  {rate[side]:>12.0f}  {1e6 / rate[side]:>11.1f}  {cpu[side]:>10.1f}")
    print()
    cpu_note = "" if in_process else " (this process only: the senders, not the server)"
    print(f"ratios: by req/s (medians), by CPU (other's CPU us/req / client's){cpu_note}")
    print(f"{'':<12}  {'by req/s':>8}  {'by CPU':>6}   per round (req/s)")
    for other, label in (("peer", "client/peer"), ("raw", "client/raw")):
        per_round = [
            c.rate / o.rate for o, c in zip(rounds_of[other], rounds_of["client"], strict=True)
        ]
        print(
            f"{label:<12}  {rate['client'] / rate[other]:>8.3f}  "
            f"{cpu[other] / cpu['client']:>6.3f}   {', '.join(f'{r:.3f}' for r in per_round)}"
        )
    print(
        "added by the client : "
        + ", ".join(
            f"{1e6 / rate['client'] - 1e6 / rate[other]:.1f} us/request over {other} "
            f"(CPU {cpu['client'] - cpu[other]:.1f})"
            for other in ("peer", "raw")
        )
    )
    print(f"429s seen by server : {throttled}; starts missing: {missing_starts}")
    if profile:
        print(await profile_rounds(min(n, 3000), in_process), end="")

    ratio = cpu["peer"] / cpu["client"]
    met = ratio >= GOAL_RATIO and throttled == 0 and missing_starts == 0
    print(
        f"RESULT: client/peer by CPU = {ratio:.3f} (goal >= {GOAL_RATIO}; by req/s "
        f"{rate['client'] / rate['peer']:.3f}), client/raw by CPU = "
        f"{cpu['raw'] / cpu['client']:.3f} (by req/s {rate['client'] / rate['raw']:.3f}; "
        f"pre-encoded floor, informational), 429s = {throttled}: "
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
    if Path(filename).name == Path(__file__).name:
        return "this benchmark (peer, workers)"
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


async def profile_rounds(n: int, in_process: bool) -> str:
    """Profile one round of each side, each against a fresh server; report the client's
    extra own time, by area and by function, over the peer (and by area over raw)."""
    own: dict[str, dict[tuple[str, int, str], ProfileRow]] = {}
    for side in SIDES:
        # CPU time, not wall time: waiting on the server (epoll) and other tenants' turns
        # on the core are not the senders' cost.
        profiler = cProfile.Profile(time.process_time)
        await measure(side, n, in_process, profiler)
        own[side] = _own_times(profiler)
    scope = (
        "this process, the fake's handlers included on every side"
        if in_process
        else "this process only: the senders (the server runs in its own process)"
    )
    lines = [f"\ncProfile, {n} requests each side, {scope}: own CPU time per request (us)"]
    totals = {side: sum(seconds for _, seconds in own[side].values()) for side in SIDES}
    lines.append(
        "  total: "
        + ", ".join(f"{side} {totals[side] / n * 1e6:.1f}" for side in SIDES)
        + f"; client extra over peer {(totals['client'] - totals['peer']) / n * 1e6:.1f}, "
        f"over raw {(totals['client'] - totals['raw']) / n * 1e6:.1f}"
    )
    areas: dict[str, dict[str, float]] = {}
    for side in SIDES:
        for key, (_, seconds) in own[side].items():
            row = areas.setdefault(_area(key), dict.fromkeys(SIDES, 0.0))
            row[side] += seconds / n * 1e6
    lines.append(f"  by area: {'client':>7} {'peer':>7} {'raw':>7}  area")
    for area, row in sorted(areas.items(), key=lambda item: -max(item[1].values()))[:12]:
        lines.append(
            f"           {row['client']:7.1f} {row['peer']:7.1f} {row['raw']:7.1f}  {area}"
        )
    lines.append("  by function, client - peer (extra own time us, extra calls per request):")
    diffs = []
    peer, cli = own["peer"], own["client"]
    for key in peer.keys() | cli.keys():
        peer_calls, peer_seconds = peer.get(key, (0, 0.0))
        cli_calls, cli_seconds = cli.get(key, (0, 0.0))
        diffs.append((cli_seconds - peer_seconds, (cli_calls - peer_calls) / n, key))
    diffs.sort(reverse=True)
    for seconds, calls, key in diffs[:20]:
        lines.append(f"    {seconds / n * 1e6:7.1f}  {calls:5.1f}  {_short(key)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
