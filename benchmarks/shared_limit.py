"""Shared limit: N worker processes on one account's budget through Redis, versus one process.

What it measures:
    ``FakePatchworks`` runs in a process of its own with Laravel's fixed-window throttle
    shrunk to ``R`` requests per ``W`` seconds (default 60 per 3 s) and arrival latency
    jittered uniformly in ``[0, J]`` (default ``W / 120`` = 25 ms, below the client's
    margin of ``W / 60`` = 50 ms). A redis-server of the benchmark's own runs beside it.
    For each configuration, worker processes (``sys.executable -c``) push flow starts
    (``flows.start``, 4 concurrent tasks each) for a fixed time, all starting together:

    * ``in-process``: one process with the default ``InProcessRateLimiter`` (the baseline);
    * ``redis xN`` for N = 1, 2, 4: N processes, each with
      ``RedisRateLimiter(url, account=..., rate_limits=RateLimits(R, per=W))``.

    From the server's arrival times (``GET /_fake/state``) it reports:

    * sustained: accepted arrivals per second from one window after the first arrival to
      the last, as a fraction of the limit ``R / W`` (expected ``W / (W + margin)`` =
      0.984: the margin is the whole cost);
    * 429s: requests the server refused (goal: none);
    * max in W: the most arrivals in any ``W`` seconds (must be <= R);
    * min share: the smallest worker's part of the requests (1/N is fair);
    * calls/req: script calls on Redis per request, counted by Redis itself (``INFO
      commandstats``: EVALSHA calls after ``CONFIG RESETSTAT``, once every worker is
      connected) and by the limiters (``script_calls``). No polling: goal exactly 1.

Goal:
    every ``redis xN`` sustains >= 0.97 of the limit, draws zero 429s, never has more than
    R arrivals in any W seconds, and makes one Redis round trip per request.

Needs ``redis-server`` on PATH (``apt-get install redis-server``); without it the benchmark
says so and exits 0. The machine is noisy, but every figure is a ratio or a count from one
run.

Run: ``python benchmarks/shared_limit.py [--quick] [--seconds S] [--requests R]
[--window W] [--jitter J]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
from _measure import max_in_window, sustained_fraction
from redis.asyncio import Redis

from patchworks_async.testing import fake_patchworks_process

GOAL_SUSTAINED = 0.97
CONCURRENCY = 4

WORKER = """
import asyncio, json, sys, time
from patchworks_async import PatchworksClient, RateLimits

config = json.loads(sys.argv[1])

async def main():
    urls = dict(config["urls"])
    api_key = urls.pop("api_key")
    limits = RateLimits(requests=config["requests"], per=config["window"])
    if config["redis_url"]:
        from patchworks_async import RedisRateLimiter
        limiter = RedisRateLimiter(
            config["redis_url"], account=config["account"], rate_limits=limits
        )
        client = PatchworksClient(api_key=api_key, **urls, limiter=limiter)
    else:
        limiter = None
        client = PatchworksClient(api_key=api_key, **urls, rate_limits=limits)
    sent = 0
    async with client as pw:
        if limiter is not None:
            await limiter.acquire()  # connected and subscribed before the start signal
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        calls = limiter.script_calls if limiter is not None else 0
        deadline = time.monotonic() + config["seconds"]

        async def push():
            nonlocal sent
            while time.monotonic() < deadline:
                await pw.flows.start(101, 9001, {"order": sent})
                sent += 1

        await asyncio.gather(*(push() for _ in range(config["concurrency"])))
        calls = (limiter.script_calls if limiter is not None else 0) - calls
        if limiter is not None:
            await limiter.aclose()
    print(json.dumps({"sent": sent, "calls": calls}))

asyncio.run(main())
"""


# ---------------------------------------------------------------------------- redis-server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server(binary: str) -> Iterator[str]:
    """A redis-server of our own on a free loopback port, without persistence."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="shared-limit-redis-") as directory:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                directory,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not answers_ping(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


# ---------------------------------------------------------------------------- one run


@attrs.frozen
class Outcome:
    """What one configuration did to the server."""

    name: str
    processes: int
    sent: int
    refused: int
    sustained: float | None
    max_in_window: int
    min_share: float
    calls_by_redis: float | None  # EVALSHA per request, from INFO commandstats
    calls_by_limiters: float | None  # script calls per request, counted by the limiters


def fake_server(requests: int, window: float, jitter: float) -> Any:
    """FakePatchworks in its own process: a shrunken window, arrival latency jittered."""
    return fake_patchworks_process(
        "--requests", str(requests), "--window", str(window), "--latency", f"0,{jitter}"
    )


async def evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    row = stats.get("cmdstat_evalsha", {})
    return int(row.get("calls", 0)) if isinstance(row, dict) else 0


