"""A Laravel-throttled server in virtual time: the fake's pure throttle, latency, a co-tenant.

The limiter's behaviour against the server is a matter of timing: when a request arrives,
in which fixed window it is counted, when its reply comes back and what it says. Over real
sockets that depends on the machine's load; here it is exact and repeatable. The server is
``FixedWindowThrottle`` and ``CoTenant``, the very models ``FakePatchworks`` runs on; the
network is a seeded random latency on the way in (before the count) and, optionally, on
the way back; and the client is a pool of workers that acquire a slot, send, tell the
grant, and on a 429 pause every sender for ``Retry-After + 1`` and send again, as the
client's transport does.
"""

from __future__ import annotations

import asyncio
import bisect
import random
from collections.abc import Sequence

import attrs

from patchworks_async import InProcessRateLimiter, RequestKind
from patchworks_async.testing._co_tenant import CoTenant
from patchworks_async.testing._throttle import FixedWindowThrottle, Limit, Verdict

from .virtual_time import run_in_virtual_time


@attrs.frozen
class Run:
    """What reached the server: arrival times of the client's requests, and the refusals.

    Attributes:
        accepted: Arrival times of the client's admitted requests, in order.
        refused: Arrival times of the client's refused requests (429s), in order.
        refused_by: The client's 429s by the key of the refusing throttle.
        co_tenant_hits: The co-tenant's requests the server counted.
        co_tenant_refused: When the co-tenant's requests were refused (the client took
            their place), in order.
        requests, window: The server's limit.
        co_tenant: The co-tenant's share.
    """

    accepted: list[float]
    refused: list[float]
    refused_by: dict[str, int]
    co_tenant_hits: int
    co_tenant_refused: list[float]
    requests: int
    window: float
    co_tenant: float

    def refused_after(self, seconds: float) -> int:
        """429s that arrived after the first ``seconds`` (the first window, say)."""
        start = min(self.accepted[:1] + self.refused[:1], default=0.0)
        return len(self.refused) - bisect.bisect_left(self.refused, start + seconds)

    def co_tenant_refused_after(self, seconds: float) -> int:
        """The co-tenant's requests refused after the first ``seconds``."""
        return len(self.co_tenant_refused) - bisect.bisect_left(self.co_tenant_refused, seconds)

    def sustained(self) -> float:
        """Admitted arrivals per second from one window after the first on, over the rate
        the co-tenant leaves (the limit when alone)."""
        accepted = self.accepted
        steady = accepted[bisect.bisect_left(accepted, accepted[0] + self.window) :]
        rate = (len(steady) - 1) / (steady[-1] - steady[0])
        return rate / ((1 - self.co_tenant) * self.requests / self.window)

    def most_in_any_window(self) -> int:
        """The most admitted arrivals in any half-open window: the server's check is
        per fixed window, so this may exceed ``requests`` across a boundary."""
        times = self.accepted
        return max(
            (bisect.bisect_left(times, at + self.window, lo=i) - i for i, at in enumerate(times)),
            default=0,
        )


