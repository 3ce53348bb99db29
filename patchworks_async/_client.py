"""``PatchworksClient``: configuration and life cycle; the one place requests are built.

The client owns what is bound to a running loop (the session, the transport) and creates
it on first use. The resources reach it only through the narrow :class:`._api.Api`
interface, implemented here by :class:`_ClientApi`: a resource knows endpoints and models,
nothing of sessions, limiters or retries.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp

from ._api import Api, Finalisable, Service
from ._auth import ApiKeyAuth, Auth, LoginAuth
from ._config import (
    DEFAULT_CORE_URL,
    DEFAULT_LOGIN_URL,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_START_URL,
    DEFAULT_TIMEOUT,
    RateLimits,
    RetryPolicy,
    check_base_url,
    settings_from_env,
)
from ._errors import ConfigurationError
from ._pagination import AsyncPaginator, ListOptions, paginate
from ._payload import dumps_compact
from ._protocol import RateLimitStatus, Request
from ._ratelimit import InProcessRateLimiter, RateLimiter, RequestKind
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
        timeout: Seconds one request may take, connecting and reading included.
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
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        session: aiohttp.ClientSession | None = None,
        tenant: int | str | None = None,
    ) -> None:
        self._credentials = _check_credentials(api_key, email, password)
        self.core_url = check_base_url("core_url", core_url)
        self.start_url = check_base_url("start_url", start_url)
        self.login_url = check_base_url("login_url", login_url)
        if limiter is not None and rate_limits is not None:
            raise ConfigurationError(
                "pass rate_limits to the limiter you give, not to the client as well"
            )
        if limiter is not None and not isinstance(limiter, RateLimiter):
            raise ConfigurationError("limiter must have async acquire(kind) and pause(seconds)")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds: {timeout!r}")
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
            raise ConfigurationError(f"max_body_bytes must be an int: {max_body_bytes!r}")
        if max_body_bytes <= 0:
            raise ConfigurationError(f"max_body_bytes must be positive: {max_body_bytes!r}")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError("session must be an aiohttp.ClientSession")
        self.limiter: RateLimiter
        self.rate_limits: RateLimits | None
        """The limits kept: the limiter's own when it says (``None`` when it does not)."""
        if limiter is None:
            self.rate_limits = rate_limits or RateLimits()
            self.limiter = InProcessRateLimiter(self.rate_limits)
        else:
            self.limiter = limiter
            kept = getattr(limiter, "rate_limits", None)
            self.rate_limits = kept if isinstance(kept, RateLimits) else None
        self.retry = retry or RetryPolicy()
        self.timeout = float(timeout)
        self.max_body_bytes = max_body_bytes
        self.tenant = _check_tenant(tenant)
        self._borrowed_session = session
        self._transport: Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._running: set[Finalisable] = set()
        api = _ClientApi(self)
        self.flows = Flows(api)
        self.flow_runs = FlowRuns(api)
        self.flow_versions = FlowVersions(api)
        self.payloads = Payloads(api)
        self.queue = Queue(api)
        self.virtual_environments = VirtualEnvironments(api)
        self.cross_reference_lookups = CrossReferenceLookups(api)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """A client configured from ``PATCHWORKS_*`` environment variables.

        Reads ``PATCHWORKS_API_KEY``, ``PATCHWORKS_EMAIL``, ``PATCHWORKS_PASSWORD``,
        ``PATCHWORKS_CORE_URL``, ``PATCHWORKS_START_URL`` and ``PATCHWORKS_LOGIN_URL``;
        keyword arguments override them and pass anything else through.

        Args:
            environ: The mapping to read instead of ``os.environ``.
            **overrides: Constructor arguments that win over the environment.
        """
        settings: dict[str, Any] = settings_from_env(os.environ if environ is None else environ)
        settings.update(overrides)
        return cls(**settings)

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The last ``X-RateLimit-*`` headers seen, or ``None`` before any."""
        return self._transport.rate_limit if self._transport is not None else None

    async def __aenter__(self) -> Self:
        self._ready()
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
        is left open.
        """
        self._closed = True
        running = list(self._running)
        for work in running:
            work.stop()
        for work in running:
            await work.settled()
        transport, self._transport = self._transport, None
        if transport is not None and self._borrowed_session is None:
            await transport.session.close()

    def _ready(self) -> Transport:
        """The transport, created on first use inside the running loop."""
        if self._closed:
            raise RuntimeError("this PatchworksClient is closed")
        loop = asyncio.get_running_loop()
        if self._transport is not None:
            if self._loop is not loop:
                raise RuntimeError(
                    "this PatchworksClient is bound to the event loop it was first used in; "
                    "create one client per event loop"
                )
            return self._transport
        session = self._borrowed_session or aiohttp.ClientSession()
        transport = Transport(
            session=session,
            auth=self._make_auth(),
            limiter=self.limiter,
            retry=self.retry,
            timeout=self.timeout,
            headers=None if self.tenant is None else {"patchworks-tenant": self.tenant},
        )
        self._transport, self._loop = transport, loop
        return transport

    def _make_auth(self) -> Auth:
        credentials = self._credentials
        if credentials.kind == "api_key":
            return ApiKeyAuth(credentials.secrets[0])
        email, password = credentials.secrets

        async def login() -> tuple[str, float]:
            return await self._ready().login(self.login_url, email, password)

        return LoginAuth(login)

    def __repr__(self) -> str:
        return (
            f"PatchworksClient(auth={self._credentials.kind!r}, core_url={self.core_url!r}, "
            f"start_url={self.start_url!r})"
        )


