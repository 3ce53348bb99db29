"""Reading responses: bodies, rate-limit headers, Retry-After. Pure: no I/O, no loop."""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Mapping
from typing import Any

from attrs import frozen

__all__ = ["RateLimitStatus", "decode_body", "parse_rate_limit", "parse_retry_after"]


@frozen
class RateLimitStatus:
    """The server's last word on the account's rate limit (``client.rate_limit``).

    Attributes:
        limit: ``X-RateLimit-Limit``: requests allowed per window by the tightest throttle.
        remaining: ``X-RateLimit-Remaining``: what is left of it after that response.
        retry_after: On a 429, seconds until the window ends (``Retry-After``).
        reset: On a 429, the end of the window in epoch seconds (``X-RateLimit-Reset``).
    """

    limit: int | None
    remaining: int | None
    retry_after: float | None = None
    reset: float | None = None


def decode_body(raw: bytes) -> Any:
    """JSON when the body parses as JSON, else its text, ``None`` when empty.

    Content-Type is not trusted: proxies label HTML as anything and APIs label JSON as text.
    """
    if not raw or raw.isspace():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` in seconds from ``now`` (epoch): delta-seconds or an HTTP date.

    Returns ``None`` when absent or unreadable, never a negative number.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_rate_limit(
    headers: Mapping[str, str], *, now: float, refused: bool = True
) -> RateLimitStatus | None:
    """The rate-limit headers of a response, or ``None`` when it carried none (no guessing).

    Args:
        headers: Response headers (a case-insensitive mapping).
        now: The current epoch time, to turn an HTTP-date ``Retry-After`` into seconds.
        refused: Whether this is a 429; only a refusal carries ``Retry-After`` and
            ``X-RateLimit-Reset``, so for other responses they are not looked for.
    """
    limit = _int_header(headers, "X-RateLimit-Limit")
    remaining = _int_header(headers, "X-RateLimit-Remaining")
    retry_after = parse_retry_after(headers.get("Retry-After"), now=now) if refused else None
    reset = _int_header(headers, "X-RateLimit-Reset") if refused else None
    if limit is None and remaining is None and retry_after is None and reset is None:
        return None
    return RateLimitStatus(
        limit=limit,
        remaining=remaining,
        retry_after=retry_after,
        reset=float(reset) if reset is not None else None,
    )
