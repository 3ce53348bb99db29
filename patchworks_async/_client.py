"""``PatchworksClient``: configuration and life cycle; the one place requests are built.

The client owns what is bound to a running loop (the session, the transport) and creates
it on first use. The resources reach it only through the narrow :class:`._api.Api`
interface, implemented here by :class:`_ClientApi`: a resource knows endpoints and models,
nothing of sessions, limiters or retries.
"""

from __future__ import annotations

import asyncio
import enum
import os
import re
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import aiohttp

from ._api import Api, Finalisable, Service
from ._auth import ApiKeyAuth, Auth, LoginAuth, Secret
from ._config import (
    CREDENTIALS,
    DEFAULT_CORE_URL,
    DEFAULT_LOGIN_URL,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_START_URL,
    DEFAULT_TIMEOUT,
    CallOptions,
    Priority,
    RateLimits,
    RequestKind,
    RetryPolicy,
    check_base_url,
    settings_from_env,
)
from ._errors import ConfigurationError
from ._pagination import AsyncPaginator, ListOptions, paginate
from ._payload import dumps_compact
from ._protocol import RateLimitStatus, Request
from ._ratelimit import InProcessRateLimiter, RateLimiter
from ._transport import SendObserver, Transport
from .resources.flow_runs import FlowRuns
from .resources.flow_versions import FlowVersions
from .resources.flows import Flows
from .resources.lookups import CrossReferenceLookups
from .resources.payloads import Payloads
from .resources.queue import Queue
from .resources.virtual_environments import VirtualEnvironments

__all__ = ["PatchworksClient"]

T = TypeVar("T")


