"""``FakePatchworks``: an in-process stand-in for the Patchworks API, served over real sockets.

The real services cannot be reached from a test run, and mocking the HTTP layer would hide
exactly the behaviour a rate-limited client must get right (arrival times, connection reuse,
dropped connections, 429s carrying headers). So this module serves an ``aiohttp.web``
application on loopback that answers like the documented API: the same URLs and auth
schemes, the same error bodies, Laravel's fixed-window throttle (see ``_throttle``), and
switches to inject the failures a client must survive without starting a flow twice.
Holds (``FakePatchworks.hold``) park requests or their replies until the test lets them go,
so tests of stopping and cancelling a client order events instead of racing sleeps.

The Core API resources (flows, flow runs, cross-reference lookups and their rows) live in
``_store``, which holds the data and the route logic without any HTTP; the Laravel list
conventions (filters, sorts, includes, fields, pagination) are pure functions in
``_pages``. This module routes requests to them through the same pipeline as every other
route, so they are authenticated, throttled and fault-injected alike.

Every request is checked in the order the real stack would apply, so that status codes
and throttle accounting match:

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
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import math
import random
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, NoReturn, Self, TypeAlias, TypedDict

import attrs
from aiohttp import web

from ._pages import php_query, validation_body
from ._store import CoreRequest, Reply, Store
from ._throttle import FixedWindowThrottle, Limit, Verdict, whole_second_retry_after

__all__ = [
    "FakePatchworks",
    "Fault",
    "HoldPhase",
    "ReceivedRequest",
    "ReplyHold",
    "RouteKind",
    "StartedRun",
]

RouteKind: TypeAlias = Literal["core", "start", "manual", "login"]
"""Which part of the API a request is aimed at; used to target injected faults."""

_ROUTE_KINDS: Final = frozenset({"core", "start", "manual", "login"})

HoldPhase: TypeAlias = Literal["before", "after"]
"""Where a ``ReplyHold`` parks a request: before it is processed, or after (only the reply)."""

_HOLD_PHASES: Final = frozenset({"before", "after"})
_RUN_ID_KEYS: Final = ("flow_run_id", "run_id", "id", "data.id", "data.flow_run_id")
_RUN_OUTCOMES: Final = range(2, 6)
_DEFAULT_USERS: Final[Mapping[str, str]] = MappingProxyType(
    {"user@example.com": "correct horse battery staple"}
)
#: Seconds aiohttp waits for in-flight handlers on close; sleeps are cut short anyway.
_SHUTDOWN_TIMEOUT: Final = 0.25
#: Seconds a dropping handler waits for aiohttp to cancel it after the transport closed.
_DROP_GRACE: Final = 1.0
#: Status recorded in ``ReceivedRequest`` when the connection was dropped without a reply.
DROPPED: Final = 0

_MSG_TOO_LARGE: Final = (
    "The payload is too large. Reduce the payload size by splitting the data and "
    "sending over multiple calls."
)
_BAD_GATEWAY_HTML: Final = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_DIGITS: Final = re.compile(r"[0-9]+")


ADMIN_PREFIX: Final = "/_fake/"
"""Test-only routes (``/_fake/state``, ``/_fake/reset``, ``/_fake/hold``), not part of the API."""

_ADMIN_HOLD: Final = re.compile(
    rf"{re.escape(ADMIN_PREFIX)}hold(?:/(?P<hold_id>[^/]+)(?P<release>/release)?)?"
)
#: Seconds ``GET /_fake/hold/<id>`` waits when the query names no ``timeout``.
_ADMIN_WAIT: Final = 30.0


class ServiceURLs(TypedDict):
    """The three base URLs a client needs, as ``PatchworksClient`` names its arguments."""

    core_url: str
    start_url: str
    login_url: str


class Fault(enum.StrEnum):
    """Failures that ``FakePatchworks.inject`` can make the next requests suffer.

    ``*_BEFORE`` faults hit before anything is processed or counted (a proxy failing in
    front of the service): a start is NOT recorded. ``*_AFTER`` faults hit once the request
    has been processed (a start IS recorded) and only the reply is lost or late: the case
    where a client that blindly retries would start a flow twice.

    Note that aiohttp's client silently retries an idempotent request (GET, PUT, DELETE...)
    once when the connection drops, so a single ``DROP_*`` on a GET is invisible to it
    (both attempts appear in ``received``); POST, as used to start flows, is not retried.
    """

    UNAVAILABLE_BEFORE = "unavailable_before"
    """503 ``{"message": "Service Unavailable"}``, nothing processed."""
    HTML_ERROR_BEFORE = "html_error_before"
    """502 with an nginx-style HTML page (``text/html``), nothing processed."""
    DROP_BEFORE = "drop_before"
    """The connection is closed without any response, nothing processed."""
    SERVER_ERROR_AFTER = "server_error_after"
    """Processed, then 500 ``{"message": "Server Error"}``."""
    DROP_AFTER = "drop_after"
    """Processed, then the connection is closed without any response."""
    SLOW_AFTER = "slow_after"
    """Processed, then the real response is delayed by ``FakePatchworks.slow_seconds``."""

    @property
    def acts_before(self) -> bool:
        """True if the fault fires before the request is processed or counted."""
        return self.value.endswith("_before")


@attrs.frozen
class ReceivedRequest:
    """One request that reached the fake, whatever its fate.

    Attributes:
        method: HTTP method.
        path: URL path, without the query string.
        query: Query parameters (first value of each).
        headers: Request headers with their names as sent (last value of each); use
            ``header()`` for a case-insensitive lookup.
        body: Request body (for a 413, only the first ``max_body_bytes + 1`` bytes).
        status: Status sent back, or ``DROPPED`` (0) if the connection was dropped.
        at: ``time.monotonic()`` when the request had fully arrived (after the simulated
            latency and the body): the instant the throttle counted it.
        route: The part of the API it targeted (``"core"``, ``"start"``, ``"manual"``,
            ``"login"``), or None for paths outside the API.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    at: float
    route: RouteKind | None = None

    def header(self, name: str) -> str | None:
        """Return the value of header ``name``, matched case-insensitively, or None."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def json(self) -> Any:
        """Return the body decoded as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)


