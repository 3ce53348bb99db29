"""Redis stopped and started again under load: the limit holds at both switches.

Three worker processes push flow starts through ``RedisRateLimiter(on_unavailable="local")``
into one FakePatchworks of its own process (40 requests per 2 s). The test stops its
redis-server while they send, lets them run on their local shares, starts it again and lets
them return to the shared grid, then judges from the server's arrival times: no window of the
server's ``per`` seconds may hold more than ``requests`` arrivals, and nothing may be throttled.

Processes rather than tasks: each worker has its own event loop, clock and connections, so
it learns of the outage and of Redis's return at its own moment, as real workers do; in one
event loop the limiters would share the timer's lateness and their probes' schedule. The
workers probe Redis at different periods (0.1, 0.3 and 0.5 s) with the same lease
(``2 * (recheck_every + timeout)`` = 1.2 s, which is what the limiter requires), so that
they come back at different moments, as workers whose probes are out of phase do: the first
one back must not book at the grid's rate while the others still send on their shares.

Nothing waits on a guess. Each worker prints a line per request it completes, saying whether
its limiter was falling back; the test moves to the next step (stop Redis, start it, stop the
workers) only once every worker has reported enough requests of the expected kind. The
property checked does not depend on when those steps happen, only the coverage does.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from patchworks_async.testing import fake_patchworks_process

from ..support import redis_server as fixtures
from ..support.redis_server import RedisServer

own_redis_server = fixtures.own_redis_server  # one of the test's own, to stop and restart

R, W, LATENCY = 40, 2.0, 0.005  # the fake's limit: 40 per 2 s; the limiter's span 2.033 s
PROBES = [(0.1, 0.5), (0.3, 0.3), (0.5, 0.1)]
"""Each worker's ``recheck_every`` and ``timeout``: one lease, probes out of phase."""
WORKERS = len(PROBES)
STEP_TIMEOUT = 30.0
"""Seconds a step may take before the test gives up (a hung worker, not a slow one)."""

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys

    from patchworks_async import PatchworksClient, RateLimits, RedisRateLimiter, RetryPolicy

    config = json.loads(sys.argv[1])


    async def main():
        urls = dict(config["urls"])
        api_key = urls.pop("api_key")
        limiter = RedisRateLimiter(
            config["redis_url"], account=config["account"],
            rate_limits=RateLimits(**config["limits"]), on_unavailable="local",
            expected_workers=config["workers"], recheck_every=config["probe"][0],
            timeout=config["probe"][1],
        )
        loop = asyncio.get_running_loop()
        commands = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(commands), sys.stdin
        )
        stopping = asyncio.Event()
        sent = {"shared": 0, "local": 0}
        async with limiter, PatchworksClient(
            api_key=api_key, **urls, limiter=limiter, retry=RetryPolicy(backoff_base=0)
        ) as pw:
            # One request before the start signal: connected to Redis and to the server,
            # so that no first-request delay eats the margin once the workers compete.
            await pw.flows.start(101, 9001, {"n": "warm-up"})
            print("ready", flush=True)
            assert (await commands.readline()).strip() == b"go"

            async def push():
                while not stopping.is_set():
                    await pw.flows.start(101, 9001, {"n": sum(sent.values())})
                    mode = "local" if limiter.falling_back else "shared"
                    sent[mode] += 1
                    print("sent", mode, flush=True)

            async def stop():
                assert (await commands.readline()).strip() == b"stop"
                stopping.set()

            await asyncio.gather(stop(), *(push() for _ in range(config["concurrency"])))
        print(json.dumps(sent), flush=True)


    asyncio.run(main())
    """
)


class Worker:
    """One worker process, and what it has reported so far."""

    def __init__(self, process: asyncio.subprocess.Process, changed: asyncio.Condition) -> None:
        self.process = process
        self.sent: Counter[str] = Counter()
        self.report: dict[str, int] | None = None
        self._changed = changed

    async def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def read(self) -> None:
        """Count the worker's ``sent`` lines until it exits; keep its final report."""
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            words = line.decode().split()
            if words[:1] == ["sent"]:
                self.sent[words[1]] += 1
            elif line.startswith(b"{"):
                self.report = json.loads(line)
            async with self._changed:
                self._changed.notify_all()


async def until(changed: asyncio.Condition, done: Callable[[], bool]) -> None:
    """Wait until the workers' reports make ``done()`` true."""
    async with changed:
        await asyncio.wait_for(changed.wait_for(done), STEP_TIMEOUT)


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` (sorted) in any half-open interval ``[t, t + window)``."""
    return max(
        (bisect.bisect_left(times, start + window, lo=i) - i for i, start in enumerate(times)),
        default=0,
    )


async def test_the_limit_holds_when_redis_stops_and_starts_under_load(
    own_redis_server: RedisServer,
) -> None:
    server = own_redis_server
    fake_options = ("--requests", str(R), "--window", str(W), "--latency", str(LATENCY))
    async with fake_patchworks_process(*fake_options) as fake:
        config = {
            "urls": {**fake.urls, "api_key": fake.api_key},
            "redis_url": server.url,
            "account": f"switch-{uuid.uuid4().hex[:8]}",
            "limits": {"requests": R, "per": W},
            "workers": WORKERS,
            "concurrency": 4,
        }
        changed = asyncio.Condition()
        workers = [
            Worker(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    WORKER,
                    json.dumps({**config, "probe": probe}),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                ),
                changed,
            )
            for probe in PROBES
        ]
        readers: list[asyncio.Task[None]] = []
        try:
            for worker in workers:
                assert worker.process.stdout is not None
                ready = await asyncio.wait_for(worker.process.stdout.readline(), STEP_TIMEOUT)
                assert ready.strip() == b"ready"
            readers = [asyncio.ensure_future(worker.read()) for worker in workers]
            for worker in workers:
                await worker.command("go")

            # 1. Every worker on the shared grid, for more than a window in all.
            await until(changed, lambda: all(w.sent["shared"] >= 15 for w in workers))
            await asyncio.to_thread(server.stop)
            # 2. Every worker on its local share for more than a window (13 a window each).
            await until(changed, lambda: all(w.sent["local"] >= 15 for w in workers))
            shared_before = [w.sent["shared"] for w in workers]
            await asyncio.to_thread(server.start)
            # 3. Every worker back on the grid, for more than a window in all.
            await until(
                changed,
                lambda: all(
                    w.sent["shared"] >= before + 12
                    for w, before in zip(workers, shared_before, strict=True)
                ),
            )
            for worker in workers:
                await worker.command("stop")
            await asyncio.wait_for(asyncio.gather(*readers), STEP_TIMEOUT)
            codes = [await asyncio.wait_for(w.process.wait(), STEP_TIMEOUT) for w in workers]
        finally:
            for task in readers:
                task.cancel()
            for worker in workers:
                if worker.process.returncode is None:
                    worker.process.kill()
                    await worker.process.wait()
        state: dict[str, Any] = await fake.state()
    assert codes == [0] * WORKERS
    assert [w.report for w in workers] == [dict(w.sent) for w in workers]
    arrivals = sorted(at for at, _ in state["arrivals"])
    assert max_in_window(arrivals, W) <= R, max_in_window(arrivals, W)
    assert state["throttled"] == 0
    assert len(arrivals) == WORKERS + sum(sum(w.sent.values()) for w in workers)  # + warm-ups