class _Unset(enum.Enum):
    """An option not given to :meth:`PatchworksClient.with_options` (``None`` is a value)."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Final = _Unset.UNSET


class PatchworksClient:
    """An asyncio client for the Patchworks API that keeps the account's rate limits.

    Use one client for the lifetime of an application and share it between tasks::

        async with PatchworksClient(api_key="...") as pw:
            started = await pw.flows.start(101, 9001, {"orders": orders})

    Args:
        api_key: An API key, sent raw in ``Authorization``. Give this, or ``email`` and
            ``password``, never both.
        email: The login email, exchanged with ``password`` for a token at ``login_url``.
        password: The login password.
        core_url: The Core API (flows, runs, lookups).
        start_url: The Start service (flow starts and manual initialise).
        login_url: The login endpoint.
        rate_limits: The account's limits, kept by the default in-process limiter.
        limiter: A limiter to use instead (for example one shared across processes);
            give it the limits, and do not pass ``rate_limits`` here too.
        retry: How failures are retried.
        timeout: Seconds one request may take on the wire, connecting and reading included.
        max_wait: Seconds a request may wait for a rate-limit slot before it raises
            :class:`RateLimitTimeoutError` (nothing is sent); ``None`` (the default) waits
            as long as the limits require.
        max_body_bytes: The largest start body the client will send (8 MiB).
        session: An ``aiohttp.ClientSession`` to borrow: used, never closed.
        tenant: For partner accounts acting for another company: the company id, sent as
            ``patchworks-tenant`` on every request (seen in the vendor dashboard's code,
            not in the API documentation).

    Raises:
        ConfigurationError: the arguments are inconsistent or invalid. Base URLs must be
            ``https://`` unless they point at a loopback host.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        email: str | None = None,
        password: str | None = None,
        core_url: str = DEFAULT_CORE_URL,
        start_url: str = DEFAULT_START_URL,
        login_url: str = DEFAULT_LOGIN_URL,
        rate_limits: RateLimits | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_wait: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        session: aiohttp.ClientSession | None = None,
        tenant: int | str | None = None,
    ) -> None:
        # Redacted at once: a traceback showing this frame's locals shows no secret.
        api_key, password = _redacted(api_key), _redacted(password)
        connection = _Connection(
            credentials=_check_credentials(api_key, email, password),
            core_url=check_base_url("core_url", core_url),
            start_url=check_base_url("start_url", start_url),
            login_url=check_base_url("login_url", login_url),
            limiter=_limiter(limiter, rate_limits),
            max_body_bytes=_check_max_body_bytes(max_body_bytes),
            session=_check_session(session),
            tenant=_check_tenant(tenant),
        )
        options = CallOptions().replace(
            timeout=timeout, max_wait=max_wait, retry=retry or RetryPolicy()
        )
        self._attach(connection, options, owner=True)

    def _attach(self, connection: _Connection, options: CallOptions, *, owner: bool) -> None:
        """Bind this client to a connection (its own, or its parent's) and its options."""
        self._connection = connection
        self._options = options
        self._owner = owner
        api = _ClientApi(connection, options)
        self.flows = Flows(api)
        self.flow_runs = FlowRuns(api)
        self.flow_versions = FlowVersions(api)
        self.payloads = Payloads(api)
        self.queue = Queue(api)
        self.virtual_environments = VirtualEnvironments(api)
        self.cross_reference_lookups = CrossReferenceLookups(api)

    def with_options(
        self,
        *,
        timeout: float | _Unset = UNSET,
        max_wait: float | _Unset | None = UNSET,
        retry: RetryPolicy | _Unset = UNSET,
        priority: Priority | str | _Unset = UNSET,
    ) -> PatchworksClient:
        """A client that shares this one's session, credentials and limiter, with other
        options for its requests.

        Only what is named changes. An API handler beside a bulk job, for example::

            interactive = pw.with_options(max_wait=2.0, priority="high", timeout=10)
            await interactive.flows.start(101, 9001, order)   # ahead of the bulk job

        The new client is closed with this one; closing it does nothing.

        Args:
            timeout: Seconds a request may take on the wire.
            max_wait: Seconds a request may wait for a rate-limit slot (``None``: no limit).
            retry: How failures are retried.
            priority: ``"high"`` is served ahead of ``"normal"`` requests waiting for the
                same budget (by the in-process limiter; the Redis one serves in order).

        Raises:
            ConfigurationError: an option that cannot be used.
        """
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("timeout", timeout),
                ("max_wait", max_wait),
                ("retry", retry),
                ("priority", priority),
            )
            if value is not UNSET
        }
        view = object.__new__(type(self))
        view._attach(self._connection, self._options.replace(**changes), owner=False)
        return view

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """A client configured from ``PATCHWORKS_*`` environment variables.

        Reads ``PATCHWORKS_API_KEY``, ``PATCHWORKS_EMAIL``, ``PATCHWORKS_PASSWORD``,
        ``PATCHWORKS_CORE_URL``, ``PATCHWORKS_START_URL`` and ``PATCHWORKS_LOGIN_URL``;
        keyword arguments override them (credentials as a whole: ``api_key=`` ignores the
        ``PATCHWORKS_EMAIL`` and ``PATCHWORKS_PASSWORD`` of the environment) and pass
        anything else through.

        Args:
            environ: The mapping to read instead of ``os.environ``.
            **overrides: Constructor arguments that win over the environment.
        """
        settings: dict[str, Any] = settings_from_env(os.environ if environ is None else environ)
        if CREDENTIALS & overrides.keys():
            # Credentials given as arguments replace the environment's as a whole: an
            # api_key never clashes with a PATCHWORKS_EMAIL left in the environment.
            settings = {k: v for k, v in settings.items() if k not in CREDENTIALS}
        settings.update(overrides)
        return cls(**settings)

    # ------------------------------------------------------------------ what it is

    @property
    def core_url(self) -> str:
        """The Core API's base URL."""
        return self._connection.core_url

    @property
    def start_url(self) -> str:
        """The Start service's base URL."""
        return self._connection.start_url

    @property
    def login_url(self) -> str:
        """The login endpoint."""
        return self._connection.login_url

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter every request of this client (and its views) goes through."""
        return self._connection.limiter

    @property
    def rate_limits(self) -> RateLimits | None:
        """The limits kept: the limiter's own when it says (``None`` when it does not)."""
        kept = getattr(self._connection.limiter, "rate_limits", None)
        return kept if isinstance(kept, RateLimits) else None

    @property
    def retry(self) -> RetryPolicy:
        """How this client's failures are retried."""
        return self._options.retry

    @property
    def timeout(self) -> float:
        """Seconds one of this client's requests may take on the wire."""
        return self._options.timeout

    @property
    def max_wait(self) -> float | None:
        """Seconds one of this client's requests may wait for a rate-limit slot."""
        return self._options.max_wait

    @property
    def priority(self) -> Priority:
        """Whether this client's requests go ahead of normal ones waiting for a slot."""
        return self._options.priority

    @property
    def max_body_bytes(self) -> int:
        """The largest start body the client sends."""
        return self._connection.max_body_bytes

    @property
    def tenant(self) -> str | None:
        """The company id sent as ``patchworks-tenant``, if any."""
        return self._connection.tenant

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The last ``X-RateLimit-*`` headers seen, or ``None`` before any."""
        transport = self._connection.transport
        return transport.rate_limit if transport is not None else None

    # ------------------------------------------------------------------ life cycle

    async def __aenter__(self) -> Self:
        self._connection.ready()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Finish what is open, then close the session the client created.

        Every ``flows.start_many`` still running on this client is stopped first and
        drained (its requests in flight finish within its ``drain_timeout``, every known
        outcome is journaled), so that closing the client never loses an outcome, even
        after a ``break`` out of a bulk start without ``async with``. A borrowed session
        is left open. A client made by :meth:`with_options` is closed with the client it
        came from: its own ``aclose()`` does nothing.
        """
        if self._owner:
            await self._connection.aclose()

    def __repr__(self) -> str:
        connection: _Connection | None = getattr(self, "_connection", None)
        if connection is None:  # a constructor that raised: shown in a traceback's locals
            return "PatchworksClient(<not configured>)"
        return (
            f"PatchworksClient(auth={connection.credentials.kind!r}, "
            f"core_url={connection.core_url!r}, start_url={connection.start_url!r})"
        )


