"""What a client and its ``with_options`` views share, and how requests are built.

:class:`Connection` holds the URLs, the credentials, the limiter and (created inside the
running loop on first use) the session and transport. :class:`ClientApi` is the narrow
:class:`._api.Api` the resources use: it builds each request (the one place URLs are put
together) and sends it with its client's options. The checks of the client's arguments
live here too, next to what they configure.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from ._api import Api, Finalisable, Service
from ._auth import ApiKeyAuth, Auth, LoginAuth, Secret
from ._config import CallOptions, RateLimits, RequestKind
from ._errors import ConfigurationError
from ._pagination import AsyncPaginator, ListOptions, paginate
from ._payload import dumps_compact
from ._protocol import Request
from ._ratelimit import InProcessRateLimiter, RateLimiter
from ._transport import SendObserver, Transport

__all__ = [
    "ClientApi",
    "Connection",
    "Credentials",
    "check_credentials",
    "check_max_body_bytes",
    "check_session",
    "check_tenant",
    "choose_limiter",
    "path_segment",
    "redacted",
]

T = TypeVar("T")


class Connection:
    """What a client and its :meth:`PatchworksClient.with_options` views share: the URLs,
    the credentials, the limiter, and (created in the running loop on first use) the
    session and transport, and the work that closing must finish first."""

    def __init__(
        self,
        *,
        credentials: Credentials,
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


class ClientApi(Api):
    """A client as its resources see it: build a request, send it, stream a list."""

    __slots__ = ("_connection", "_options")

    def __init__(self, connection: Connection, options: CallOptions) -> None:
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
        url = base + "".join(map(path_segment, path))
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


def path_segment(segment: str | int) -> str:
    """``/segment``, percent-quoted unless plainly safe: an id cannot smuggle in a ``/``."""
    if type(segment) is int:
        return f"/{segment}"
    text = str(segment)
    if _PLAIN_SEGMENT.fullmatch(text) and text not in (".", ".."):
        return "/" + text
    return "/" + quote(text, safe="")


def choose_limiter(limiter: RateLimiter | None, rate_limits: RateLimits | None) -> RateLimiter:
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


def check_max_body_bytes(max_body_bytes: object) -> int:
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
        raise ConfigurationError(f"max_body_bytes must be an int: {max_body_bytes!r}")
    if max_body_bytes <= 0:
        raise ConfigurationError(f"max_body_bytes must be positive: {max_body_bytes!r}")
    return max_body_bytes


def check_session(session: object) -> aiohttp.ClientSession | None:
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise ConfigurationError("session must be an aiohttp.ClientSession")
    return session


def check_tenant(tenant: object) -> str | None:
    """A tenant id fit for a header: an int, or a string without control characters."""
    if tenant is None:
        return None
    if isinstance(tenant, bool) or not isinstance(tenant, int | str) or tenant == "":
        raise ConfigurationError(f"tenant must be an int or a non-empty str, not {tenant!r}")
    text = str(tenant)
    if not text.isprintable() or text != text.strip():
        raise ConfigurationError(f"tenant must be printable, without spaces around: {text!r}")
    return text


def redacted(secret: str | None) -> str | None:
    return Secret(secret) if isinstance(secret, str) else secret


class Credentials:
    """The secrets, kept where no ``repr`` or traceback of locals prints them."""

    __slots__ = ("kind", "secrets")

    def __init__(self, kind: str, secrets: tuple[Secret, ...]) -> None:
        self.kind = kind
        self.secrets = secrets

    def __repr__(self) -> str:
        return f"<{self.kind} credentials>"


def check_credentials(api_key: object, email: object, password: object) -> Credentials:
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
        return Credentials("api_key", (Secret(api_key),))
    if isinstance(email, str) and isinstance(password, str):
        return Credentials("login", (Secret(email), Secret(password)))
    if email is not None or password is not None:
        raise ConfigurationError("email and password must be given together")
    raise ConfigurationError(
        "no credentials: give api_key, or email and password "
        "(PatchworksClient.from_env() reads PATCHWORKS_API_KEY or PATCHWORKS_EMAIL and "
        "PATCHWORKS_PASSWORD)"
    )