class _ClientApi(Api):
    """The client as its resources see it: build a request, send it, stream a list."""

    __slots__ = ("_client",)

    def __init__(self, client: PatchworksClient) -> None:
        self._client = client

    @property
    def start_url(self) -> str:
        return self._client.start_url

    @property
    def max_body_bytes(self) -> int:
        return self._client.max_body_bytes

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
        client = self._client
        base = client.core_url if service == "core" else client.start_url
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
        return await client._ready().request(request, observer)

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
        self._client._running.add(work)

    def untrack(self, work: Finalisable) -> None:
        self._client._running.discard(work)


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")


def _path_segment(segment: str | int) -> str:
    """``/segment``, percent-quoted unless plainly safe: an id cannot smuggle in a ``/``."""
    if type(segment) is int:
        return f"/{segment}"
    text = str(segment)
    if _PLAIN_SEGMENT.fullmatch(text) and text not in (".", ".."):
        return "/" + text
    return "/" + quote(text, safe="")


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


class _Credentials:
    """The secrets, kept where no ``repr`` or traceback of locals prints them."""

    __slots__ = ("kind", "secrets")

    def __init__(self, kind: str, secrets: tuple[str, ...]) -> None:
        self.kind = kind
        self.secrets = secrets

    def __repr__(self) -> str:
        return f"<{self.kind} credentials>"


def _check_credentials(
    api_key: str | None, email: str | None, password: str | None
) -> _Credentials:
    """Exactly one of an API key or an email and password; messages never echo a secret."""
    for name, value in (("api_key", api_key), ("email", email), ("password", password)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigurationError(f"{name} must be a non-empty string")
    if api_key is not None and (email is not None or password is not None):
        raise ConfigurationError("give either api_key or email and password, not both")
    if api_key is not None:
        return _Credentials("api_key", (api_key,))
    if email is not None and password is not None:
        return _Credentials("login", (email, password))
    if email is not None or password is not None:
        raise ConfigurationError("email and password must be given together")
    raise ConfigurationError(
        "no credentials: give api_key, or email and password "
        "(PatchworksClient.from_env() reads PATCHWORKS_API_KEY or PATCHWORKS_EMAIL and "
        "PATCHWORKS_PASSWORD)"
    )
