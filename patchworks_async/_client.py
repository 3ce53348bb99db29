"""``PatchworksClient``: the public face: its arguments, its options, its life cycle.

What a client shares with its ``with_options`` views (URLs, credentials, limiter, and the
session and transport created in the running loop on first use) is a
:class:`._connection.Connection`; the resources reach it only through the narrow
:class:`._api.Api`, implemented by :class:`._connection.ClientApi`: a resource knows
endpoints and models, nothing of sessions, limiters or retries.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import aiohttp

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
    RetryPolicy,
    check_base_url,
    settings_from_env,
)
from ._connection import (
    ClientApi,
    Connection,
    check_credentials,
    check_max_body_bytes,
    check_session,
    check_tenant,
    choose_limiter,
    redacted,
)
from ._protocol import RateLimitStatus
from ._ratelimit import RateLimiter
from .resources.flow_runs import FlowRuns
from .resources.flow_versions import FlowVersions
from .resources.flows import Flows
from .resources.lookups import CrossReferenceLookups
from .resources.payloads import Payloads
from .resources.queue import Queue
from .resources.virtual_environments import VirtualEnvironments

__all__ = ["PatchworksClient"]

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
        api_key, password = redacted(api_key), redacted(password)
        connection = Connection(
            credentials=check_credentials(api_key, email, password),
            core_url=check_base_url("core_url", core_url),
            start_url=check_base_url("start_url", start_url),
            login_url=check_base_url("login_url", login_url),
            limiter=choose_limiter(limiter, rate_limits),
            max_body_bytes=check_max_body_bytes(max_body_bytes),
            session=check_session(session),
            tenant=check_tenant(tenant),
        )
        options = CallOptions().replace(
            timeout=timeout, max_wait=max_wait, retry=retry or RetryPolicy()
        )
        self._attach(connection, options, owner=True)

    def _attach(self, connection: Connection, options: CallOptions, *, owner: bool) -> None:
        """Bind this client to a connection (its own, or its parent's) and its options."""
        self._connection = connection
        self._options = options
        self._owner = owner
        api = ClientApi(connection, options)
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
        connection: Connection | None = getattr(self, "_connection", None)
        if connection is None:  # a constructor that raised: shown in a traceback's locals
            return "PatchworksClient(<not configured>)"
        return (
            f"PatchworksClient(auth={connection.credentials.kind!r}, "
            f"core_url={connection.core_url!r}, start_url={connection.start_url!r})"
        )
