"""The Lua scripts that book, give back and pause, and the keys and arguments they take.

The scripts live in ``.lua`` files beside this module and are read once, at import.
``book.lua`` and ``pause.lua`` start with ``prelude.lua`` (Redis time, number formatting), and
``SLACK_MS`` in them becomes :data:`TTL_SLACK_MS`. What the scripts keep, and how: the README,
"How the shared limiter works".
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from .._config import RateLimits, RequestKind
from .._errors import ConfigurationError

US: Final = 1_000_000
"""Microseconds in a second: the scripts count time in Redis microseconds."""

TTL_SLACK_MS: Final = 1000
"""How long (ms) each key outlives a span after its last booked slot."""


def _read(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def _with_prelude(name: str) -> str:
    return (_read("prelude.lua") + _read(name)).replace("SLACK_MS", str(TTL_SLACK_MS))


BOOK_SCRIPT: Final = _with_prelude("book.lua")
"""Books the first free send slot for one request; returns how long to wait for it."""

RELEASE_SCRIPT: Final = _read("release.lua")
"""Gives back a slot that will not be used (its caller was cancelled)."""

PAUSE_SCRIPT: Final = _with_prelude("pause.lua")
"""Stops every booking until a time, and announces it on the account's pause channel."""


def check_key_part(what: str, value: object) -> str:
    """``value``, if it may be part of a key: the account's name is the keys' hash tag."""
    if not isinstance(value, str) or not value or "{" in value or "}" in value:
        raise ConfigurationError(
            f"{what} must be a non-empty string without braces (they delimit the Redis "
            f"Cluster hash tag), not {value!r}"
        )
    return value


def account_keys(key_prefix: str, account: str) -> tuple[str, str, str, str, str]:
    """The account's keys in the order ``book.lua`` takes them, in one Cluster hash slot.

    ``release.lua`` takes the first three, ``pause.lua`` the fourth.
    """
    base = f"{key_prefix}:{{{account}}}"
    return (
        f"{base}:global",
        f"{base}:manual",
        f"{base}:starts",
        f"{base}:pause_until",
        f"{base}:global:head",
    )


def pause_channel(key_prefix: str, account: str) -> str:
    """The pub/sub channel on which ``pause.lua`` announces the account's pauses."""
    return f"{key_prefix}:{{{account}}}:pause"


def booking_args(limits: RateLimits) -> dict[RequestKind, tuple[str, ...]]:
    """The first six ``ARGV`` of ``book.lua`` for each kind of request: intervals and caps.

    An interval of ``"0"`` leaves that bucket out. Intervals are in microseconds, written
    with ``repr`` so that Lua reads back the same float.
    """
    span_us = limits.span * US
    common = (repr(span_us / limits.requests), repr(span_us))
    manual = (repr(span_us / limits.manual_starts), str(limits.manual_starts))
    starts = (repr(span_us / limits.starts), str(limits.starts)) if limits.starts else ("0", "0")
    return {
        RequestKind.ORDINARY: (*common, "0", "0", "0", "0"),
        RequestKind.START: (*common, "0", "0", *starts),
        RequestKind.MANUAL: (*common, *manual, *starts),
    }