class ModelServer:
    """The account's throttles, with latency and an optional co-tenant.

    Args:
        requests, window: The account-wide limit.
        manual: The manual-initialise route's own limit, stacked inside the global one.
        latency: ``(low, high)``: each request arrives (is counted) that long after it
            left, drawn uniformly; the fake's own latency works this way.
        reply_latency: ``(low, high)``: the reply comes back that long after the count.
        co_tenant: Share of ``requests`` another consumer spends per window.
        headers: False: replies carry no ``X-RateLimit-*`` headers at all.
        seed: The latency draws' seed.
    """

    def __init__(
        self,
        requests: int,
        window: float,
        *,
        manual: int = 10,
        latency: tuple[float, float] = (0.0, 0.0),
        reply_latency: tuple[float, float] = (0.0, 0.0),
        co_tenant: float = 0.0,
        co_tenant_since: float = 0.0,
        headers: bool = True,
        seed: int = 1,
    ) -> None:
        self.limit = Limit("global", requests, window)
        self.stacks = {
            RequestKind.ORDINARY: [self.limit],
            RequestKind.START: [self.limit],
            RequestKind.MANUAL: [self.limit, Limit("manual", manual, window)],
        }
        self.throttle = FixedWindowThrottle()
        self.latency = latency
        self.reply_latency = reply_latency
        self.headers = headers
        self.co_tenant = co_tenant
        self._tenant = CoTenant(co_tenant, requests, window, co_tenant_since) if co_tenant else None
        self._rng = random.Random(seed)
        self.accepted: list[float] = []
        self.refused: list[float] = []
        self.co_tenant_refused: list[float] = []
        self.refused_by: dict[str, int] = {}
        self.sent: list[tuple[RequestKind, float]] = []

    async def send(self, kind: RequestKind = RequestKind.ORDINARY) -> tuple[int, dict[str, str]]:
        """One request: its status and headers, once its reply is back."""
        loop = asyncio.get_running_loop()
        self.sent.append((kind, loop.time()))
        await asyncio.sleep(self._rng.uniform(*self.latency))
        now = loop.time()
        if self._tenant is not None:
            self._tenant.replay(
                now, self._co_tenant_attempt, lambda at: not self.throttle.hits(self.limit, at)
            )
        verdict = self.throttle.attempt(self.stacks[kind], now)
        headers = {"X-RateLimit-Limit": str(verdict.limit)}
        if verdict.allowed:
            self.accepted.append(now)
            status = 200
            headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        else:
            self.refused.append(now)
            self.refused_by[verdict.key] = self.refused_by.get(verdict.key, 0) + 1
            status = 429
            headers["X-RateLimit-Remaining"] = "0"
            headers["Retry-After"] = str(verdict.retry_after)
        await asyncio.sleep(self._rng.uniform(*self.reply_latency))
        return status, headers if self.headers else {}

    def _co_tenant_attempt(self, at: float) -> Verdict:
        verdict = self.throttle.attempt([self.limit], at)
        if not verdict.allowed:
            self.co_tenant_refused.append(at)
        return verdict

    def run(self) -> Run:
        """What the server saw so far."""
        tenant = self._tenant
        return Run(
            accepted=sorted(self.accepted),
            refused=sorted(self.refused),
            refused_by=dict(self.refused_by),
            co_tenant_hits=0 if tenant is None else tenant.hits,
            co_tenant_refused=list(self.co_tenant_refused),
            requests=self.limit.max_attempts,
            window=self.limit.window,
            co_tenant=self.co_tenant,
        )


async def drive(
    limiter: InProcessRateLimiter,
    server: ModelServer,
    *,
    count: int,
    concurrency: int = 16,
    kinds: Sequence[RequestKind] = (RequestKind.ORDINARY,),
) -> Run:
    """Send ``count`` requests through ``limiter`` to ``server`` from ``concurrency`` workers.

    Each worker takes a slot, sends, tells the grant; on a 429 it pauses every sender for
    ``Retry-After + 1`` and sends again, as the client's transport does.
    """
    todo = iter(range(count))

    async def worker() -> None:
        for n in todo:
            kind = kinds[n % len(kinds)]
            while True:
                grant = await limiter.acquire(kind)
                status, headers = await server.send(kind)
                grant.replied(status, headers)
                if status != 429:
                    break
                await limiter.pause(float(headers.get("Retry-After", "1")) + 1.0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return server.run()


def simulate(
    limiter: InProcessRateLimiter,
    server: ModelServer,
    *,
    count: int,
    concurrency: int = 16,
    kinds: Sequence[RequestKind] = (RequestKind.ORDINARY,),
) -> Run:
    """:func:`drive` in virtual time."""
    return run_in_virtual_time(
        drive(limiter, server, count=count, concurrency=concurrency, kinds=kinds)
    )
