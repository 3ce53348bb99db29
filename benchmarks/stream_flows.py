"""Streaming a long list: ``flows.list()`` with and without prefetch versus a raw aiohttp loop.

What it measures:
    N flows (10,000; 2,000 with ``--quick``) are streamed at ``per_page=100`` from
    ``FakePatchworks`` with 30 ms of server latency on every request (``latency=0.03``) and
    limits far above the load (server ``requests_per_window=10**9``, client
    ``RateLimits(requests=10**9, per=60)``, so no limiter ever waits), by three sides:

    * (a) raw: a plain sequential page loop in raw aiohttp: ``GET {core_url}/flows?page=N
      &per_page=100`` with the headers the client's transport sends, the body parsed with
      ``json.loads``, stopping when ``page`` reaches ``meta.last_page``;
    * (b) client: ``async for flow in pw.flows.list(per_page=100)``;
    * (c) prefetch: ``async for flow in pw.flows.list(per_page=100, prefetch=True)``, which
      creates the task fetching page N+1 just before handing page N over (its request
      leaves as soon as the consumer next yields to the event loop).

    The consumer: every item's id is marked in a preallocated bitmap (no allocation per
    item), and after each page of items the consumer awaits ``asyncio.sleep(0.03)``: 30 ms
    of async work per page (writing the page to a database, calling another service), which
    is what a caller that processes what it receives does, and what prefetch can overlap
    with the next request. A second variant has no consumer work at all (the loop only
    marks ids), where prefetch has nothing to overlap: the loop never yields to the event
    loop inside a page, so the prefetch request leaves only when the loop awaits the next
    page, as it would without prefetch.

    Rounds alternate (raw, client, prefetch; with work, then without) after a short
    warm-up of each side (3 pages, with the server's latency set to 0, as for the
    yardsticks below), all in one process and one event loop, and the median wall time
    of each side is compared: client/raw and prefetch/raw. The cyclic GC is kept out of
    the timed part, as timeit does.

    Memory: one extra pass of each side (with the consumer work) runs under ``tracemalloc``,
    started just before and stopped just after the iteration, so "peak" is the most memory
    the pass itself had allocated at any one time (response bytes, decoded JSON, models,
    the in-flight prefetch; the consumer's id bitmap is allocated before). Two yardsticks,
    traced once each: the whole list held as ``Flow`` models (built through the client,
    what ``[f async for f in pw.flows.list()]`` costs), and one page in flight: a full
    page's response body, its decoded JSON and its 100 models held at once. A streaming
    side's peak must be a page or two in flight, not the list, and must not grow with N
    (compare a ``--quick`` run, 5 times shorter, with a full one).

    Checks, on every pass: each side saw exactly N items with N distinct ids, the very ids
    the server holds, and the server received exactly ceil(N / 100) requests, for pages
    1 to ceil(N / 100) once each, all answered 200; prefetch sends no extra page.

    The fake server runs in a child process (spawned; steered over a pipe to reset and
    read its request records between passes), not in this one: tracemalloc counts every
    allocation in its process, and an in-process fake (which copies and sorts all N flows
    and serialises a page on every request) would add its own memory to each side's peak
    and its CPU time to each side's loop.

Goal:
    with the consumer work, prefetch's wall time <= 0.6 x the raw loop's (ratio of the
    medians; ideal 0.5: the 30 ms wait and the 30 ms of work overlap), with every check
    passed and the peak of (b) and (c) at most 3 pages in flight (``MEMORY_BOUND_PAGES``),
    whatever N.

The machine this runs on is noisy: only ratios measured in one run mean anything.

Run: ``python benchmarks/stream_flows.py [--quick] [-n N] [--rounds K] [--work MS]
[--latency MS]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import attrs

from patchworks_async import Flow, PatchworksClient, RateLimits
from patchworks_async._pagination import parse_page
from patchworks_async._transport import user_agent
from patchworks_async.testing import FakePatchworks

GOAL_RATIO = 0.6
PER_PAGE = 100
UNLIMITED = 10**9
WARM_UP_PAGES = 3
MEMORY_BOUND_PAGES = 3
SIDES = ("raw", "client", "prefetch")
LABELS = {"raw": "(a) raw", "client": "(b) client", "prefetch": "(c) prefetch"}

Received = list[tuple[str, str, dict[str, str], int]]  # method, path, query, status
Side = Callable[["Tally", float, int | None], Awaitable[None]]


# ---------------------------------------------------------------- the server (child process)


def serve(conn: Connection, flows: int, latency: float) -> None:
    """Child process: run a ``FakePatchworks`` holding ``flows`` flows until told to stop."""
    asyncio.run(_serve(conn, flows, latency))


async def _serve(conn: Connection, flows: int, latency: float) -> None:
    async with FakePatchworks(requests_per_window=UNLIMITED, window=60.0, latency=latency) as fake:
        fake.add_flows(max(0, flows - len(fake.flows)))  # flow 101 is seeded already
        conn.send(
            {
                "core_url": fake.core_url,
                "start_url": fake.start_url,
                "login_url": fake.login_url,
                "api_key": fake.api_key,
                "ids": sorted(fake.flows),
            }
        )
        loop = asyncio.get_running_loop()
        while True:
            try:
                command = await loop.run_in_executor(None, conn.recv)
            except EOFError:  # the parent is gone
                return
            if command == "reset":
                fake.reset_records()
                conn.send(None)
            elif isinstance(command, tuple) and command[0] == "latency":
                fake.latency = command[1]
                conn.send(None)
            elif command == "received":
                conn.send([(r.method, r.path, r.query, r.status) for r in fake.received])
            else:
                return


class Server:
    """The parent's handle on the fake server in its child process."""

    def __init__(self, flows: int, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=serve, args=(child_end, flows, latency), name="fake-patchworks", daemon=True
        )
        self._process.start()
        child_end.close()
        if not self._conn.poll(60):
            self.close()
            raise RuntimeError("the fake server did not start within 60 s")
        info: dict[str, Any] = self._conn.recv()
        self.core_url: str = info["core_url"]
        self.start_url: str = info["start_url"]
        self.login_url: str = info["login_url"]
        self.api_key: str = info["api_key"]
        self.ids: list[int] = info["ids"]

    def reset(self) -> None:
        """Clear the server's request records (between passes, outside any timing)."""
        self._conn.send("reset")
        self._conn.recv()

    def set_latency(self, seconds: float) -> None:
        """Change the server's latency (0 for the untimed set-up passes)."""
        self._conn.send(("latency", seconds))
        self._conn.recv()

    def received(self) -> Received:
        """What the server received since the last reset."""
        self._conn.send("received")
        result: Received = self._conn.recv()
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)
        self._conn.close()