class _Connection:
    """What a client and its :meth:`PatchworksClient.with_options` views share: the URLs,
    the credentials, the limiter, and (created in the running loop on first use) the
    session and transport, and the work that closing must finish first."""

    def __init__(
        self,
        *,
        credentials: _Credentials,
        core_url: str,
        start_url: str,
        login_url: str,
        limiter: RateLimiter,
        max_body_bytes: int,
        session: aiohttp.ClientSession | None,
        tenant: str | None,
    ) -> None:
        self.credentials = credentials
        self.core_url = core_url
        self.start_url = start_url
        self.login_url = login_url
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.tenant = tenant
        self.borrowed_session = session
        self.transport: Transport | None = None
        self.running: set[Finalisable] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._login_options = CallOptions()

    def ready(self) -> Transport:
        """The transport, created on first use inside the running loop."""
        if self._closed:
            raise RuntimeError("this PatchworksClient is closed")
        loop = asyncio.get_running_loop()
        if self.transport is not None:
            if self._loop is not loop:
                raise RuntimeError(
                    "this PatchworksClient is bound to the event loop it was first used in; "
                    "create one client per event loop"
                )
            return self.transport
        session = self.borrowed_session or aiohttp.ClientSession()
        self.transport = Transport(
            session=session,
            auth=self._make_auth(),
            limiter=self.limiter,
            headers=None if self.tenant is None else {"patchworks-tenant": self.tenant},
        )
        self._loop = loop
        return self.transport

    def _make_auth(self) -> Auth:
        credentials = self.credentials
        if credentials.kind == "api_key":
            return ApiKeyAuth(credentials.secrets[0])
        email, password = credentials.secrets

        async def login() -> tuple[str, float]:
            return await self.ready().login(self.login_url, email, password, self._login_options)

        return LoginAuth(login)

    async def aclose(self) -> None:
        self._closed = True
        running = list(self.running)
        for work in running:
            work.stop()
        for work in running:
            await work.settled()
        transport, self.transport = self.transport, None
        if transport is not None and self.borrowed_session is None:
            await transport.session.close()


class _ClientApi(Api):
    """A client as its resources see it: build a request, send it, stream a list."""

    __slots__ = ("_connection", "_options")

    def __init__(self, connection: _Connection, options: CallOptions) -> None:
        self._connection = connection
        self._options = options

    @property
    def start_url(self) -> str:
        return self._connection.start_url

    @property
    def max_body_bytes(self) -> int:
        return self._connection.max_body_bytes

    async def request(
        self,
        service: Service,
        method: str,
        path: Sequence[str | int],
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        json: Any = None,
        kind: RequestKind = RequestKind.ORDINARY,
        idempotent: bool | None = None,
        observer: SendObserver | None = None,
        raw_reply: bool = False,
    ) -> Any:
        connection = self._connection
        base = connection.core_url if service == "core" else connection.start_url
        url = base + "".join(map(_path_segment, path))
        if json is not None:
            body = dumps_compact(json).encode()
        request = Request.build(
            method,
            url,
            params=params,
            body=body,
            kind=kind,
            idempotent=idempotent,
            raw_reply=raw_reply,
        )
        return await connection.ready().request(request, self._options, observer)

    def paginate(
        self,
        path: Sequence[str | int],
        item_type: type[T],
        options: ListOptions,
        *,
        params: Sequence[tuple[str, str]] = (),
    ) -> AsyncPaginator[T]:
        async def fetch(page: list[tuple[str, str]]) -> Any:
            return await self.request("core", "GET", path, params=[*params, *page])

        return paginate(fetch, item_type, options)

    def track(self, work: Finalisable) -> None:
        self._connection.running.add(work)

    def untrack(self, work: Finalisable) -> None:
        self._connection.running.discard(work)


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")


