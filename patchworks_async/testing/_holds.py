"""Holds: requests, or their replies, parked in the fake until the test lets them go.

Tests of stopping and cancelling a client must order events ("these N requests are on the
wire and the server has them; now the client stops; now the replies go") instead of racing
sleeps. ``ReplyHold`` is one hold as a test drives it; ``Holds`` keeps every hold of a fake,
finds the one that catches a request, parks the request there, and serves the
``/_fake/hold`` routes that drive holds in a fake running in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Literal, TypeAlias

from aiohttp import web

from ._checks import as_id, check_int, check_positive
from ._http import Shutdown, drop_connection, json_response, message_response, parse_object
from ._routes import ADMIN_PREFIX, RouteKind, check_route

__all__ = ["HOLD_PHASES", "HoldPhase", "Holds", "ReplyHold"]

HoldPhase: TypeAlias = Literal["before", "after"]
"""Where a ``ReplyHold`` parks a request: before it is processed, or after (only the reply)."""

HOLD_PHASES: Final = frozenset({"before", "after"})

_ADMIN_HOLD: Final = re.compile(
    rf"{re.escape(ADMIN_PREFIX)}hold(?:/(?P<hold_id>[^/]+)(?P<release>/release)?)?"
)
#: Seconds ``GET /_fake/hold/<id>`` waits when the query names no ``timeout``.
_ADMIN_WAIT: Final = 30.0


class ReplyHold:
    """Requests (or their replies) parked in the fake until the test lets them go.

    Tests of stopping and cancelling a client must drive the order of events ("these N
    requests are on the wire and the server has them; now the client stops; now the
    replies go") rather than race sleeps. A hold, made by ``FakePatchworks.hold``, catches
    every matching request until ``release()`` without a count ends it; closing the fake
    ends it too. Waiting for arrivals uses an event set by each catch, never polling.

    A held request whose client goes away leaves the hold: aiohttp cancels its handler
    (the fake runs with ``handler_cancellation=True``), and ``held`` drops.

    Attributes:
        route: The route kind it catches (``"start"``, ``"manual"``, ``"core"``,
            ``"login"``), or None for every request outside ``/_fake/``.
        when: ``"after"``: the request is processed (a start is recorded, the throttle
            counts it, it is in ``received``) and only its reply waits. ``"before"``: it
            waits before any fault, auth, throttle or processing, and is processed when
            released.
    """

    def __init__(self, route: RouteKind | None, when: HoldPhase) -> None:
        """Made by ``FakePatchworks.hold``, which validates the arguments and uses it."""
        self.route: Final = route
        self.when: Final = when
        self._waiting: deque[asyncio.Event] = deque()  # oldest first
        self._total = 0
        self._active = True
        self._changed = asyncio.Event()

    @property
    def held(self) -> int:
        """How many requests are held right now."""
        return len(self._waiting)

    @property
    def total(self) -> int:
        """How many requests this hold has caught in all (released or not)."""
        return self._total

    @property
    def active(self) -> bool:
        """True until ``release()`` without a count, or closing the fake, ends the hold."""
        return self._active

    async def arrived(
        self,
        count: int = 1,
        *,
        timeout: float | None = 30.0,  # noqa: ASYNC109 - a hung test must fail, not hang CI
    ) -> None:
        """Return once this hold has caught at least ``count`` requests in all.

        It counts ``total``, not ``held``, so that asking again after some were released
        (or their clients went away) returns at once instead of hanging.

        Args:
            count: How many caught requests to wait for.
            timeout: Seconds to wait at most, None for ever; a hung test should fail.

        Raises:
            TimeoutError: If fewer than ``count`` were caught within ``timeout``.
            RuntimeError: If the hold ended (released in full, or the fake closed) before
                catching ``count``: no more can arrive.
            ValueError: If ``count`` is not an int >= 0.
        """
        check_int("count", count, minimum=0)
        async with self._deadline(timeout, f"{count} requests to arrive"):
            while self._total < count:
                if not self._active:
                    raise RuntimeError(
                        f"{self!r} ended (released, or the fake closed) before {count} "
                        "requests arrived"
                    )
                await self._changed.wait()

    async def drained(
        self,
        *,
        timeout: float | None = 30.0,  # noqa: ASYNC109 - a hung test must fail, not hang CI
    ) -> None:
        """Return once no request is held: each was released or its client went away.

        A client that gives up closes its connection, and the server notices in its own
        time (aiohttp then cancels the handler); this is how a test waits for that.

        Args:
            timeout: Seconds to wait at most, None for ever.

        Raises:
            TimeoutError: If requests are still held after ``timeout``.
        """
        async with self._deadline(timeout, "the held requests to leave"):
            while self._waiting:
                await self._changed.wait()

    def release(self, count: int | None = None) -> None:
        """Let held requests go on, oldest first.

        Args:
            count: How many to let go (all of them if fewer are held); the hold goes on
                catching later requests. None lets every held request go and ends the
                hold: later requests pass freely.

        Raises:
            ValueError: If ``count`` is not None or an int >= 1.
        """
        if count is None:
            self._active = False
            count = len(self._waiting)
        else:
            check_int("count", count)
        for _ in range(min(count, len(self._waiting))):
            self._waiting.popleft().set()
        self._wake()

    def _catches(self, kind: RouteKind | None) -> bool:
        """True if a request to a route of this ``kind`` would be caught now."""
        return self._active and (self.route is None or self.route == kind)

    async def _park(self) -> None:
        """Hold the calling handler until released (at once if the hold has ended).

        A handler cancelled while parked (its client went away) leaves the held set on
        its way out, so nothing leaks and ``held`` drops.
        """
        if not self._active:
            return
        released = asyncio.Event()
        self._waiting.append(released)
        self._total += 1
        self._wake()
        try:
            await released.wait()
        finally:
            if released in self._waiting:
                self._waiting.remove(released)
                self._wake()

    def _wake(self) -> None:
        """Wake every waiter to check its condition again; later waits use a fresh event."""
        self._changed.set()
        self._changed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def _deadline(self, seconds: float | None, what: str) -> AsyncIterator[None]:
        """``asyncio.timeout`` whose TimeoutError says what was awaited and what was seen."""
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            raise TimeoutError(f"waited {seconds} s for {what} at {self!r}") from None

    def __repr__(self) -> str:
        """Its route, phase and counts, for assertion messages and timeouts."""
        return (
            f"<ReplyHold route={self.route!r} when={self.when!r} held={self.held} "
            f"total={self.total}{'' if self._active else ' ended'}>"
        )


class Holds:
    """Every hold of one fake, in creation order: the first active match catches a request.

    The ``/_fake/hold`` routes number the holds from 1 in that same order.
    """

    def __init__(self, shutdown: Shutdown) -> None:
        """No hold yet.

        Args:
            shutdown: Tells a parked request that the fake is closing (it then gets no
                reply at all, rather than one the test never released).
        """
        self._shutdown = shutdown
        self._all: list[ReplyHold] = []

    def add(self, route: RouteKind | None, when: HoldPhase) -> ReplyHold:
        """Make a hold that catches requests to ``route`` (None for any), ``when`` given.

        Raises:
            ValueError: On an unknown route or phase.
        """
        check_route(route)
        if when not in HOLD_PHASES:
            raise ValueError(f"when must be one of {sorted(HOLD_PHASES)}, got {when!r}")
        hold = ReplyHold(route, when)
        self._all.append(hold)
        return hold

    def catching(self, kind: RouteKind | None) -> ReplyHold | None:
        """The hold that catches a request to a route of ``kind`` now, if any."""
        for hold in self._all:
            if hold._catches(kind):
                return hold
        return None

    async def park(self, hold: ReplyHold, request: web.Request) -> None:
        """Wait in ``hold`` until released; if the fake began closing meanwhile, reply nothing.

        Closing releases every hold so that handlers end at once rather than when aiohttp's
        shutdown timeout cancels them; a reply written then would reach the client as if
        the test had released it.
        """
        await hold._park()
        if self._shutdown.triggered:
            await drop_connection(request)

    def release_all(self) -> None:
        """Let every held request go and end every hold (the fake is closing)."""
        for hold in self._all:
            hold.release()

    async def admin(self, request: web.Request) -> web.Response:
        """The ``/_fake/hold`` routes: create a hold, wait for arrivals, release.

        A bad body or query is a 400; waits that time out a 408 and waits on a hold that
        ended a 409, so ``RemoteFake`` raises what the in-process ``ReplyHold`` raises.
        """
        found = _ADMIN_HOLD.fullmatch(request.path)
        if found is None:
            return message_response(404, "Not Found")
        try:
            return await self._admin_hold(request, found["hold_id"], bool(found["release"]))
        except ValueError as exc:
            return message_response(400, str(exc))

    async def _admin_hold(
        self, request: web.Request, raw_id: str | None, release: bool
    ) -> web.Response:
        """Answer one ``/_fake/hold`` route.

        Raises:
            ValueError: On a bad body or query (the caller answers 400).
        """
        method = "POST" if raw_id is None or release else "GET"
        if request.method != method:
            return json_response(405, {"message": "Method Not Allowed"}, {"Allow": method})
        if raw_id is None:
            fields = await _admin_fields(request)
            self.add(fields.get("route", "start"), fields.get("when", "after"))
            return json_response(200, {"hold": len(self._all)})
        hold_id = as_id(raw_id)
        if hold_id is None or not 1 <= hold_id <= len(self._all):
            return message_response(404, f"No hold {raw_id}")
        hold = self._all[hold_id - 1]
        if release:
            hold.release((await _admin_fields(request)).get("count"))
        else:
            at_least, timeout = _admin_wait_query(request.query)
            try:
                await hold.arrived(at_least, timeout=timeout)
            except TimeoutError as exc:
                return message_response(408, str(exc))
            except RuntimeError as exc:
                return message_response(409, str(exc))
        return json_response(200, {"held": hold.held, "total": hold.total})


async def _admin_fields(request: web.Request) -> dict[str, Any]:
    """The JSON object body of an admin request (an empty body is an empty object).

    Raises:
        ValueError: If the body is not a JSON object.
    """
    fields = parse_object(await request.read())
    if fields is None:
        raise ValueError("the body must be a JSON object")
    return fields


def _admin_wait_query(query: Mapping[str, str]) -> tuple[int, float]:
    """``at_least`` (default 1) and ``timeout`` (seconds, default 30) of a hold wait.

    Raises:
        ValueError: If either is not a number or is out of range.
    """
    try:
        at_least = int(query.get("at_least", "1"))
        timeout = float(query.get("timeout", str(_ADMIN_WAIT)))
    except ValueError:
        raise ValueError("at_least must be an integer and timeout a number of seconds") from None
    check_int("at_least", at_least, minimum=0)
    return at_least, check_positive("timeout", timeout)