# ---------------------------------------------------------------- the sides


class Tally:
    """What a consumer saw: a bitmap of ids, allocated before any tracing starts."""

    __slots__ = ("count", "seen", "stray")

    def __init__(self, size: int) -> None:
        self.seen = bytearray(size)
        self.count = 0
        self.stray = 0

    def mark(self, flow_id: int) -> None:
        self.count += 1
        if 0 <= flow_id < len(self.seen):
            self.seen[flow_id] = 1
        else:
            self.stray += 1


@attrs.frozen
class Pass:
    """One pass of one side over the whole list."""

    side: str
    work: float
    wall: float  # seconds
    peak: int  # bytes traced at the peak (memory passes only, else 0)
    requests: int
    problems: tuple[str, ...]


class Bench:
    """The three sides, aimed at one server, and the checks of what they saw."""

    def __init__(
        self, server: Server, client: PatchworksClient, session: aiohttp.ClientSession
    ) -> None:
        self.server = server
        self.client = client
        self.session = session
        self.total = len(server.ids)
        self.pages = math.ceil(self.total / PER_PAGE)
        self.expected = bytearray(max(server.ids) + 1)
        for flow_id in server.ids:
            self.expected[flow_id] = 1
        self.url = f"{server.core_url}/flows"
        # The headers the client's transport sends on a GET, byte for byte.
        self.headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
            "Authorization": server.api_key,
        }
        self.sides: dict[str, Side] = {
            "raw": self.stream_raw,
            "client": self.stream_client,
            "prefetch": self.stream_prefetch,
        }

    async def stream_raw(self, tally: Tally, work: float, max_pages: int | None) -> None:
        page = 1
        while True:
            url = f"{self.url}?page={page}&per_page={PER_PAGE}"
            async with self.session.get(url, headers=self.headers) as reply:
                raw = await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"GET {url} -> {reply.status}: {raw[:200]!r}")
            body = json.loads(raw)
            for item in body["data"]:
                tally.mark(item["id"])
            if work:
                await asyncio.sleep(work)
            if page >= body["meta"]["last_page"] or page == max_pages:
                return
            page += 1

    async def stream_client(self, tally: Tally, work: float, max_pages: int | None) -> None:
        await self._stream(tally, work, max_pages, prefetch=False)

    async def stream_prefetch(self, tally: Tally, work: float, max_pages: int | None) -> None:
        await self._stream(tally, work, max_pages, prefetch=True)

    async def _stream(
        self, tally: Tally, work: float, max_pages: int | None, *, prefetch: bool
    ) -> None:
        max_items = None if max_pages is None else max_pages * PER_PAGE
        flows = self.client.flows.list(per_page=PER_PAGE, prefetch=prefetch, max_items=max_items)
        async with flows:
            async for flow in flows:
                tally.mark(flow.id)
                if work and tally.count % PER_PAGE == 0:  # a page of items: work on it
                    await asyncio.sleep(work)
        if work and tally.count % PER_PAGE:  # the last, short page
            await asyncio.sleep(work)

    async def warm_up(self) -> None:
        """Connections, caches, code paths: a few pages of each side."""
        for side in SIDES:
            await self.sides[side](Tally(len(self.expected)), 0.0, WARM_UP_PAGES)

    async def run(self, side: str, work: float, *, trace: bool = False) -> Pass:
        """One pass of ``side`` over the whole list, timed, or traced with ``trace``."""
        self.server.reset()
        tally = Tally(len(self.expected))
        stream = self.sides[side]
        gc.collect()  # do not make one side pay for collecting the other's garbage
        if trace:
            tracemalloc.start()
        else:
            gc.disable()
        try:
            started = time.perf_counter()
            await stream(tally, work, None)
            wall = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] if trace else 0
        finally:
            if trace:
                tracemalloc.stop()
            else:
                gc.enable()
        received = self.server.received()
        return Pass(side, work, wall, peak, len(received), self.check(tally, received))

    def check(self, tally: Tally, received: Received) -> tuple[str, ...]:
        problems = []
        if tally.count != self.total:
            problems.append(f"{tally.count} items, not {self.total}")
        if tally.stray or tally.seen != self.expected:
            distinct = sum(a & b for a, b in zip(tally.seen, self.expected, strict=True))
            problems.append(f"{distinct} of the {self.total} ids seen, {tally.stray} unknown ids")
        pages = sorted(
            int(query.get("page", "0"))
            for method, path, query, _ in received
            if method == "GET" and path.endswith("/flows")
        )
        if len(received) != self.pages or pages != list(range(1, self.pages + 1)):
            problems.append(
                f"{len(received)} requests (pages {pages[:3]}...{pages[-3:]}), expected "
                f"{self.pages}: pages 1 to {self.pages} once each"
            )
        statuses = sorted({status for *_, status in received} - {200})
        if statuses:
            problems.append(f"statuses other than 200: {statuses}")
        if any(query.get("per_page") != str(PER_PAGE) for _, _, query, _ in received):
            problems.append(f"a request without per_page={PER_PAGE}")
        return tuple(problems)

    async def whole_list(self) -> tuple[int, int]:
        """Traced bytes held by the whole list as ``Flow`` models, and its length."""
        gc.collect()
        tracemalloc.start()
        try:
            flows = [flow async for flow in self.client.flows.list(per_page=PER_PAGE)]
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return held, len(flows)

    async def page_in_flight(self) -> int:
        """Bytes of one full page held in all its forms at once: the response body, its
        decoded JSON and its ``Flow`` models (what a loop has while it turns one into the
        next)."""
        url = f"{self.url}?page=1&per_page={PER_PAGE}"
        async with self.session.get(url, headers=self.headers) as reply:
            raw = await reply.read()
        parse_page(json.loads(raw), Flow, page_number=1, per_page=PER_PAGE)  # warm caches
        gc.collect()
        tracemalloc.start()
        try:
            body = json.loads(raw)
            page = parse_page(body, Flow, page_number=1, per_page=PER_PAGE)
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        if len(page.items) != min(PER_PAGE, self.total) or len(body["data"]) != len(page.items):
            raise RuntimeError(f"page 1 has {len(page.items)} flows")
        return sys.getsizeof(raw) + held


