"""The fake's throttles as the routes meet them: which limits stack, and Laravel's headers.

``_throttle`` is the pure model of Laravel's fixed windows; this module applies it to the
Patchworks API. Every route counts against the account-wide limit; the manual-initialise
route also against its own, smaller one; and an account tier may cap start and manual
requests together. Admitted replies carry ``X-RateLimit-*`` headers and refusals are
Laravel's 429 with ``Retry-After``, so a client can be tested on how it reads them. A
co-tenant (``_co_tenant``), another consumer of the account, spends part of the same
account-wide budget; its hits are replayed before each request the throttle looks at.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from ._checks import check_int, check_positive
from ._co_tenant import CoTenant, check_co_tenant
from ._http import json_response
from ._routes import RouteKind
from ._throttle import FixedWindowThrottle, Limit, Verdict, whole_second_retry_after

__all__ = ["RateLimits", "rate_headers", "too_many_response"]


class RateLimits:
    """The stacked throttles of one fake account, and their open windows."""

    def __init__(
        self,
        *,
        requests_per_window: int,
        manual_per_window: int,
        starts_per_window: int | None,
        window: float,
        co_tenant: float = 0.0,
    ) -> None:
        """Validate the settings and stack the limits of each kind of route.

        Args:
            requests_per_window: The account-wide throttle, shared by every API route.
            manual_per_window: The extra throttle on the manual-initialise route.
            starts_per_window: Optional tier cap on start + manual requests.
            window: Length in seconds of every throttle window.
            co_tenant: The share of the account-wide budget another consumer spends, from
                now on (0: none).

        Raises:
            ValueError: On a setting out of range.
        """
        window = check_positive("window", window)
        co_tenant = check_co_tenant(co_tenant)
        account = Limit("global", check_int("requests_per_window", requests_per_window), window)
        manual = Limit("manual", check_int("manual_per_window", manual_per_window), window)
        starts = None
        if starts_per_window is not None:
            starts = Limit("starts", check_int("starts_per_window", starts_per_window), window)
        self.settings = (
            account.max_attempts,
            manual.max_attempts,
            None if starts is None else starts.max_attempts,
            window,
        )
        """``(requests, manual, starts, window)`` as configured: what a client should keep."""
        tier = [starts] if starts is not None else []
        # Outermost first, as Laravel's middleware runs; built once, not per request.
        self._stacks: dict[RouteKind, list[Limit]] = {
            "core": [account],
            "login": [account],
            "start": [account, *tier],
            "manual": [account, manual, *tier],
        }
        self._throttle = FixedWindowThrottle()
        self._co_tenant: CoTenant | None = None
        self.set_co_tenant(co_tenant, time.monotonic())

    @property
    def co_tenant(self) -> float:
        """The share of the account-wide budget the co-tenant spends (0: none)."""
        return 0.0 if self._co_tenant is None else self._co_tenant.share

    def set_co_tenant(self, share: float, now: float) -> None:
        """Let a co-tenant spend ``share`` of every window from ``now`` on (0 stops it).

        A new share starts a new steady stream at ``now``; the counts start again.
        """
        share = check_co_tenant(share)
        if self._co_tenant is not None:
            self._catch_up(now)  # what the old one spent until now still counts
        requests, window = self.settings[0], self.settings[3]
        self._co_tenant = CoTenant(share, requests, window, now) if share else None

    def co_tenant_state(self, now: float) -> dict[str, Any]:
        """The co-tenant's share and what became of its requests until ``now``: counted
        (``hits``) or refused (429s: the client took their place)."""
        tenant = self._co_tenant
        if tenant is None:
            return {"share": 0.0, "hits": 0, "refused": 0}
        self._catch_up(now)
        return {"share": tenant.share, "hits": tenant.hits, "refused": tenant.refused}

    def attempt(self, kind: RouteKind, at: float) -> Verdict:
        """Check and count one request to a route of ``kind`` that arrived at ``at``."""
        if self._co_tenant is not None:
            self._catch_up(at)
        return self._throttle.attempt(self._stacks[kind], at)

    def reset(self) -> None:
        """Close every window, as if the server's cache had been flushed.

        A co-tenant keeps its pace, but its hits before now are forgotten with the windows,
        and so are its counts.
        """
        self._throttle.reset()
        tenant = self._co_tenant
        if tenant is not None:
            tenant.skip(time.monotonic())
            tenant.hits = tenant.refused = 0

    def _catch_up(self, now: float) -> None:
        """Replay the co-tenant's requests due by ``now``, each at its own time."""
        tenant = self._co_tenant
        assert tenant is not None
        ordinary = self._stacks["core"]
        account = ordinary[0]
        tenant.replay(
            now,
            lambda at: self._throttle.attempt(ordinary, at),
            lambda at: not self._throttle.hits(account, at),
        )


def rate_headers(verdict: Verdict) -> dict[str, str]:
    """Headers Laravel adds to every response its throttle admitted."""
    return {
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": str(verdict.remaining),
    }


def too_many_response(verdict: Verdict) -> web.Response:
    """Build Laravel's 429 for a refused request.

    ``Retry-After`` and ``X-RateLimit-Reset`` come from whole-second wall-clock
    timestamps, as Laravel computes them, so ``Retry-After`` can be up to 1 s short.
    """
    wall_now = time.time()
    retry_after = whole_second_retry_after(verdict.window_ends_in, wall_now)
    headers = {
        "Retry-After": str(retry_after),
        "X-RateLimit-Reset": str(math.floor(wall_now) + retry_after),
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": "0",
    }
    return json_response(429, {"message": "Too Many Attempts."}, headers)
