"""Who may call the fake: API keys, users, and the login route's expiring tokens.

Patchworks accepts two schemes on every API route: a raw API key in ``Authorization``,
or ``Bearer <token>`` with a token from ``POST /fabric/api/v1/login`` (or the alternative
``POST /fabric/api/login``; both take ``email`` or ``username``). Tokens expire, and
a test can revoke them all at once, so a client's re-login path can be exercised without
waiting a day for the real expiry.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from aiohttp import web

from ._checks import check_positive
from ._http import json_response, message_response, parse_object

__all__ = ["DEFAULT_USERS", "Auth"]

DEFAULT_USERS: Final[Mapping[str, str]] = MappingProxyType(
    {"user@example.com": "correct horse battery staple"}
)
"""The one user a fake accepts unless told otherwise: email -> password."""


def _whole(value: float) -> int | float:
    """Return ``value`` as an int when it is whole (``expires_in: 86400``, not 86400.0)."""
    return int(value) if float(value).is_integer() else value


class Auth:
    """The credentials one fake accepts, and the login tokens it has issued.

    Attributes:
        token_ttl: Seconds a login token lives (also the ``expires_in`` sent); settable,
            applies to later logins.
    """

    def __init__(self, api_keys: Iterable[str], users: Mapping[str, str], token_ttl: float):
        """Accept ``api_keys`` raw and ``users`` through the login route.

        Args:
            api_keys: Keys accepted raw in ``Authorization`` (the first is ``api_key``).
            users: email -> password accepted by the login route (the first is
                ``email`` / ``password``).
            token_ttl: Seconds a login token lives.

        Raises:
            TypeError: If ``api_keys`` is a bare string (a common slip).
            ValueError: On an empty key or user list, or a ``token_ttl`` that is not > 0.
        """
        if isinstance(api_keys, str):
            raise TypeError("api_keys must be an iterable of keys, not a single string")
        self._api_keys: tuple[str, ...] = tuple(api_keys)
        self._users: dict[str, str] = dict(users)
        if not self._api_keys or not self._users:
            raise ValueError("at least one API key and one user are required")
        self.token_ttl: float = check_positive("token_ttl", token_ttl)
        self._tokens: dict[str, float] = {}  # token -> expiry on the monotonic clock

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

    def authenticated(self, authorization: str | None) -> bool:
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

    def login(self, body: bytes) -> web.Response:
        """Issue a token for valid credentials (``username`` is accepted for ``email``)."""
        credentials = parse_object(body) or {}
        email = credentials.get("email", credentials.get("username"))
        password = credentials.get("password")
        if not isinstance(email, str) or self._users.get(email) != password:
            return message_response(401, "Invalid credentials.")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self.token_ttl
        return json_response(
            200,
            {
                "message": "You have successfully logged in.",
                "token": token,
                "expires_in": _whole(self.token_ttl),
            },
        )

    def revoke_tokens(self) -> None:
        """Invalidate every login token issued so far (API keys stay valid)."""
        self._tokens.clear()
