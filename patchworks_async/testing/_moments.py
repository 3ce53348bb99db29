"""Instants on the wire: the fake writes ISO 8601 strings and reads Unix milliseconds too.

The reference types ``started_at`` and every other timestamp as a date-time string, which
is what the fake writes (Laravel's ``2026-11-29T20:15:00.123456Z``). Filters, on the other
hand, take Unix milliseconds (``filter[started_after]=1767225600000``), and a test may
still seed a record with a number, so everything that *reads* an instant takes either
form (the filters on instants, in ``_filters``, compare milliseconds whatever form the
stored value and the requested bound came in).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["moment_ms", "parse_moment", "seconds_to_ms"]


def parse_moment(value: Any) -> float | None:
    """Unix seconds of ``value``: Unix milliseconds (a number or digits) or an ISO string.

    A naive ISO string is taken as UTC, as Laravel stores it; anything else is None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1000
    if not isinstance(value, str):
        return None
    text = value.strip()
    digits = text[1:] if text[:1] == "-" else text
    if digits.isascii() and digits.isdigit():
        return int(text) / 1000
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def seconds_to_ms(seconds: float) -> int:
    """Unix seconds as whole Unix milliseconds."""
    return round(seconds * 1000)


def moment_ms(value: Any) -> int | None:
    """``value`` (ISO string or Unix ms) as Unix milliseconds, or None if it is neither."""
    seconds = parse_moment(value)
    return None if seconds is None else seconds_to_ms(seconds)
