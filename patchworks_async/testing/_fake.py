"""``FakePatchworks``: an in-process stand-in for the Patchworks API, served over real sockets.

The real services cannot be reached from a test run, and mocking the HTTP layer would hide
exactly the behaviour a rate-limited client must get right (arrival times, connection reuse,
dropped connections, 429s carrying headers). So the fake serves an ``aiohttp.web``
application on loopback that answers like the documented API: the same URLs and auth
schemes, the same error bodies, Laravel's fixed-window throttle, and switches to inject the
failures a client must survive without starting a flow twice. Holds park requests or their
replies until the test lets them go, so tests of stopping and cancelling a client order
events instead of racing sleeps.

This module is the front door: configuration, life cycle, URLs and the public API, each
part handed to the collaborator that owns it. To walk through the fake, read on from here:

* ``_pipeline``: how one request is handled, every check in the real stack's order;
* ``_routes``: the whole API on one screen, and how a request finds its route;
* ``_auth``: API keys, users, login tokens; ``_rate_limits`` and ``_throttle``: the
  throttles; ``_faults``: injected failures; ``_holds``: parked requests and replies;
* ``_starts``: the start and manual-initialise routes, standard and raw;
* ``_fake_data``: the data side of this class (live dicts, seeding, ``_switches``);
* ``_store``: the Core API: flows and versions (``_flows``, ``_versions``,
  ``_bundles``), runs (``_flow_runs``) with their queue, payloads and logs (``_queue``,
  ``_payloads``, ``_logs``) tied together by ``_lifecycle`` on the lazy ``_timeline``,
  virtual environments and lookups (``_environments``, ``_lookups``); all sharing
  ``_resources``, ``_form`` and ``_moments``, and Laravel's list rules in
  ``_laravel_query``;
* ``_records``: what the fake saw; ``_http``: the aiohttp plumbing they all share.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypedDict

from aiohttp import web

from ._auth import DEFAULT_USERS, Auth
from ._checks import check_int
from ._co_tenant import check_co_tenant
from ._fake_data import FakeData, check_wrap_writes_in_data
from ._faults import Fault, FaultInjector, Injection
from ._holds import HoldPhase, Holds, ReplyHold
from ._http import Handler, Shutdown, core_handler
from ._pipeline import RequestPipeline, check_latency
from ._rate_limits import RateLimits
from ._records import ReceivedRequest, Records, StartedRun
from ._routes import RouteKind
from ._starts import StartRoutes
from ._store import Store
from ._switches import (
    check_queue_delay,
    check_run_duration,
    check_run_id_key,
    check_run_outcome,
)

if TYPE_CHECKING:
    from patchworks_async import PatchworksClient

__all__ = ["FakePatchworks", "ServiceURLs"]

#: Seconds aiohttp waits for in-flight handlers on close; sleeps are cut short anyway.
_SHUTDOWN_TIMEOUT: Final = 0.25


class ServiceURLs(TypedDict):
    """The three base URLs a client needs, as ``PatchworksClient`` names its arguments."""

    core_url: str
    start_url: str
    login_url: str


class FakePatchworks(FakeData):
    """A Patchworks API look-alike served on loopback, for tests, benchmarks and demos.

    Use it as ``async with FakePatchworks() as fake:`` then point a client at
    ``fake.urls`` with ``fake.api_key`` (or ``fake.email`` / ``fake.password``). Everything
    the fake saw is in ``received``, every start it accepted in ``starts``; ``inject``
    arms failures and ``hold`` parks requests until the test releases them. The data it
    serves and the switches that pick between undocumented variants come from
    ``FakeData``. All state lives on the instance; nothing touches an event loop until
    ``start()``.

    The server is single-use: once closed it cannot be started again.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = ("test-api-key",),
        users: Mapping[str, str] = DEFAULT_USERS,
        token_ttl: float = 86400.0,
        requests_per_window: int = 240,
        manual_per_window: int = 10,
        starts_per_window: int | None = None,
        window: float = 60.0,
        max_body_bytes: int = 8 * 1024 * 1024,
        latency: float | tuple[float, float] = 0.0,
        run_id_key: str | None = "flow_run_id",
        run_duration: float = 0.5,
        run_outcome: int = 2,
        queue_delay: float = 0.5,
        wrap_writes_in_data: bool = True,
        co_tenant: float = 0.0,
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
            run_id_key: Where the run id goes in a start (or retry) reply: one of
                ``flow_run_id``, ``run_id``, ``flowRunId``, ``id``, ``data.id``,
                ``data.flow_run_id``, or None for no id at all (the real key is
                undocumented, so clients must cope with each).
            run_duration: Seconds a run stays STARTED (1) before it finishes; computed
                when runs are read, no timer runs.
            run_outcome: The status a run finishes with: 2 success, 3 failure,
                4 stopped, 5 partial success.
            queue_delay: Seconds a ``/start`` waits in the queue before it becomes a run
                (``/manual`` and retries run at once); until then the run is a 404.
                Computed when read, like ``run_duration``.
            wrap_writes_in_data: Whether write replies (flow create, import and
                duplicate; version create and update) come as ``{"data": {...}}`` or
                bare: the reference documents them only as "object".
            co_tenant: The share (0 to below 1) of ``requests_per_window`` that another
                consumer of the account spends in every window, at a steady pace, counted
                by the same throttle as the client's requests (see ``co_tenant``).
            seed: Seed of the jitter RNG, for reproducible arrival times.
            host: Interface to listen on.
            port: Port to listen on; 0 picks a free one.

        Raises:
            TypeError: If ``api_keys`` is a bare string (a common slip).
            ValueError: On an empty key or user list or an out-of-range setting.
        """
        # Every setting is checked before anything is built, in the order of the arguments.
        check_run_id_key(run_id_key)
        self._auth = Auth(api_keys, users, token_ttl)
        max_body_bytes = check_int("max_body_bytes", max_body_bytes, minimum=0)
        latency = check_latency(latency)
        self._rate_limits = RateLimits(
            requests_per_window=requests_per_window,
            manual_per_window=manual_per_window,
            starts_per_window=starts_per_window,
            window=window,
            co_tenant=co_tenant,
        )
        check_wrap_writes_in_data(wrap_writes_in_data)
        super().__init__(
            Store(
                run_duration=check_run_duration(run_duration),
                run_outcome=check_run_outcome(run_outcome),
                queue_delay=check_queue_delay(queue_delay),
                run_id_key=run_id_key,
                wrap_writes_in_data=wrap_writes_in_data,
            )
        )
        self._records = Records()
        self._shutdown = Shutdown()
        self._faults = FaultInjector(self._records, self._shutdown)
        self._holds = Holds(self._shutdown)
        self._starts = StartRoutes(self._store, self._records)
        handlers: dict[str, Handler] = {
            "start_flow": self._starts.start_flow,
            "start_raw_flow": self._starts.start_raw_flow,
        }
        for name, route in self._store.routes().items():
            handlers[name] = core_handler(route)
        self._pipeline = RequestPipeline(
            auth=self._auth,
            rate_limits=self._rate_limits,
            records=self._records,
            faults=self._faults,
            holds=self._holds,
            shutdown=self._shutdown,
            handlers=handlers,
            configure=self.configure,
            state=self.state,
            max_body_bytes=max_body_bytes,
            latency=latency,
            seed=seed,
        )
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._used = False
        self.add_flow(
            "Orders to ERP",
            id=101,
            versions=(9001, 9002),
            deployed_version=9001,
            description="Demo flow",
        )
        self.app: web.Application = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._pipeline.handle)

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start serving on ``host``:``port`` and fill in the URLs.

        Raises:
            RuntimeError: If the fake was already started (it is single-use).
        """
        if self._used:
            raise RuntimeError("FakePatchworks is single-use: it was already started")
        self._used = True
        self._shutdown.arm()
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
        self._shutdown.trigger()
        self._holds.release_all()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """Start serving (see ``start``)."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving (see ``close``)."""
        await self.close()

    def __repr__(self) -> str:
        """Where it serves, and how much it holds and has accepted."""
        where = self._base_url or "not started"
        return f"<FakePatchworks {where} flows={len(self.flows)} starts={len(self.starts)}>"

    # ------------------------------------------------------------------ URLs and credentials

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
    def alternative_login_url(self) -> str:
        """Full URL of the alternative login route (app.wearepatchworks.com's form).

        Both login routes take ``{"email", "password"}`` or ``{"username", "password"}``.
        """
        return f"{self.base_url}/fabric/api/login"

    @property
    def urls(self) -> ServiceURLs:
        """``core_url``, ``start_url`` and ``login_url``, ready to pass as keyword arguments.

        Typed, so that ``PatchworksClient(api_key=fake.api_key, **fake.urls)`` type-checks.
        """
        return ServiceURLs(
            core_url=self.core_url, start_url=self.start_url, login_url=self.login_url
        )

    def client(self, **overrides: Any) -> PatchworksClient:
        """A ``PatchworksClient`` for this fake, ready for fast tests.

        Pointed at the fake's URLs with its API key, keeping the fake's own limits (its
        window and request counts) with no pacing under them, and retrying at once: a test
        of a hundred starts runs in a fraction of a second, and never meets a 429 it did
        not set up. Use it as ``async with fake.client() as pw:``.

        Args:
            **overrides: Any ``PatchworksClient`` argument, e.g. ``email=fake.email,
                password=fake.password`` to log in, or ``max_wait=...``.
        """
        from patchworks_async import InProcessRateLimiter, PatchworksClient, RetryPolicy
        from patchworks_async import RateLimits as ClientLimits

        requests, manual, starts, window = self._rate_limits.settings
        limits = ClientLimits(requests=requests, manual_starts=manual, starts=starts, per=window)
        settings: dict[str, Any] = {**self.urls, "retry": RetryPolicy(backoff_base=0.0)}
        if "email" not in overrides:
            settings["api_key"] = self.api_key
        if "limiter" not in overrides and "rate_limits" not in overrides:
            # Bursts up to the whole budget: the limiter's window still keeps the fake's.
            settings["limiter"] = InProcessRateLimiter(limits, burst=requests)
        settings.update(overrides)
        return PatchworksClient(**settings)

    @property
    def api_key(self) -> str:
        """The first configured API key."""
        return self._auth.api_key

    @property
    def email(self) -> str:
        """The first configured user's email."""
        return self._auth.email

    @property
    def password(self) -> str:
        """The first configured user's password."""
        return self._auth.password

    # ------------------------------------------------------------------ settings

    @property
    def token_ttl(self) -> float:
        """Seconds a login token lives (also the ``expires_in`` sent); settable."""
        return self._auth.token_ttl

    @token_ttl.setter
    def token_ttl(self, value: float) -> None:
        self._auth.token_ttl = value

    @property
    def max_body_bytes(self) -> int:
        """Largest request body accepted; one byte more is a 413. Settable."""
        return self._pipeline.max_body_bytes

    @max_body_bytes.setter
    def max_body_bytes(self, value: int) -> None:
        self._pipeline.max_body_bytes = value

    @property
    def latency(self) -> float | tuple[float, float]:
        """Arrival delay: seconds, or a ``(min, max)`` range for uniform jitter. Settable."""
        return self._pipeline.latency

    @latency.setter
    def latency(self, value: float | tuple[float, float]) -> None:
        self._pipeline.latency = check_latency(value)

    @property
    def co_tenant(self) -> float:
        """The share of ``requests_per_window`` another consumer spends per window; settable.

        The co-tenant sends one request every ``window / (co_tenant * requests_per_window)``
        seconds from the moment it is set, as a steady integration would, to ordinary
        routes: the account-wide throttle counts its requests with the client's, so
        ``X-RateLimit-Remaining`` falls faster than the client's own requests explain, and
        a client that ignores it gets 429s. When the window is full its request is refused
        and dropped (it keeps its pace). No request of its appears in ``received``; its
        counts are in ``state()["co_tenant"]``. 0 (the default) means none; setting a new
        share starts a new stream at once.
        """
        return self._rate_limits.co_tenant

    @co_tenant.setter
    def co_tenant(self, value: float) -> None:
        self._rate_limits.set_co_tenant(value, time.monotonic())

    def configure(self, **switches: Any) -> dict[str, Any]:
        """Set several switches at once, all or none; also ``POST /_fake/settings``.

        For a fake in another process (``RemoteFake.configure``), where the properties
        cannot be reached.

        Args:
            **switches: ``run_id_key``, ``wrap_writes_in_data``, ``queue_delay``,
                ``run_duration``, ``run_outcome`` and ``co_tenant``, as their properties
                take them.

        Returns:
            Every switch's value, after the change.

        Raises:
            ValueError: On an unknown switch or a value its check refuses (then nothing
                changes).
        """
        co_tenant = switches.pop("co_tenant", None)
        if co_tenant is not None:
            check_co_tenant(co_tenant)
        settings = super().configure(**switches)  # checks all of them before setting any
        if co_tenant is not None:
            self.co_tenant = co_tenant
        return {**settings, "co_tenant": self.co_tenant}

    @property
    def slow_seconds(self) -> float:
        """How long ``Fault.SLOW_AFTER`` delays a reply, in seconds (5 by default). Settable."""
        return self._faults.slow_seconds

    @slow_seconds.setter
    def slow_seconds(self, value: float) -> None:
        self._faults.slow_seconds = value

    # ------------------------------------------------------------------ faults and holds

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
        self._faults.inject(fault, times=times, route=route)

    def clear_faults(self) -> None:
        """Disarm every pending injected fault."""
        self._faults.clear()

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
        return self._holds.add(route, when)

    # ------------------------------------------------------------------ records

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request that reached the fake, whatever its fate, in the order answered."""
        return self._records.received

    @received.setter
    def received(self, value: list[ReceivedRequest]) -> None:
        self._records.received = value

    @property
    def starts(self) -> list[StartedRun]:
        """Every start accepted by a start or manual route (standard or raw), in arrival order.

        Retries are not starts: they are in ``flow_runs`` (``trigger`` ``Retry``).
        """
        return self._records.starts

    @starts.setter
    def starts(self, value: list[StartedRun]) -> None:
        self._records.starts = value

    @property
    def throttled(self) -> int:
        """How many requests got a 429."""
        return self._records.throttled

    @throttled.setter
    def throttled(self, value: int) -> None:
        self._records.throttled = value

    @property
    def throttled_by(self) -> dict[str, int]:
        """429s by the key of the refusing throttle (``"global"``, ``"manual"``, ``"starts"``)."""
        return self._records.throttled_by

    @throttled_by.setter
    def throttled_by(self, value: dict[str, int]) -> None:
        self._records.throttled_by = value

    @property
    def login_count(self) -> int:
        """How many requests reached the login logic (right credentials or not)."""
        return self._records.login_count

    @login_count.setter
    def login_count(self, value: int) -> None:
        self._records.login_count = value

    def state(self) -> dict[str, Any]:
        """What the fake has seen, as JSON-ready data (also ``GET /_fake/state``).

        For tests that run the fake in another process (``patchworks fake-server``) and
        still need to count what it accepted. ``co_tenant`` holds the co-tenant's share and
        its requests counted (``hits``) and refused, up to now.
        """
        return {
            **self._records.state(),
            "co_tenant": self._rate_limits.co_tenant_state(time.monotonic()),
        }

    def reset_records(self) -> None:
        """Clear ``received``, ``starts`` and the counters; throttle windows are kept."""
        self._records.reset()

    def reset_throttle(self) -> None:
        """Close every throttle window, as if the server's cache had been flushed."""
        self._rate_limits.reset()

    def revoke_tokens(self) -> None:
        """Invalidate every login token issued so far (API keys stay valid)."""
        self._auth.revoke_tokens()

    # ------------------------------------------------------------------ for the fake's own tests

    @property
    def _injections(self) -> list[Injection]:
        """The armed faults, oldest first (tests look here to see them disarmed)."""
        return self._faults.pending

    def _sample_latency(self) -> float:
        """Draw one arrival delay, as the pipeline does for each request."""
        return self._pipeline.sample_latency()