@attrs.frozen
class StartedRun:
    """A flow run the fake accepted (and would have queued) on a start or manual route.

    Attributes:
        run_id: The run id sent back in the reply.
        flow_id: The flow started.
        version_id: The version started (the deployed one when the URL omitted it).
        payload: The ``payload`` string exactly as received (not trimmed).
        manual: True for the manual-initialise route, False for start.
        flow_variables: The ``flow_variables`` field if sent (object or list), else None.
        virtual_environment_id: The ``virtual_environment_id`` field if sent, else None.
        received_at: ``time.monotonic()`` when the request arrived (after latency).
    """

    run_id: int
    flow_id: int
    version_id: int
    payload: str
    manual: bool
    flow_variables: dict[str, Any] | list[Any] | None
    virtual_environment_id: int | None
    received_at: float


@attrs.define
class _Injection:
    """A pending fault and how many more matching requests it will hit."""

    fault: Fault
    remaining: int
    route: RouteKind | None


@attrs.frozen
class _Route:
    """One API route: which method and path it answers and which handler runs it."""

    method: str
    pattern: re.Pattern[str]
    kind: RouteKind
    handler: str


def _core_route(method: str, template: str, handler: str) -> _Route:
    """A Core API route; ``{name}`` in ``template`` becomes a path parameter."""
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return _Route(method, re.compile(f"/core/api/v1{pattern}"), "core", handler)


_LOOKUP: Final = "/cross-reference-lookups/{lookup_id}"

_ROUTES: Final = (
    _Route("POST", re.compile(r"/fabric/api/v1/login"), "login", "login"),
    _core_route("GET", "/flows", "list_flows"),
    _core_route("POST", "/flows", "create_flow"),
    _core_route("POST", "/flows/export", "export_flow"),
    _core_route("POST", "/flows/import", "import_flow"),
    _core_route("GET", "/flows/{flow_id}", "get_flow"),
    _core_route("PUT", "/flows/{flow_id}", "update_flow"),
    _core_route("DELETE", "/flows/{flow_id}", "delete_flow"),
    _core_route("POST", "/flows/{flow_id}/duplicate", "duplicate_flow"),
    _core_route("PATCH", "/flows/{flow_id}/layout-direction", "toggle_layout_direction"),
    _core_route("GET", "/flow-runs", "list_flow_runs"),
    _core_route("GET", "/flow-runs/{run_id}", "get_flow_run"),
    _core_route("GET", "/cross-reference-lookups", "list_lookups"),
    _core_route("POST", "/cross-reference-lookups", "create_lookup"),
    _core_route("GET", _LOOKUP, "get_lookup"),
    _core_route("PUT", _LOOKUP, "update_lookup"),
    _core_route("DELETE", _LOOKUP, "delete_lookup"),
    _core_route("GET", f"{_LOOKUP}/values", "list_lookup_values"),
    _core_route("POST", f"{_LOOKUP}/values", "create_lookup_value"),
    _core_route("PUT", f"{_LOOKUP}/values/{{value_id}}", "update_lookup_value"),
    _core_route("DELETE", f"{_LOOKUP}/values/{{value_id}}", "delete_lookup_value"),
    _Route(
        "POST",
        re.compile(r"/start/api/v1/flows/(?P<flow_id>[^/]+)/start(?:/(?P<version_id>[^/]+))?"),
        "start",
        "start_flow",
    ),
    _Route(
        "POST",
        re.compile(r"/start/api/v1/flows/(?P<flow_id>[^/]+)/manual(?:/(?P<version_id>[^/]+))?"),
        "manual",
        "start_flow",
    ),
)


@attrs.frozen
class _Match:
    """The router's answer: a route and its path parameters, or a 404/405 status."""

    route: _Route | None
    params: Mapping[str, str] = attrs.field(factory=dict)
    status: int = 200
    allow: tuple[str, ...] = ()


@attrs.frozen
class _Call:
    """What every step of the pipeline needs to know about the request being handled."""

    request: web.Request
    body: bytes
    kind: RouteKind | None
    at: float


@attrs.frozen
class _Outcome:
    """The response decided by steps 3 to 7, and whether after-faults may apply."""

    response: web.Response
    processed: bool = False
    verdict: Verdict | None = None


def _match_route(method: str, path: str) -> _Match:
    """Find the route for ``method`` and ``path``; 405 if only the method is wrong."""
    path = path.rstrip("/") or "/"
    allow: list[str] = []
    for route in _ROUTES:
        found = route.pattern.fullmatch(path)
        if found is None:
            continue
        if route.method == method:
            params = {k: v for k, v in found.groupdict().items() if v is not None}
            return _Match(route, params)
        if route.method not in allow:
            allow.append(route.method)
    if allow:
        return _Match(None, status=405, allow=tuple(allow))
    return _Match(None, status=404)


def _kind_of_path(path: str) -> RouteKind | None:
    """Classify a path by service, so faults can target paths that match no route too."""
    if path.startswith("/fabric/"):
        return "login"
    if path.startswith("/core/"):
        return "core"
    if path.startswith("/start/"):
        return "manual" if "/manual" in path else "start"
    return None


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """Build a JSON response (Laravel always answers the API in JSON)."""
    return web.json_response(data, status=status, headers=headers)


def _message(status: int, message: str) -> web.Response:
    """Build the ``{"message": ...}`` error body every Patchworks error uses."""
    return _json(status, {"message": message})


def _validation_error(errors: Mapping[str, list[str]]) -> web.Response:
    """Build a 422 in Laravel's format, including its "(and N more errors)" summary."""
    return _json(422, validation_body(errors))