def _path_segment(segment: str | int) -> str:
    """``/segment``, percent-quoted unless plainly safe: an id cannot smuggle in a ``/``."""
    if type(segment) is int:
        return f"/{segment}"
    text = str(segment)
    if _PLAIN_SEGMENT.fullmatch(text) and text not in (".", ".."):
        return "/" + text
    return "/" + quote(text, safe="")


def _limiter(limiter: RateLimiter | None, rate_limits: RateLimits | None) -> RateLimiter:
    """The limiter given, or an in-process one keeping ``rate_limits`` (not both)."""
    if limiter is None:
        return InProcessRateLimiter(rate_limits or RateLimits())
    if rate_limits is not None:
        raise ConfigurationError(
            "pass rate_limits to the limiter you give, not to the client as well"
        )
    if not isinstance(limiter, RateLimiter):
        raise ConfigurationError("limiter must have async acquire(kind) and pause(seconds)")
    return limiter


def _check_max_body_bytes(max_body_bytes: object) -> int:
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
        raise ConfigurationError(f"max_body_bytes must be an int: {max_body_bytes!r}")
    if max_body_bytes <= 0:
        raise ConfigurationError(f"max_body_bytes must be positive: {max_body_bytes!r}")
    return max_body_bytes


def _check_session(session: object) -> aiohttp.ClientSession | None:
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise ConfigurationError("session must be an aiohttp.ClientSession")
    return session


def _check_tenant(tenant: object) -> str | None:
    """A tenant id fit for a header: an int, or a string without control characters."""
    if tenant is None:
        return None
    if isinstance(tenant, bool) or not isinstance(tenant, int | str) or tenant == "":
        raise ConfigurationError(f"tenant must be an int or a non-empty str, not {tenant!r}")
    text = str(tenant)
    if not text.isprintable() or text != text.strip():
        raise ConfigurationError(f"tenant must be printable, without spaces around: {text!r}")
    return text


def _redacted(secret: str | None) -> str | None:
    return Secret(secret) if isinstance(secret, str) else secret


class _Credentials:
    """The secrets, kept where no ``repr`` or traceback of locals prints them."""

    __slots__ = ("kind", "secrets")

    def __init__(self, kind: str, secrets: tuple[Secret, ...]) -> None:
        self.kind = kind
        self.secrets = secrets

    def __repr__(self) -> str:
        return f"<{self.kind} credentials>"


def _check_credentials(api_key: object, email: object, password: object) -> _Credentials:
    """Exactly one of an API key or an email and password; messages never echo a secret."""
    for name, value in (("api_key", api_key), ("email", email), ("password", password)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigurationError(f"{name} must be a non-empty string")
    if isinstance(api_key, str) and not api_key.isprintable():
        # It goes into a header as it is: a line break would end the header early.
        raise ConfigurationError("api_key must be printable: it holds a line break or tab")
    if api_key is not None and (email is not None or password is not None):
        raise ConfigurationError("give either api_key or email and password, not both")
    if isinstance(api_key, str):
        return _Credentials("api_key", (Secret(api_key),))
    if isinstance(email, str) and isinstance(password, str):
        return _Credentials("login", (Secret(email), Secret(password)))
    if email is not None or password is not None:
        raise ConfigurationError("email and password must be given together")
    raise ConfigurationError(
        "no credentials: give api_key, or email and password "
        "(PatchworksClient.from_env() reads PATCHWORKS_API_KEY or PATCHWORKS_EMAIL and "
        "PATCHWORKS_PASSWORD)"
    )