async def run_config(
    name: str,
    processes: int,
    redis_url: str | None,
    *,
    requests: int,
    window: float,
    jitter: float,
    seconds: float,
) -> Outcome:
    """Run ``processes`` workers against a fresh fake server; judge from its arrivals."""
    account = f"bench-{uuid.uuid4().hex[:8]}"
    async with fake_server(requests, window, jitter) as fake:
        config = {
            "urls": {**fake.urls, "api_key": fake.api_key},
            "redis_url": redis_url,
            "account": account,
            "requests": requests,
            "window": window,
            "seconds": seconds,
            "concurrency": CONCURRENCY,
        }
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(processes)
        ]
        admin = Redis.from_url(redis_url) if redis_url else None
        try:
            for worker in workers:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), 60)
                if line.strip() != b"ready":
                    raise RuntimeError(f"a worker failed to start: {line!r}")
            if admin is not None:
                await admin.config_resetstat()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            outputs = [await asyncio.wait_for(w.communicate(), seconds + 60) for w in workers]
            evalsha = await evalsha_calls(admin) if admin is not None else None
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
            if admin is not None:
                await admin.aclose()
        if any(worker.returncode != 0 for worker in workers):
            raise RuntimeError(f"{name}: a worker failed")
        state = await fake.state()
    reports = [json.loads(stdout.splitlines()[-1]) for stdout, _ in outputs]
    arrivals = sorted(at for at, _ in state["arrivals"])
    accepted = sorted(at for at, status in state["arrivals"] if status == 200)
    sent = [report["sent"] for report in reports]
    total = len(arrivals)
    return Outcome(
        name=name,
        processes=processes,
        sent=total,
        refused=state["throttled"],
        sustained=sustained_fraction(accepted, requests, window),
        max_in_window=max_in_window(arrivals, window),
        min_share=min(sent) / max(1, sum(sent)),
        calls_by_redis=None if evalsha is None else evalsha / max(1, total),
        calls_by_limiters=(
            None if redis_url is None else sum(r["calls"] for r in reports) / max(1, total)
        ),
    )


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="N processes sharing one limit through Redis.")
    parser.add_argument("--quick", action="store_true", help="short smoke run (CI)")
    parser.add_argument(
        "--seconds", type=float, default=None, help="push time per configuration (4 W; quick 2 W)"
    )
    parser.add_argument("--requests", type=int, default=60, help="R, requests per window (60)")
    parser.add_argument(
        "--window", type=float, default=None, help="W, window in seconds (3.0; quick 1.5)"
    )
    parser.add_argument("--jitter", type=float, default=None, help="J, max latency (W / 120)")
    args = parser.parse_args(argv)
    window: float = args.window if args.window is not None else (1.5 if args.quick else 3.0)
    seconds: float = args.seconds if args.seconds is not None else window * (2 if args.quick else 4)
    jitter: float = args.jitter if args.jitter is not None else window / 120
    binary = shutil.which("redis-server")
    if binary is None:
        print("shared_limit: redis-server is not on PATH (apt-get install redis-server)")
        print("RESULT: not run: redis-server is missing")
        return 0
    with redis_server(binary) as url:
        return asyncio.run(run(url, args.requests, window, jitter, seconds))


async def run(redis_url: str, requests: int, window: float, jitter: float, seconds: float) -> int:
    margin = window / 60
    print(
        f"shared_limit: server {requests} per {window:g} s (fixed window), latency uniform in "
        f"[0, {jitter * 1000:.0f} ms]; client margin {margin * 1000:.0f} ms (expected "
        f"sustained {window / (window + margin):.3f}); {seconds:g} s of starts per "
        f"configuration, {CONCURRENCY} tasks per process; python {sys.version.split()[0]}"
    )
    configs: list[tuple[str, int, str | None]] = [
        ("in-process", 1, None),
        *((f"redis x{n}", n, redis_url) for n in (1, 2, 4)),
    ]
    outcomes = []
    for name, processes, url in configs:
        outcomes.append(
            await run_config(
                name,
                processes,
                url,
                requests=requests,
                window=window,
                jitter=jitter,
                seconds=seconds,
            )
        )

    print()
    header = (
        f"{'limiter':<11}  {'procs':>5}  {'sent':>5}  {'429s':>4}  {'sustained':>9}  "
        f"{'max in W':>8}  {'min share':>9}  {'calls/req (redis)':>17}  {'(limiters)':>10}"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        print(
            f"{o.name:<11}  {o.processes:>5}  {o.sent:>5}  {o.refused:>4}  "
            f"{fmt(o.sustained):>9}  {f'{o.max_in_window}/{requests}':>8}  "
            f"{o.min_share:>9.2f}  {fmt(o.calls_by_redis):>17}  {fmt(o.calls_by_limiters):>10}"
        )
    print()
    print("sustained: accepted arrivals per second over the steady part / (R / W)")
    print("min share: the smallest process's part of the requests (fair: 1 / procs)")

    shared = [o for o in outcomes if o.calls_by_redis is not None]
    worst = min((o.sustained or 0.0) for o in shared)
    refused = sum(o.refused for o in shared)
    calls = max(max(o.calls_by_redis or 0.0, o.calls_by_limiters or 0.0) for o in shared)
    met = (
        worst >= GOAL_SUSTAINED
        and refused == 0
        and all(o.max_in_window <= requests for o in shared)
        and all(o.calls_by_redis == o.calls_by_limiters == 1.0 for o in shared)
    )
    baseline = outcomes[0]
    print(
        f"RESULT: shared through Redis, 1/2/4 processes: worst sustained = {worst:.3f} of "
        f"the limit (goal >= {GOAL_SUSTAINED}; in-process {fmt(baseline.sustained)}), "
        f"429s = {refused} (goal 0), Redis calls per request = {calls:.3f} (goal 1): "
        f"{'goal met' if met else 'goal MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