def _reply(reply: Reply) -> web.Response:
    """A store ``Reply`` as a response; no body at all for a 204, as Laravel sends it."""
    if reply.body is None:
        return web.Response(status=reply.status)
    return _json(reply.status, reply.body)


def _rate_headers(verdict: Verdict) -> dict[str, str]:
    """Headers Laravel adds to every response its throttle admitted."""
    return {
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": str(verdict.remaining),
    }


def _parse_object(body: bytes) -> dict[str, Any] | None:
    """Decode a JSON object body; an empty body is an empty object, anything else None."""
    if not body:
        return {}
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _as_id(raw: str | None) -> int | None:
    """Parse a path segment as a non-negative integer id, or None."""
    if raw is None or _DIGITS.fullmatch(raw) is None:
        return None
    return int(raw)


def _whole(value: float) -> int | float:
    """Return ``value`` as an int when it is whole (``expires_in: 86400``, not 86400.0)."""
    return int(value) if float(value).is_integer() else value


def _payload_error(payload: Any) -> str | None:
    """Laravel's ``required|string`` rule, after TrimStrings and ConvertEmptyStringsToNull."""
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return "The payload field is required."
    if not isinstance(payload, str):
        return "The payload field must be a string."
    return None


def _virtual_environment(value: Any) -> tuple[int | None, str | None]:
    """Laravel's ``nullable|integer`` rule: ints and digit strings pass."""
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value), None
    return None, "The virtual environment id field must be an integer."


def _flow_variables(value: Any) -> tuple[dict[str, Any] | list[Any] | None, str | None]:
    """Laravel's ``nullable|array`` rule: a JSON object or list."""
    if value is None or isinstance(value, dict | list):
        return value, None
    return None, "The flow variables field must be an array."


def _check_latency(value: float | tuple[float, float]) -> float | tuple[float, float]:
    """Validate a latency setting: a delay >= 0 or a (min, max) range for uniform jitter."""
    if isinstance(value, tuple):
        low, high = value
        if not 0 <= low <= high:
            raise ValueError(f"latency range must satisfy 0 <= min <= max, got {value!r}")
        return (float(low), float(high))
    if not value >= 0:
        raise ValueError(f"latency must be >= 0, got {value!r}")
    return float(value)


def _check_int(name: str, value: int, *, minimum: int = 1) -> int:
    """Refuse non-integers (and bools) and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_run_id_key(value: str) -> str:
    """Refuse a run id location the real API has not been seen to use."""
    if value not in _RUN_ID_KEYS:
        raise ValueError(f"run_id_key must be one of {_RUN_ID_KEYS}, got {value!r}")
    return value


def _check_run_duration(value: float) -> float:
    """Refuse run durations that are negative or not finite (0 finishes on the next read)."""
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"run_duration must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_run_outcome(value: int) -> int:
    """Refuse a final status that is not one of the finished codes 2 to 5."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in _RUN_OUTCOMES:
        raise ValueError(f"run_outcome must be an int from 2 to 5, got {value!r}")
    return value


def _check_route(route: str | None) -> None:
    """Refuse a route kind the fake does not know (None, meaning any, is fine)."""
    if route is not None and route not in _ROUTE_KINDS:
        raise ValueError(f"route must be one of {sorted(_ROUTE_KINDS)} or None, got {route!r}")


def _check_positive(name: str, value: float) -> float:
    """Refuse durations that are not finite and strictly positive."""
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


