"""Defaults and the small value objects that configure a client."""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from attrs import field, frozen

from ._auth import Secret
from ._errors import ConfigurationError

DEFAULT_CORE_URL = "https://core.wearepatchworks.com/api/v1"
DEFAULT_START_URL = "https://start.wearepatchworks.com/api/v1"
DEFAULT_LOGIN_URL = "https://svc-fabric.pwks.co/api/v1/login"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""8 MiB: PHP's and nginx's ``8M``, the most the server is documented to take."""

ENV_VARS = {
    "api_key": "PATCHWORKS_API_KEY",
    "email": "PATCHWORKS_EMAIL",
    "password": "PATCHWORKS_PASSWORD",
    "core_url": "PATCHWORKS_CORE_URL",
    "start_url": "PATCHWORKS_START_URL",
    "login_url": "PATCHWORKS_LOGIN_URL",
}


def _count(instance: object, attribute: Any, value: object) -> None:
    """A whole number >= 1 (``None`` allowed where the field's default is ``None``)."""
    if value is None and attribute.default is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{attribute.name} must be an int >= 1, not {value!r}")


def _count_or_zero(instance: object, attribute: Any, value: object) -> None:
    """A whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{attribute.name} must be an int >= 0, not {value!r}")


def _seconds(instance: object, attribute: Any, value: object) -> None:
    """A finite number of seconds > 0 (``None`` allowed where the default is ``None``)."""
    if value is None and attribute.default is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigurationError(
            f"{attribute.name} must be a finite number of seconds > 0, not {value!r}"
        )


def _seconds_or_zero(instance: object, attribute: Any, value: object) -> None:
    """A finite number of seconds >= 0 (``None`` allowed where the default is ``None``)."""
    if value is None and attribute.default is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigurationError(
            f"{attribute.name} must be a finite number of seconds >= 0, not {value!r}"
        )


def _boolean(instance: object, attribute: Any, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{attribute.name} must be True or False, not {value!r}")


def check_id(name: str, value: object) -> int | str:
    """An id the API can take: a positive int, or a string of its digits.

    Checked before anything is sent: a ``-1`` or an ``"abc"`` would only come back as a
    404 (or worse, name another route).

    Raises:
        ConfigurationError: anything else, naming the argument.
    """
    if isinstance(value, bool) or not (
        (isinstance(value, int) and value > 0)
        or (isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0)
    ):
        raise ConfigurationError(
            f"{name} must be a positive int (or a string of its digits), not {value!r}"
        )
    return value


def _default_manual_starts(limits: RateLimits) -> int:
    """10 a minute, as documented; no more than ``requests`` (a smaller account)."""
    requests = limits.requests
    return min(10, requests) if isinstance(requests, int) and requests >= 1 else 10


@frozen
class RateLimits:
    """The account's limits, which the client keeps so that the server never refuses it.

    Args:
        requests: Requests of any kind (retries included) allowed per window.
        manual_starts: Manual initialise calls allowed per window (10, or ``requests`` when
            that is smaller).
        starts: An optional cap on flow starts (queued and manual) per window, for tiers
            that have one.
        per: The window length in seconds. Tests and demos shrink it to seconds.
        margin: Seconds added to the window to absorb network jitter: the client keeps at
            most ``requests`` sends in any ``per + margin`` seconds. ``None`` means
            ``per / 60`` (one second for a one-minute window), so a shrunken window keeps a
            proportionate margin. Each second of margin costs about ``1 / per`` of the rate.
    """

    requests: int = field(default=240, validator=_count)
    manual_starts: int = field(
        default=attrs.Factory(_default_manual_starts, takes_self=True),
        validator=_count,
    )
    starts: int | None = field(default=None, validator=_count)
    per: float = field(default=60.0, validator=_seconds)
    margin: float | None = field(default=None, validator=_seconds_or_zero)

    def __attrs_post_init__(self) -> None:
        for name in ("manual_starts", "starts"):
            value = getattr(self, name)
            if value is not None and value > self.requests:
                raise ConfigurationError(
                    f"{name} ({value}) cannot exceed requests ({self.requests}): every "
                    "start is also one of the requests"
                )

    @property
    def span(self) -> float:
        """The span in which at most ``requests`` sends may leave: ``per + margin``."""
        return self.per + (self.per / 60.0 if self.margin is None else self.margin)


@frozen
class RetryPolicy:
    """How failures are retried.

    Args:
        attempts: Tries in all for a retryable failure (1 means no retry). A 429 is not a
            failure of the request and never uses up an attempt.
        backoff_base: The first backoff in seconds; it doubles each try, with full jitter.
            ``0`` makes retries instant, which is what test suites want.
        backoff_max: The cap on one backoff, in seconds.
        retry_ambiguous_starts: Resend a start whose outcome is unknown (timeout after
            sending, dropped connection, 5xx). Off by default: it can start a flow twice.
        max_rate_limited_waits: How many 429s in a row one request waits through before
            :class:`RateLimitError` is raised; ``0`` raises on the first 429.
    """

    attempts: int = field(default=4, validator=_count)
    backoff_base: float = field(default=0.5, validator=_seconds_or_zero)
    backoff_max: float = field(default=30.0, validator=_seconds_or_zero)
    retry_ambiguous_starts: bool = field(default=False, validator=_boolean)
    max_rate_limited_waits: int = field(default=10, validator=_count_or_zero)


class RequestKind(enum.Enum):
    """What a request is, which decides the buckets it draws from."""

    ORDINARY = "ordinary"
    """Any request: one global token."""
    START = "start"
    """A queued flow start: a starts token (when a starts cap is set), then a global one."""
    MANUAL = "manual"
    """A manual initialise: a manual token and a starts token, then a global one."""


class Priority(enum.StrEnum):
    """Which requests a busy limiter serves first, among those waiting for the same budget."""

    NORMAL = "normal"
    HIGH = "high"
    """Ahead of normal requests: what an API handler wants next to a bulk job."""


def check_seconds(name: str, value: object, *, allow_none: bool = False) -> float | None:
    """A finite, positive number of seconds (or ``None`` when allowed), as a float.

    Raises:
        ConfigurationError: anything else, naming the argument.
    """
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < float("inf")
    ):
        expected = "a finite number of seconds > 0" + (" or None" if allow_none else "")
        raise ConfigurationError(f"{name} must be {expected}, not {value!r}")
    return float(value)


@frozen
class CallOptions:
    """How one client's requests are sent; ``client.with_options()`` makes another set.

    Attributes:
        timeout: Seconds a request may take on the wire, connecting and reading included
            (the wait for a rate-limit slot is not part of it: see ``max_wait``).
        max_wait: Seconds a request may wait for a rate-limit slot before it raises
            :class:`RateLimitTimeoutError` (nothing sent); ``None`` waits as long as it
            takes.
        retry: How failures are retried.
        priority: Served ahead of normal requests waiting for the same budget (``high``).
    """

    timeout: float = DEFAULT_TIMEOUT
    max_wait: float | None = None
    retry: RetryPolicy = field(factory=lambda: RetryPolicy())
    priority: Priority = Priority.NORMAL

    def replace(self, **changes: Any) -> CallOptions:
        """These options with ``changes`` (checked as the constructor checks them)."""
        if "timeout" in changes:
            changes["timeout"] = check_seconds("timeout", changes["timeout"])
        if "max_wait" in changes:
            changes["max_wait"] = check_seconds("max_wait", changes["max_wait"], allow_none=True)
        if "retry" in changes and not isinstance(changes["retry"], RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, not {changes['retry']!r}")
        if "priority" in changes:
            try:
                changes["priority"] = Priority(changes["priority"])
            except ValueError:
                raise ConfigurationError(
                    f"priority must be 'normal' or 'high', not {changes['priority']!r}"
                ) from None
        return attrs.evolve(self, **changes)


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_base_url(name: str, url: str) -> str:
    """Validate a base URL and return it without a trailing slash.

    Credentials travel in every request, so plain ``http`` is refused except towards
    loopback hosts, where the fake server and tests live.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{name} must be a non-empty URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name} must be an http(s) URL with a host, not {url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(
            f"{name} must use https:// (plain http is allowed only for loopback hosts): {url!r}"
        )
    if parts.username or parts.password:
        raise ConfigurationError(f"{name} must not embed credentials")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name} must not have a query or fragment: {url!r}")
    return url.rstrip("/")


CREDENTIALS = frozenset({"api_key", "email", "password"})
"""The client arguments that are credentials (given together, replaced together)."""


def settings_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The client arguments found in ``environ``; empty variables count as unset.

    Credentials come back as ``Secret`` strings (a redacted ``repr``), so that a
    traceback showing this frame's caller's locals does not show them.
    """
    found = {arg: environ[var] for arg, var in ENV_VARS.items() if environ.get(var)}
    return {arg: Secret(value) if arg in CREDENTIALS else value for arg, value in found.items()}
