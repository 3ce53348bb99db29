"""Small checks shared by every part of the fake: settings and path-segment ids.

A fake with a mistyped setting (``times=0``, ``window=-1``) would silently test nothing,
so every setting is checked where it is given and refused with a ``ValueError`` naming it.
"""

from __future__ import annotations

import math

__all__ = ["as_id", "check_int", "check_positive"]


def check_int(name: str, value: int, *, minimum: int = 1) -> int:
    """Refuse non-integers (and bools) and values below ``minimum``.

    Args:
        name: The setting's name, for the error message.
        value: The value given.
        minimum: The smallest value allowed.

    Returns:
        ``value``, unchanged.

    Raises:
        ValueError: If ``value`` is not an int >= ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    """Refuse durations that are not finite and strictly positive.

    Returns:
        ``value`` as a float.

    Raises:
        ValueError: If ``value`` is not a finite number > 0.
    """
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def as_id(raw: str | None) -> int | None:
    """A path segment as a non-negative integer id; anything but ASCII digits names nothing.

    Laravel's route model binding answers 404 for ``/flows/abc``, so a segment that is not
    an id is simply one that matches no record, never an error of its own.
    """
    if raw is None or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)