async def _read_body(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """Read the whole body, keeping at most ``limit + 1`` bytes in memory.

    The rest is drained rather than left unread so the client always gets its 413
    instead of a reset while it is still sending.

    Returns:
        The kept bytes, and whether the body was larger than ``limit``.
    """
    kept = bytearray()
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        room = limit + 1 - len(kept)
        if room > 0:
            kept += chunk[:room]
    return bytes(kept), total > limit


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
        _check_int("count", count, minimum=0)
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
            _check_int("count", count)
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
        return (
            f"<ReplyHold route={self.route!r} when={self.when!r} held={self.held} "
            f"total={self.total}{'' if self._active else ' ended'}>"
        )


async def _admin_fields(request: web.Request) -> dict[str, Any]:
    """The JSON object body of an admin request (an empty body is an empty object).

    Raises:
        ValueError: If the body is not a JSON object.
    """
    fields = _parse_object(await request.read())
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
    _check_int("at_least", at_least, minimum=0)
    return at_least, _check_positive("timeout", timeout)


class FakePatchworks:
    """A Patchworks API look-alike served on loopback, for tests, benchmarks and demos.

    Use it as ``async with FakePatchworks() as fake:`` then point a client at
    ``fake.urls`` with ``fake.api_key`` (or ``fake.email`` / ``fake.password``). Everything
    the fake saw is in ``received``, every run it accepted in ``starts``; ``inject``
    arms failures and ``hold`` parks requests until the test releases them. All state lives
    on the instance; nothing touches an event loop until ``start()``.

    The server is single-use: once closed it cannot be started again.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = ("test-api-key",),
        users: Mapping[str, str] = _DEFAULT_USERS,
        token_ttl: float = 86400.0,
        requests_per_window: int = 240,
        manual_per_window: int = 10,
        starts_per_window: int | None = None,
        window: float = 60.0,
        max_body_bytes: int = 8 * 1024 * 1024,
        latency: float | tuple[float, float] = 0.0,
        run_id_key: str = "flow_run_id",
        run_duration: float = 0.5,
        run_outcome: int = 2,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Configure the fake; the server only starts with ``start()`` or ``async with``.

        Args:
            api_keys: Keys accepted raw in ``Authorization`` (the first is ``api_key``).
            users: email -> password accepted by the login route (the first is
                ``email`` / ``password``).
            token_ttl: Seconds a login token lives (also the ``expires_in`` sent).
            requests_per_window: The account-wide throttle, shared by every API route.
            manual_per_window: The extra throttle on the manual-initialise route.
            starts_per_window: Optional tier cap on start + manual requests.
            window: Length in seconds of every throttle window.
            max_body_bytes: Largest request body accepted; one byte more is a 413.
            latency: Arrival delay in seconds, fixed or ``(min, max)`` uniform jitter.
            run_id_key: Where the run id goes in a start reply: one of ``flow_run_id``,
                ``run_id``, ``id``, ``data.id``, ``data.flow_run_id`` (the real key is
                undocumented, so clients must cope with each).
            run_duration: Seconds a started run stays STARTED (1) before it finishes;
                computed when runs are read, no timer runs.
            run_outcome: The status a started run finishes with: 2 success, 3 failure,
                4 stopped, 5 partial success.
            seed: Seed of the jitter RNG, for reproducible arrival times.
            host: Interface to listen on.
            port: Port to listen on; 0 picks a free one.

        Raises:
            TypeError: If ``api_keys`` is a bare string (a common slip).
            ValueError: On an empty key or user list or an out-of-range setting.
        """
        _check_run_id_key(run_id_key)
        if isinstance(api_keys, str):
            raise TypeError("api_keys must be an iterable of keys, not a single string")
        self._api_keys: tuple[str, ...] = tuple(api_keys)
        self._users: dict[str, str] = dict(users)
        if not self._api_keys or not self._users:
            raise ValueError("at least one API key and one user are required")
        self.token_ttl: float = _check_positive("token_ttl", token_ttl)
        self.max_body_bytes: int = _check_int("max_body_bytes", max_body_bytes, minimum=0)
        self._run_id_key = run_id_key
        self.slow_seconds: float = 5.0
        self._latency = _check_latency(latency)
        self._rng = random.Random(seed)
        self._host = host
        self._port = port
        self._limits = self._build_limits(
            requests_per_window, manual_per_window, starts_per_window, window
        )
        self._throttle = FixedWindowThrottle()
        self._tokens: dict[str, float] = {}
        self._injections: list[_Injection] = []
        self._holds: list[ReplyHold] = []  # in creation order; the admin id is index + 1
        self._store = Store(
            run_duration=_check_run_duration(run_duration),
            run_outcome=_check_run_outcome(run_outcome),
        )
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._base_url: str | None = None
        self._used = False

        self.received: list[ReceivedRequest] = []
        self.starts: list[StartedRun] = []
        self.throttled: int = 0
        self.throttled_by: dict[str, int] = {}
        self.login_count: int = 0
        self._handlers: dict[str, Callable[[_Call, Mapping[str, str]], web.Response]] = {
            "start_flow": self._start_flow,
        }
        store = self._store
        for route_handler in (
            store.list_flows,
            store.create_flow,
            store.export_flow,
            store.import_flow,
            store.get_flow,
            store.update_flow,
            store.delete_flow,
            store.duplicate_flow,
            store.toggle_layout_direction,
            store.list_flow_runs,
            store.get_flow_run,
            store.list_lookups,
            store.create_lookup,
            store.get_lookup,
            store.update_lookup,
            store.delete_lookup,
            store.list_lookup_values,
            store.create_lookup_value,
            store.update_lookup_value,
            store.delete_lookup_value,
        ):
            self._handlers[route_handler.__name__] = self._core(route_handler)
        self.add_flow(
            "Orders to ERP",
            id=101,
            versions=(9001, 9002),
            deployed_version=9001,
            description="Demo flow",
        )
        self.app: web.Application = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start serving on ``host``:``port`` and fill in the URLs.

        Raises:
            RuntimeError: If the fake was already started (it is single-use).
        """
        if self._used:
            raise RuntimeError("FakePatchworks is single-use: it was already started")
        self._used = True
        self._closing = asyncio.Event()
        # handler_cancellation: a client that gives up must not leave handlers running.
        runner = web.AppRunner(
            self.app,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            access_log=None,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving; in-flight delays and holds are cut short so closing never hangs.

        A held request woken by the close gets no reply: its connection is dropped.
        """
        if self._closing is not None:
            self._closing.set()
        for hold in self._holds:
            hold.release()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ public state

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server.

        Raises:
            RuntimeError: If the server has not been started.
        """
        if self._base_url is None:
            raise RuntimeError("FakePatchworks is not started: use 'async with' or start()")
        return self._base_url

    @property
    def port(self) -> int:
        """The port the server listens on (the real one when constructed with port=0)."""
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def core_url(self) -> str:
        """Base URL of the Core API service."""
        return f"{self.base_url}/core/api/v1"

    @property
    def start_url(self) -> str:
        """Base URL of the Start service (start and manual initialise)."""
        return f"{self.base_url}/start/api/v1"

    @property
    def login_url(self) -> str:
        """Full URL of the login route."""
        return f"{self.base_url}/fabric/api/v1/login"

    @property
    def urls(self) -> ServiceURLs:
        """``core_url``, ``start_url`` and ``login_url``, ready to pass as keyword arguments.

        Typed, so that ``PatchworksClient(api_key=fake.api_key, **fake.urls)`` type-checks.
        """
        return ServiceURLs(
            core_url=self.core_url, start_url=self.start_url, login_url=self.login_url
        )

    @property
    def api_key(self) -> str:
        """The first configured API key."""
        return self._api_keys[0]

    @property
    def email(self) -> str:
        """The first configured user's email."""
        return next(iter(self._users))

    @property
    def password(self) -> str:
        """The first configured user's password."""
        return self._users[self.email]

    @property
    def latency(self) -> float | tuple[float, float]:
        """Arrival delay: seconds, or a ``(min, max)`` range for uniform jitter. Settable."""
        return self._latency

    @latency.setter
    def latency(self, value: float | tuple[float, float]) -> None:
        self._latency = _check_latency(value)

    @property
    def run_id_key(self) -> str:
        """Where start replies put the run id (settable, e.g. ``"data.id"``)."""
        return self._run_id_key

    @run_id_key.setter
    def run_id_key(self, value: str) -> None:
        self._run_id_key = _check_run_id_key(value)

    @property
    def flows(self) -> dict[int, dict[str, Any]]:
        """Flows by id, as the API serves them; edit freely (a live dict, not a copy)."""
        return self._store.flows

    @property
    def versions(self) -> dict[int, dict[str, Any]]:
        """Flow versions by id (each names its ``flow_id``); a live dict."""
        return self._store.versions

    @property
    def flow_runs(self) -> dict[int, dict[str, Any]]:
        """Flow runs by id, a live dict, brought up to date on every read.

        A run created by a start finishes ``run_duration`` seconds after it arrived;
        reading this property (or the runs routes) applies every finish that is due.
        """
        return self._store.flow_runs

    @property
    def lookups(self) -> dict[int, dict[str, Any]]:
        """Cross-reference lookups by id; a live dict."""
        return self._store.lookups

    @property
    def lookup_values(self) -> dict[int, dict[str, Any]]:
        """Lookup rows by id (each names its ``cross_reference_lookup_id``); a live dict."""
        return self._store.lookup_values

    @property
    def run_duration(self) -> float:
        """Seconds a started run stays STARTED; settable, applies to later starts."""
        return self._store.run_duration

    @run_duration.setter
    def run_duration(self, value: float) -> None:
        self._store.run_duration = _check_run_duration(value)

    @property
    def run_outcome(self) -> int:
        """The status later runs finish with (2 to 5); settable."""
        return self._store.run_outcome

    @run_outcome.setter
    def run_outcome(self, value: int) -> None:
        self._store.run_outcome = _check_run_outcome(value)

    def add_flow(
        self,
        name: str,
        *,
        versions: Iterable[int] = (),
        deployed_version: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed a flow (and its versions) that the API will then serve and start.

        A seeded flow is enabled (``enabled_at`` set) and carries every field the routes
        read or write: ``description``, ``enabled_at``, ``created_at``, ``updated_at``,
        ``deployed_version_id``, ``layout_direction`` ("horizontal"), ``use_queued_time``,
        ``remove_failed_payloads``, ``priority``, ``prod_flag`` and ``marketplace_app_id``.

        Args:
            name: The flow's name.
            versions: Version ids to create, oldest first; empty creates one with a fresh id.
            deployed_version: The version id that runs when a start omits the version;
                None leaves the flow undeployed (such starts get a 422).
            **fields: Extra or overriding flow fields (``description``, ``enabled_at``...);
                ``id`` picks the flow id instead of the next free one.

        Returns:
            The stored flow dict (the same object as ``flows[id]``).

        Raises:
            ValueError: If an id is already used or ``deployed_version`` is not one of
                ``versions``.
        """
        return self._store.add_flow(
            name, versions=versions, deployed_version=deployed_version, **fields
        )

    def add_flows(
        self, count: int, *, name_prefix: str = "Flow", deployed: bool = True
    ) -> list[dict[str, Any]]:
        """Seed ``count`` flows at once, each with one version, in O(count).

        ``add_flow`` in a loop would be quadratic (it checks every id for clashes); this
        is what benchmarks and pagination tests use to fill the store with thousands.

        Args:
            count: How many flows (0 or more).
            name_prefix: Names are ``"<name_prefix> 1"``, ``"<name_prefix> 2"``...
            deployed: Whether each flow's version is deployed (so a start may omit it).

        Returns:
            The stored flow dicts, in id order (ids and version ids follow the highest ones).
        """
        return self._store.add_flows(count, name_prefix=name_prefix, deployed=deployed)

    def add_flow_run(
        self,
        flow_id: int,
        *,
        status: int = 2,
        started_at_ms: int | None = None,
        version_id: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed a flow run that ``GET /flow-runs`` will list.

        Unlike a run created by a start, a seeded run keeps ``status`` until changed:
        ``status=1`` stays STARTED for ever (to test a wait that times out) and any code,
        even an undocumented one such as 9, is served as given.

        Args:
            flow_id: An existing flow.
            status: The run's status code.
            started_at_ms: Unix milliseconds; now when None.
            version_id: One of the flow's versions; None takes the deployed one, else the
                latest.
            **fields: Extra or overriding run fields (``trigger``, ``payload_size``,
                ``finished_at``; ``id`` picks the run id). ``finished_at`` defaults to
                null for status 1, else ``started_at + run_duration``.

        Returns:
            The stored run dict (the same object as ``flow_runs[id]``).

        Raises:
            ValueError: If the flow does not exist, the version is not one of its own, or
                an ``id`` is already used.
        """
        return self._store.add_flow_run(
            flow_id, status=status, started_at_ms=started_at_ms, version_id=version_id, **fields
        )

    def add_lookup(
        self, name: str, *, rows: Iterable[tuple[str, str]] = (), **fields: Any
    ) -> dict[str, Any]:
        """Seed a cross-reference lookup and its rows.

        Args:
            name: The lookup's name.
            rows: ``(left_value, right_value)`` pairs; left values must be distinct.
            **fields: Extra or overriding lookup fields (``description``,
                ``default_value``...); ``id`` picks the lookup id.

        Returns:
            The stored lookup dict (the same object as ``lookups[id]``).

        Raises:
            ValueError: If the id is already used or two rows share a left value.
        """
        return self._store.add_lookup(name, rows=rows, **fields)

    def inject(self, fault: Fault, *, times: int = 1, route: RouteKind | None = None) -> None:
        """Make the next ``times`` requests matching ``route`` suffer ``fault``.

        Injections of the same phase (before/after) are consumed in the order they were
        made. Before-faults are consumed on arrival; after-faults only by requests that
        got past auth and the throttle (or reached the login logic).

        Args:
            fault: What goes wrong.
            times: How many matching requests it hits.
            route: ``"start"``, ``"manual"``, ``"core"``, ``"login"``, or None for any.

        Raises:
            ValueError: On an unknown route or ``times < 1``.
        """
        _check_route(route)
        _check_int("times", times)
        self._injections.append(_Injection(Fault(fault), times, route))

    def hold(self, route: RouteKind | None = "start", when: HoldPhase = "after") -> ReplyHold:
        """Hold the next requests to ``route`` (or their replies) until the test releases them.

        A request is caught by the first active hold, in creation order, whose route
        matches; ``/_fake/`` routes are never held. Typical use::

            hold = fake.hold()  # replies to starts wait
            ...  # the client sends three starts
            await hold.arrived(3)  # the server has processed them: fake.starts has 3
            ...  # stop the client
            hold.release()  # now the replies go, and the hold ends

        Args:
            route: ``"start"``, ``"manual"``, ``"core"``, ``"login"``, or None for any.
            when: ``"after"``: the request is processed (a start is recorded) and only the
                reply waits, as when the server did the work but the reply is late.
                ``"before"``: the request waits before anything is checked or processed.

        Returns:
            The hold: wait for arrivals with ``arrived``, let requests go with ``release``.

        Raises:
            ValueError: On an unknown route or phase.
        """
        _check_route(route)
        if when not in _HOLD_PHASES:
            raise ValueError(f"when must be one of {sorted(_HOLD_PHASES)}, got {when!r}")
        hold = ReplyHold(route, when)
        self._holds.append(hold)
        return hold

    def clear_faults(self) -> None:
        """Disarm every pending injected fault."""
        self._injections.clear()

    def revoke_tokens(self) -> None:
        """Invalidate every login token issued so far (API keys stay valid)."""
        self._tokens.clear()

    def reset_records(self) -> None:
        """Clear ``received``, ``starts`` and the counters; throttle windows are kept."""
        self.received.clear()
        self.starts.clear()
        self.throttled = 0
        self.throttled_by.clear()
        self.login_count = 0

    def reset_throttle(self) -> None:
        """Close every throttle window, as if the server's cache had been flushed."""
        self._throttle.reset()

    # ------------------------------------------------------------------ admin

    def state(self) -> dict[str, Any]:
        """What the fake has seen, as JSON-ready data (also ``GET /_fake/state``).

        For tests that run the fake in another process (``patchworks fake-server``) and
        still need to count what it accepted.
        """
        return {
            "starts": [
                {
                    "run_id": run.run_id,
                    "flow_id": run.flow_id,
                    "version_id": run.version_id,
                    "payload": run.payload,
                    "manual": run.manual,
                    "received_at": run.received_at,
                }
                for run in self.starts
            ],
            "received": len(self.received),
            "arrivals": [[r.at, r.status] for r in self.received if r.route is not None],
            "throttled": self.throttled,
            "throttled_by": dict(self.throttled_by),
            "login_count": self.login_count,
        }

    async def _admin(self, request: web.Request) -> web.Response:
        """``/_fake/...``: records and holds, for a fake in another process.

        Outside the API: no auth, no throttle, no faults, never held.
        """
        if request.path == f"{ADMIN_PREFIX}state" and request.method == "GET":
            return web.json_response(self.state())
        if request.path == f"{ADMIN_PREFIX}reset" and request.method == "POST":
            self.reset_records()
            self.reset_throttle()
            return web.json_response({"message": "reset"})
        found = _ADMIN_HOLD.fullmatch(request.path)
        if found is None:
            return _message(404, "Not Found")
        try:
            return await self._admin_hold(request, found["hold_id"], bool(found["release"]))
        except ValueError as exc:
            return _message(400, str(exc))

    async def _admin_hold(
        self, request: web.Request, raw_id: str | None, release: bool
    ) -> web.Response:
        """The ``/_fake/hold`` routes: create a hold, wait for arrivals, release.

        Raises:
            ValueError: On a bad body or query (the caller answers 400).
        """
        method = "POST" if raw_id is None or release else "GET"
        if request.method != method:
            return _json(405, {"message": "Method Not Allowed"}, {"Allow": method})
        if raw_id is None:
            fields = await _admin_fields(request)
            self.hold(fields.get("route", "start"), fields.get("when", "after"))
            return _json(200, {"hold": len(self._holds)})
        hold_id = _as_id(raw_id)
        if hold_id is None or not 1 <= hold_id <= len(self._holds):
            return _message(404, f"No hold {raw_id}")
        hold = self._holds[hold_id - 1]
        if release:
            hold.release((await _admin_fields(request)).get("count"))
        else:
            at_least, timeout = _admin_wait_query(request.query)
            try:
                await hold.arrived(at_least, timeout=timeout)
            except TimeoutError as exc:
                return _message(408, str(exc))
            except RuntimeError as exc:
                return _message(409, str(exc))
        return _json(200, {"held": hold.held, "total": hold.total})

    # ------------------------------------------------------------------ pipeline

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Run one request through the checks in the order the real stack applies them."""
        if request.path.startswith(ADMIN_PREFIX):
            return await self._admin(request)
        await self._pause(self._sample_latency())
        body, oversize = await _read_body(request, self.max_body_bytes)
        kind = _kind_of_path(request.path)
        hold = next((hold for hold in self._holds if hold._catches(kind)), None)
        if hold is not None and hold.when == "before":
            await self._park(hold, request)
        # The server acts once the whole request is in (and let go, if it was held): that
        # instant is its arrival, when the throttle counts it.
        call = _Call(request=request, body=body, kind=kind, at=time.monotonic())
        response = await self._respond(call, oversize)
        if hold is not None and hold.when == "after":
            await self._park(hold, request)
        return response

    async def _respond(self, call: _Call, oversize: bool) -> web.StreamResponse:
        """Steps 2 to 8: before-faults, processing, after-faults; record what was sent."""
        fault = self._take_fault(call.kind, before=True)
        if fault is not None:
            return await self._fire_before(call, fault)
        outcome = self._process(call, oversize)
        if outcome.processed:
            fault = self._take_fault(call.kind, before=False)
            if fault is not None:
                return await self._fire_after(call, fault, outcome)
        self._record(call, outcome.response.status)
        return outcome.response

    def _process(self, call: _Call, oversize: bool) -> _Outcome:
        """Steps 3 to 7: size, routing, auth, throttle, media type, route logic."""
        if oversize:
            return _Outcome(_message(413, _MSG_TOO_LARGE))
        match = _match_route(call.request.method, call.request.path)
        if match.route is None:
            return _Outcome(self._no_route(match))
        if match.route.kind == "login":
            return _Outcome(self._login(call), processed=True)
        if not self._authenticated(call.request.headers.get("Authorization")):
            return _Outcome(_message(401, "Unauthenticated."))
        verdict = self._throttle.attempt(self._limits_for(match.route.kind), call.at)
        if not verdict.allowed:
            return _Outcome(self._too_many(verdict))
        if call.body and call.request.content_type.lower() != "application/json":
            response = _message(415, "Unsupported Media Type")
        else:
            response = self._handlers[match.route.handler](call, match.params)
        response.headers.update(_rate_headers(verdict))
        return _Outcome(response, processed=True, verdict=verdict)

    @staticmethod
    def _no_route(match: _Match) -> web.Response:
        """JSON 404/405 like Laravel's, instead of aiohttp's HTML pages."""
        if match.status == 405:
            return _json(405, {"message": "Method Not Allowed"}, {"Allow": ", ".join(match.allow)})
        return _message(404, "Not Found")

    def _record(self, call: _Call, status: int) -> None:
        """Append the request to ``received`` with the status it got."""
        request = call.request
        self.received.append(
            ReceivedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={str(k): v for k, v in request.headers.items()},
                body=call.body,
                status=status,
                at=call.at,
                route=call.kind,
            )
        )

    # ------------------------------------------------------------------ faults

    def _take_fault(self, kind: RouteKind | None, *, before: bool) -> Fault | None:
        """Consume one pending fault of the given phase that matches ``kind``, if any."""
        for index, injection in enumerate(self._injections):
            if injection.fault.acts_before != before:
                continue
            if injection.route is not None and injection.route != kind:
                continue
            injection.remaining -= 1
            if injection.remaining <= 0:
                del self._injections[index]
            return injection.fault
        return None

    async def _fire_before(self, call: _Call, fault: Fault) -> web.StreamResponse:
        """Answer (or drop) for a before-fault: nothing was processed or counted."""
        if fault is Fault.DROP_BEFORE:
            self._record(call, DROPPED)
            await self._drop(call.request)
        if fault is Fault.HTML_ERROR_BEFORE:
            response = web.Response(status=502, text=_BAD_GATEWAY_HTML, content_type="text/html")
        else:
            response = _message(503, "Service Unavailable")
        self._record(call, response.status)
        return response

    async def _fire_after(self, call: _Call, fault: Fault, outcome: _Outcome) -> web.StreamResponse:
        """Lose or delay the reply of a request that was processed (a start is recorded)."""
        if fault is Fault.DROP_AFTER:
            self._record(call, DROPPED)
            await self._drop(call.request)
        if fault is Fault.SLOW_AFTER:
            self._record(call, outcome.response.status)
            await self._pause(self.slow_seconds)
            return outcome.response
        headers = _rate_headers(outcome.verdict) if outcome.verdict is not None else None
        response = _json(500, {"message": "Server Error"}, headers)
        self._record(call, response.status)
        return response

    async def _park(self, hold: ReplyHold, request: web.Request) -> None:
        """Wait in ``hold`` until released; if the fake began closing meanwhile, reply nothing.

        Closing releases every hold so that handlers end at once rather than when aiohttp's
        shutdown timeout cancels them; a reply written then would reach the client as if
        the test had released it.
        """
        await hold._park()
        if self._closing is not None and self._closing.is_set():
            await self._drop(request)

    async def _drop(self, request: web.Request) -> NoReturn:
        """Close the connection without writing a response.

        Closing the transport makes aiohttp call ``connection_lost``, which cancels this
        handler (``handler_cancellation=True``) before anything can be written. Should
        that not happen in time, the ConnectionResetError still prevents a reply: the
        transport is gone.
        """
        request.protocol.force_close()
        await asyncio.sleep(_DROP_GRACE)
        raise ConnectionResetError("connection dropped by FakePatchworks")

    # ------------------------------------------------------------------ helpers

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early when the server closes so close() never hangs."""
        if seconds <= 0 or self._closing is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    def _sample_latency(self) -> float:
        """Draw this request's arrival delay (seeded, so runs are reproducible)."""
        if isinstance(self._latency, tuple):
            return self._rng.uniform(*self._latency)
        return self._latency

    # ------------------------------------------------------------------ auth

    def _authenticated(self, authorization: str | None) -> bool:
        """Accept a raw API key, or ``Bearer <token>`` with a live login token."""
        if authorization is None:
            return False
        if authorization in self._api_keys:
            return True
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        expires_at = self._tokens.get(token.strip())
        if expires_at is None:
            return False
        if time.monotonic() >= expires_at:
            del self._tokens[token.strip()]
            return False
        return True

    def _login(self, call: _Call) -> web.Response:
        """Issue a token for valid credentials (``username`` is accepted for ``email``)."""
        self.login_count += 1
        credentials = _parse_object(call.body) or {}
        email = credentials.get("email", credentials.get("username"))
        password = credentials.get("password")
        if not isinstance(email, str) or self._users.get(email) != password:
            return _message(401, "Invalid credentials.")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self.token_ttl
        return _json(
            200,
            {
                "message": "You have successfully logged in.",
                "token": token,
                "expires_in": _whole(self.token_ttl),
            },
        )

    # ------------------------------------------------------------------ throttle

    @staticmethod
    def _build_limits(
        requests_per_window: int,
        manual_per_window: int,
        starts_per_window: int | None,
        window: float,
    ) -> dict[str, Limit]:
        """Validate the throttle settings and turn them into the model's limits."""
        window = _check_positive("window", window)
        limits = {
            "global": Limit(
                "global", _check_int("requests_per_window", requests_per_window), window
            ),
            "manual": Limit("manual", _check_int("manual_per_window", manual_per_window), window),
        }
        if starts_per_window is not None:
            limits["starts"] = Limit(
                "starts", _check_int("starts_per_window", starts_per_window), window
            )
        return limits

    def _limits_for(self, kind: RouteKind) -> list[Limit]:
        """The stacked throttles of a route, outermost first: global, manual, starts."""
        limits = [self._limits["global"]]
        if kind == "manual":
            limits.append(self._limits["manual"])
        if kind in ("start", "manual") and "starts" in self._limits:
            limits.append(self._limits["starts"])
        return limits

    def _too_many(self, verdict: Verdict) -> web.Response:
        """Build Laravel's 429, counting it in ``throttled`` and ``throttled_by``.

        ``Retry-After`` and ``X-RateLimit-Reset`` come from whole-second wall-clock
        timestamps, as Laravel computes them, so ``Retry-After`` can be up to 1 s short.
        """
        self.throttled += 1
        self.throttled_by[verdict.key] = self.throttled_by.get(verdict.key, 0) + 1
        wall_now = time.time()
        retry_after = whole_second_retry_after(verdict.window_ends_in, wall_now)
        headers = {
            "Retry-After": str(retry_after),
            "X-RateLimit-Reset": str(math.floor(wall_now) + retry_after),
            "X-RateLimit-Limit": str(verdict.limit),
            "X-RateLimit-Remaining": "0",
        }
        return _json(429, {"message": "Too Many Attempts."}, headers)

    # ------------------------------------------------------------------ routes

    def _core(
        self, route: Callable[[CoreRequest], Reply]
    ) -> Callable[[_Call, Mapping[str, str]], web.Response]:
        """Adapt a store route to the pipeline: decode the body and query, encode the reply."""

        def handle(call: _Call, params: Mapping[str, str]) -> web.Response:
            body = _parse_object(call.body)
            if body is None:
                return _message(400, "Malformed JSON.")
            request = call.request
            url = f"{request.scheme}://{request.host}{request.path.rstrip('/')}"
            query = php_query(request.query.items())
            return _reply(route(CoreRequest(params=params, query=query, body=body, url=url)))

        return handle

    def _find_flow(self, raw_id: str) -> dict[str, Any] | None:
        """Look a flow up by the raw path segment (non-numeric ids simply do not exist)."""
        flow_id = _as_id(raw_id)
        return None if flow_id is None else self.flows.get(flow_id)

    def _start_flow(self, call: _Call, params: Mapping[str, str]) -> web.Response:
        """Start or manual initialise: validate like Laravel, record the start and its run."""
        flow = self._find_flow(params["flow_id"])
        if flow is None:
            return _message(404, f"No query results for model [Flow] {params['flow_id']}")
        fields = _parse_object(call.body)
        if fields is None:
            return _message(400, "Malformed JSON.")
        errors: dict[str, list[str]] = {}
        payload_error = _payload_error(fields.get("payload"))
        if payload_error is not None:
            errors["payload"] = [payload_error]
        version_id, version_error = self._resolve_version(flow, params.get("version_id"))
        if version_error is not None:
            errors["version_id"] = [version_error]
        variables, variables_error = _flow_variables(fields.get("flow_variables"))
        if variables_error is not None:
            errors["flow_variables"] = [variables_error]
        environment, environment_error = _virtual_environment(fields.get("virtual_environment_id"))
        if environment_error is not None:
            errors["virtual_environment_id"] = [environment_error]
        if errors or version_id is None:
            return _validation_error(errors)
        run_id = self._store.new_run_id()
        self._store.record_start(
            run_id,
            int(flow["id"]),
            version_id,
            manual=call.kind == "manual",
            payload_size=len(fields["payload"].encode("utf-8")),
            at=call.at,
        )
        self.starts.append(
            StartedRun(
                run_id=run_id,
                flow_id=int(flow["id"]),
                version_id=version_id,
                payload=fields["payload"],
                manual=call.kind == "manual",
                flow_variables=variables,
                virtual_environment_id=environment,
                received_at=call.at,
            )
        )
        return _json(200, self._start_reply(run_id))

    def _resolve_version(
        self, flow: Mapping[str, Any], raw_version: str | None
    ) -> tuple[int | None, str | None]:
        """The version to run: the URL's if it belongs to the flow, else the deployed one."""
        if raw_version is None:
            deployed = flow.get("deployed_version_id")
            if deployed is None:
                return None, "The flow has no deployed version."
            return int(deployed), None
        version_id = _as_id(raw_version)
        version = self.versions.get(version_id) if version_id is not None else None
        if version is None or version["flow_id"] != flow["id"]:
            return None, "The selected version id is invalid."
        return version_id, None

    def _start_reply(self, run_id: int) -> dict[str, Any]:
        """The success body, with the run id under the configured key."""
        reply: dict[str, Any] = {"message": "flow initialised"}
        if self._run_id_key.startswith("data."):
            reply["data"] = {self._run_id_key.removeprefix("data."): run_id}
        else:
            reply[self._run_id_key] = run_id
        return reply

    def __repr__(self) -> str:
        where = self._base_url or "not started"
        return f"<FakePatchworks {where} flows={len(self.flows)} starts={len(self.starts)}>"