# ---------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Streaming a list: prefetch versus raw.")
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument("-n", type=int, default=None, help="flows listed (10000; quick 2000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each side (3; quick 2)")
    parser.add_argument("--work", type=float, default=30.0, help="consumer work per page, ms (30)")
    parser.add_argument("--latency", type=float, default=30.0, help="server latency, ms (30)")
    args = parser.parse_args(argv)
    n: int = max(1, args.n) if args.n is not None else (2000 if args.quick else 10000)
    rounds: int = max(1, args.rounds) if args.rounds is not None else (2 if args.quick else 3)
    work: float = max(0.0, args.work) / 1000
    latency: float = max(0.0, args.latency) / 1000
    server = Server(n, latency)
    try:
        return asyncio.run(run(server, rounds, work, latency))
    finally:
        server.close()


def kib(size: int) -> str:
    return f"{size / 1024:.0f}"


async def run(server: Server, rounds: int, work: float, latency: float) -> int:
    client = PatchworksClient(
        api_key=server.api_key,
        core_url=server.core_url,
        start_url=server.start_url,
        login_url=server.login_url,
        rate_limits=RateLimits(requests=UNLIMITED, per=60),
    )
    works = (work, 0.0) if work else (0.0,)
    passes: list[Pass] = []
    async with client, aiohttp.ClientSession() as session:
        bench = Bench(server, client, session)
        print(
            f"stream_flows: {bench.total} flows, per_page {PER_PAGE} ({bench.pages} pages), "
            f"server latency {latency * 1000:g} ms, consumer work {work * 1000:g} ms a page "
            f"(and none); {rounds} rounds; python {sys.version.split()[0]}, aiohttp "
            f"{aiohttp.__version__}; server in a child process"
        )
        server.set_latency(0.0)  # the untimed set-up needs no latency
        await bench.warm_up()
        list_bytes, list_length = await bench.whole_list()
        page_bytes = await bench.page_in_flight()
        server.set_latency(latency)
        memory = {side: await bench.run(side, work, trace=True) for side in SIDES}
        print()
        print(f"{'round':>5}  {'work ms':>7}  {'side':<12}  {'wall s':>6}  {'requests':>8}  check")
        for number in range(1, rounds + 1):
            for per_page_work in works:
                for side in SIDES:
                    result = await bench.run(side, per_page_work)
                    passes.append(result)
                    print(
                        f"{number:>5}  {per_page_work * 1000:>7g}  {LABELS[side]:<12}  "
                        f"{result.wall:>6.2f}  {result.requests:>8}  "
                        f"{'; '.join(result.problems) or 'ok'}"
                    )

    wall = {
        (w, side): statistics.median(p.wall for p in passes if p.work == w and p.side == side)
        for w in works
        for side in SIDES
    }
    print()
    print(f"{'work ms':>7}  {'side':<12}  {'median s':>8}  {'ms/page':>7}  {'/raw':>5}  per round")
    for w in works:
        raw = [p.wall for p in passes if p.work == w and p.side == "raw"]
        for side in SIDES:
            mine = [p.wall for p in passes if p.work == w and p.side == side]
            per_round = ", ".join(f"{m / r:.3f}" for m, r in zip(mine, raw, strict=True))
            print(
                f"{w * 1000:>7g}  {LABELS[side]:<12}  {wall[w, side]:>8.3f}  "
                f"{wall[w, side] / bench.pages * 1000:>7.1f}  "
                f"{wall[w, side] / wall[w, 'raw']:>5.3f}  {per_round}"
            )
    ideal = max(latency, work) / (latency + work) if latency + work else 1.0
    print(f"(ideal prefetch/raw with the work, overhead aside: {ideal:.3f})")

    print()
    print(
        f"memory (tracemalloc, one pass each, {work * 1000:g} ms of work a page); the whole "
        f"list of {list_length} Flow models held: {kib(list_bytes)} KiB; one page in flight "
        f"(its body, decoded JSON and models at once): {kib(page_bytes)} KiB"
    )
    print(f"{'side':<12}  {'peak KiB':>8}  {'pages':>5}  {'% of list':>9}  {'wall s':>6}  check")
    for side in SIDES:
        m = memory[side]
        print(
            f"{LABELS[side]:<12}  {kib(m.peak):>8}  {m.peak / page_bytes:>5.2f}  "
            f"{m.peak / list_bytes * 100:>9.1f}  {m.wall:>6.2f}  {'; '.join(m.problems) or 'ok'}"
        )
    print(
        "pages: the peak over one page in flight (bound for the client: <= "
        f"{MEMORY_BOUND_PAGES}, whatever N)"
    )

    problems = sum(len(p.problems) for p in [*passes, *memory.values()])
    if list_length != bench.total:
        problems += 1
        print(f"the whole list had {list_length} flows, not {bench.total}")
    ratio_b = wall[works[0], "client"] / wall[works[0], "raw"]
    ratio_c = wall[works[0], "prefetch"] / wall[works[0], "raw"]
    client_peak = max(memory["client"].peak, memory["prefetch"].peak)
    bounded = client_peak <= MEMORY_BOUND_PAGES * page_bytes
    met = ratio_c <= GOAL_RATIO and problems == 0 and bounded and work > 0
    no_work = (
        f"; with no work: client/raw {wall[0.0, 'client'] / wall[0.0, 'raw']:.3f}, "
        f"prefetch/raw {wall[0.0, 'prefetch'] / wall[0.0, 'raw']:.3f}"
        if work
        else ""
    )
    print(
        f"RESULT: with {work * 1000:g} ms work a page: client/raw = {ratio_b:.3f}, "
        f"prefetch/raw = {ratio_c:.3f} (goal <= {GOAL_RATIO}){no_work}; peak client "
        f"{kib(memory['client'].peak)} KiB, prefetch {kib(memory['prefetch'].peak)} KiB "
        f"(at most {client_peak / page_bytes:.2f} pages in flight, bound {MEMORY_BOUND_PAGES}; "
        f"raw {kib(memory['raw'].peak)} KiB), the whole list {kib(list_bytes)} KiB; "
        f"check failures {problems}: {'goal met' if met else 'goal MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
