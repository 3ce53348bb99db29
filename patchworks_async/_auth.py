"""Credentials: the ``Authorization`` header, and the login token's life cycle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from ._errors import PatchworksError

__all__ = ["ApiKeyAuth", "Auth", "LoginAuth", "Secret", "SecretBytes"]


class Secret(str):
    """A credential (API key, password, token, ``Authorization`` value) that never shows.

    A ``str`` to everything that uses it, so it goes into a header or a JSON body as it
    is, but its ``repr`` is ``'***'``: a traceback that prints local variables (Sentry,
    ``pytest --showlocals``, rich), a log of a dict of headers, a debugger's variables
    view never show it. Kept this way from the constructor to the moment the header is
    built.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"

    def removeprefix(self, prefix: str, /) -> Secret:
        return Secret(str.removeprefix(self, prefix))


class SecretBytes(bytes):
    """A body that holds a credential (the login request's), with a redacted ``repr``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} bytes, redacted>"

LoginCall = Callable[[], Awaitable[tuple[str, float]]]
"""Logs in once; returns the token and its lifetime in seconds."""


class Auth(Protocol):
    """What the transport needs from a credential."""

    async def authorization(self) -> str:
        """The ``Authorization`` header value for the next request."""
        ...

    async def renew_after_rejection(self, rejected: str) -> bool:
        """The server answered 401 to ``rejected``; True when a replay may succeed."""
        ...


class ApiKeyAuth:
    """An API key, sent raw (no ``Bearer``). Keys do not expire: a 401 is final."""

    __slots__ = ("_key",)

    def __init__(self, api_key: str) -> None:
        self._key = Secret(api_key)

    async def authorization(self) -> str:
        return self._key

    async def renew_after_rejection(self, rejected: str) -> bool:
        return False

    def __repr__(self) -> str:
        return "ApiKeyAuth(api_key='***')"


class LoginAuth:
    """Email and password, exchanged at the login URL for a bearer token.

    The token is cached until shortly before ``expires_in``. However many requests find it
    stale at once, one login call renews it: the others wait for that call and share its
    result, success or failure.

    Args:
        login: Performs one login; returns the token and its lifetime in seconds.
        clock: A monotonic clock, replaceable in tests.
    """

    __slots__ = ("_clock", "_failure", "_generation", "_lock", "_login", "_renew_at", "_token")

    def __init__(self, login: LoginCall, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._login = login
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._generation = 0
        self._failure: PatchworksError | None = None
        self._lock: asyncio.Lock | None = None

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._renew_at

    async def authorization(self) -> str:
        token = self._token if self._fresh() else await self._renew(stale=self._token)
        return Secret(f"Bearer {token}")

    async def renew_after_rejection(self, rejected: str) -> bool:
        await self._renew(stale=rejected.removeprefix("Bearer "))
        return True

    async def _renew(self, stale: str | None) -> str:
        generation = self._generation
        if self._lock is None:
            self._lock = asyncio.Lock()  # created in the running loop, on first need
        async with self._lock:
            if self._generation != generation and self._failure is not None:
                raise self._failure  # the login we queued behind failed: so would ours
            if self._token is not None and self._token != stale and self._fresh():
                return self._token  # renewed while we queued
            try:
                token, lifetime = await self._login()
            except PatchworksError as exc:
                self._generation += 1
                self._failure = exc
                raise
            self._generation += 1
            self._failure = None
            self._token = Secret(token)
            # Renew a little early (a tenth of the lifetime, at most a minute) so that a
            # request in flight does not meet the expiry.
            self._renew_at = self._clock() + lifetime - min(60.0, lifetime / 10)
            return token

    def __repr__(self) -> str:
        return "LoginAuth(email='***', password='***')"
