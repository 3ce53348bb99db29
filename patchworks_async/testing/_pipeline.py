"""How the fake handles one request: every check, in the order the real stack applies it.

Status codes and throttle accounting only match the real service if the checks run in the
same order, so this module is that order, step by step:

1. arrival latency (models network delay, so it happens before anything is counted);
   then a ``"before"`` hold waits here, and the request arrives when it is released;
2. injected faults that act *before* processing (a proxy or load balancer failing);
3. body size, like nginx's ``client_max_body_size`` (413, not counted);
4. authentication (401, not counted); the login route skips 4 to 6;
5. throttles, global then manual then starts (429, not counted by the refusing throttle);
6. ``Content-Type`` of a request with a body (415, counted);
7. route logic and validation (200, 201, 204, 400, 404, 409, 422);
8. injected faults that act *after* processing (the work is done, the reply is lost);
   then an ``"after"`` hold keeps the reply until it is released.

Each step asks one collaborator (``Auth``, ``RateLimits``, ``FaultInjector``, ``Holds``,
the route handlers) and every outcome is written to ``Records``. The ``/_fake/`` admin
routes (records, switches, holds) bypass all of it: no auth, no throttle, no faults,
never held.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
from aiohttp import web

from ._auth import Auth
from ._faults import FaultInjector
from ._holds import Holds
from ._http import (
    Call,
    Handler,
    Shutdown,
    json_response,
    message_response,
    parse_object,
    read_body,
)
from ._rate_limits import RateLimits, rate_headers, too_many_response
from ._records import Records
from ._routes import ADMIN_PREFIX, Match, kind_of_path, match_route
from ._throttle import Verdict

__all__ = ["RequestPipeline", "check_latency"]

_MSG_TOO_LARGE: Final = (
    "The payload is too large. Reduce the payload size by splitting the data and "
    "sending over multiple calls."
)


def check_latency(value: float | tuple[float, float]) -> float | tuple[float, float]:
    """Validate a latency setting: a delay >= 0 or a (min, max) range for uniform jitter.

    Raises:
        ValueError: On a negative delay or a range that is not ``0 <= min <= max``.
    """
    if isinstance(value, tuple):
        low, high = value
        if not 0 <= low <= high:
            raise ValueError(f"latency range must satisfy 0 <= min <= max, got {value!r}")
        return (float(low), float(high))
    if not value >= 0:
        raise ValueError(f"latency must be >= 0, got {value!r}")
    return float(value)


@attrs.frozen
class _Outcome:
    """The response decided by steps 3 to 7, and whether after-faults may apply."""

    response: web.Response
    processed: bool = False
    verdict: Verdict | None = None


def _no_route(match: Match) -> web.Response:
    """JSON 404/405 like Laravel's, instead of aiohttp's HTML pages."""
    if match.status == 405:
        return json_response(
            405, {"message": "Method Not Allowed"}, {"Allow": ", ".join(match.allow)}
        )
    return message_response(404, "Not Found")


class RequestPipeline:
    """The one aiohttp handler of a fake: runs each request through the steps in order.

    Attributes:
        max_body_bytes: Largest request body accepted; one byte more is a 413.
        latency: Arrival delay in seconds, fixed or a ``(min, max)`` range (checked by
            the caller with ``check_latency``).
    """

    def __init__(
        self,
        *,
        auth: Auth,
        rate_limits: RateLimits,
        records: Records,
        faults: FaultInjector,
        holds: Holds,
        shutdown: Shutdown,
        handlers: Mapping[str, Handler],
        configure: Callable[..., dict[str, Any]],
        state: Callable[[], dict[str, Any]],
        max_body_bytes: int,
        latency: float | tuple[float, float],
        seed: int | None,
    ) -> None:
        """Wire the steps to the collaborators that decide them.

        Args:
            auth: Step 4, and the login route.
            rate_limits: Step 5.
            records: Where every request is recorded with the status it got.
            faults: Steps 2 and 8.
            holds: Where a request (step 1) or its reply (step 8) may wait.
            shutdown: Ends the latency sleep when the fake closes.
            handlers: Step 7: each route's logic, by the handler name its route gives.
            configure: Sets the fake's switches (``POST /_fake/settings``); raises
                ValueError on a bad one.
            state: What the fake saw, as JSON-ready data (``GET /_fake/state``).
            max_body_bytes: Step 3's limit.
            latency: Step 1's delay.
            seed: Seed of the jitter RNG, for reproducible arrival times.
        """
        self._auth = auth
        self._rate_limits = rate_limits
        self._records = records
        self._faults = faults
        self._holds = holds
        self._shutdown = shutdown
        self._handlers = handlers
        self._configure = configure
        self._state = state
        self.max_body_bytes = max_body_bytes
        self.latency = latency
        self._rng = random.Random(seed)

    def sample_latency(self) -> float:
        """Draw this request's arrival delay (seeded, so runs are reproducible)."""
        if isinstance(self.latency, tuple):
            return self._rng.uniform(*self.latency)
        return self.latency

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Run one request through the checks in the order the real stack applies them."""
        if request.path.startswith(ADMIN_PREFIX):
            return await self._admin(request)
        await self._shutdown.sleep(self.sample_latency())
        body, oversize = await read_body(request, self.max_body_bytes)
        kind = kind_of_path(request.path)
        hold = self._holds.catching(kind)
        if hold is not None and hold.when == "before":
            await self._holds.park(hold, request)
        # The server acts once the whole request is in (and let go, if it was held): that
        # instant is its arrival, when the throttle counts it.
        call = Call(request=request, body=body, kind=kind, at=time.monotonic())
        response = await self._respond(call, oversize)
        if hold is not None and hold.when == "after":
            await self._holds.park(hold, request)
        return response

    async def _respond(self, call: Call, oversize: bool) -> web.StreamResponse:
        """Steps 2 to 8: before-faults, processing, after-faults; record what was sent."""
        fault = self._faults.take(call.kind, before=True)
        if fault is not None:
            return await self._faults.fire_before(call, fault)
        outcome = self._process(call, oversize)
        if outcome.processed:
            fault = self._faults.take(call.kind, before=False)
            if fault is not None:
                return await self._faults.fire_after(call, fault, outcome.response, outcome.verdict)
        self._records.record(call, outcome.response.status)
        return outcome.response

    def _process(self, call: Call, oversize: bool) -> _Outcome:
        """Steps 3 to 7: size, routing, auth, throttle, media type, route logic."""
        if oversize:
            return _Outcome(message_response(413, _MSG_TOO_LARGE))
        match = match_route(call.request.method, call.request.path)
        if match.route is None:
            return _Outcome(_no_route(match))
        if match.route.kind == "login":
            self._records.login_count += 1
            return _Outcome(self._auth.login(call.body), processed=True)
        if not self._auth.authenticated(call.request.headers.get("Authorization")):
            return _Outcome(message_response(401, "Unauthenticated."))
        verdict = self._rate_limits.attempt(match.route.kind, call.at)
        if not verdict.allowed:
            self._records.count_throttled(verdict.key)
            return _Outcome(too_many_response(verdict))
        if call.body and call.request.content_type.lower() != "application/json":
            response = message_response(415, "Unsupported Media Type")
        else:
            response = self._handlers[match.route.handler](call, match.params)
        response.headers.update(rate_headers(verdict))
        return _Outcome(response, processed=True, verdict=verdict)

    async def _admin(self, request: web.Request) -> web.Response:
        """``/_fake/...``: records, switches and holds, for a fake in another process.

        Outside the API: no auth, no throttle, no faults, never held.
        """
        if request.path == f"{ADMIN_PREFIX}state" and request.method == "GET":
            return web.json_response(self._state())
        if request.path == f"{ADMIN_PREFIX}reset" and request.method == "POST":
            self._records.reset()
            self._rate_limits.reset()
            return web.json_response({"message": "reset"})
        if request.path == f"{ADMIN_PREFIX}settings" and request.method == "POST":
            switches = parse_object(await request.read())
            try:
                if switches is None:
                    raise ValueError("the body must be a JSON object")
                return web.json_response(self._configure(**switches))
            except ValueError as exc:
                return message_response(400, str(exc))
        return await self._holds.admin(request)
