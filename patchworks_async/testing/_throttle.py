"""A pure model of Laravel's fixed-window request throttle.

The real Patchworks services are Laravel applications guarded by Laravel's ``throttle``
middleware (``Illuminate/Routing/Middleware/ThrottleRequests.php`` on top of
``Illuminate/Cache/RateLimiter.php``). This module reproduces its observable behaviour
without any I/O, clock or event loop: every method takes ``now`` as an argument, so the
model can be unit-tested exhaustively and ``FakePatchworks`` only has to feed it
``time.monotonic()``.

What the model reproduces, and why it matters to a client:

* A window per key **opens at the first counted request** and lasts ``window`` seconds.
  It is not aligned to clock minutes, not sliding, and never extended by later hits.
* A refused request is **not counted** (Laravel checks ``tooManyAttempts`` before ``hit``).
* Throttles **stack** in the order given: each one checks and then counts before the next
  one looks, so a request admitted by the first and refused by the second has still
  spent a hit of the first.
* The headers of an admitted response report the throttle with the **lowest** remaining
  budget; on a tie the later (inner) throttle wins, because Laravel's outer middleware
  only overwrites ``X-RateLimit-Remaining`` when its own value is strictly lower.
* ``Retry-After`` is computed from whole-second timestamps
  (``floor(window_end) - floor(now)``), so it can be up to one second **short** of the
  real end of the window, and it is never negative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

__all__ = ["FixedWindowThrottle", "Limit", "Verdict", "whole_second_retry_after"]


def whole_second_retry_after(window_ends_in: float, now: float) -> int:
    """Laravel's ``Retry-After``: whole-second end of the window minus whole-second now.

    Laravel stores the window's end as an integer timestamp and subtracts the current
    integer timestamp, so the result can be up to one second shorter than
    ``window_ends_in``. It is never negative.

    Args:
        window_ends_in: Exact seconds until the window ends.
        now: The current time on the clock whose whole seconds count (wall time on the
            server, since Laravel uses Unix timestamps).

    Returns:
        The header value in seconds.
    """
    return max(0, math.floor(now + window_ends_in) - math.floor(now))


def _positive_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


def _positive_float(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


@attrs.frozen
class Limit:
    """One throttle that applies to a request.

    Attributes:
        key: Identifies the counter (``"global"``, ``"manual"``, ``"starts"``...). Limits
            with the same key share one window.
        max_attempts: Requests admitted per window (Laravel's ``maxAttempts``).
        window: Length of a window in seconds (Laravel's ``decaySeconds``).
    """

    key: str
    max_attempts: int = attrs.field(validator=_positive_int)
    window: float = attrs.field(validator=_positive_float)


@attrs.frozen
class Verdict:
    """The outcome of one request against a stack of throttles.

    Attributes:
        allowed: False when one throttle refused the request (the server answers 429).
        key: The throttle whose figures the headers report: the refusing one on a 429,
            else the one with the lowest remaining budget.
        limit: ``X-RateLimit-Limit`` of that throttle.
        remaining: ``X-RateLimit-Remaining`` after this request (0 on a refusal).
        retry_after: ``Retry-After`` in whole seconds, as Laravel computes it (only
            meaningful on a refusal; 0 otherwise).
        window_ends_in: Exact seconds until the reported window ends; what a perfect
            client would wait. ``retry_after`` may be up to 1 s shorter.
    """

    allowed: bool
    key: str
    limit: int
    remaining: int
    retry_after: int = 0
    window_ends_in: float = 0.0


@attrs.define
class _Window:
    """A live counter: when it opened and how many requests it counted."""

    opened_at: float
    hits: int = 0


class FixedWindowThrottle:
    """Fixed-window counters keyed by name, evaluated like Laravel's stacked throttles.

    The object holds state (the open windows) but never reads a clock: callers pass
    ``now`` in seconds on any monotonic scale.
    """

    def __init__(self) -> None:
        """Start with no open window: the first counted request opens each one."""
        self._windows: dict[str, _Window] = {}

    def attempt(self, limits: Sequence[Limit], now: float) -> Verdict:
        """Check and count one request against ``limits``, in order.

        Each throttle refuses if its window is full; otherwise it counts the request
        before the next throttle looks (so earlier throttles keep their hit when a later
        one refuses, as in Laravel).

        Args:
            limits: The throttles that apply to this request, outermost first.
            now: The current time in seconds (same scale for every call).

        Returns:
            The verdict for the response headers and status.

        Raises:
            ValueError: If ``limits`` is empty.
        """
        if not limits:
            raise ValueError("at least one limit is required")
        reported: Verdict | None = None
        for limit in limits:
            window = self._live_window(limit, now)
            if window is not None and window.hits >= limit.max_attempts:
                return self._refusal(limit, window, now)
            window = self._hit(limit, window, now)
            verdict = Verdict(
                allowed=True,
                key=limit.key,
                limit=limit.max_attempts,
                remaining=limit.max_attempts - window.hits,
                window_ends_in=window.opened_at + limit.window - now,
            )
            # "<=": on a tie the inner throttle's headers survive, as in Laravel.
            if reported is None or verdict.remaining <= reported.remaining:
                reported = verdict
        assert reported is not None
        return reported

    def hits(self, limit: Limit, now: float) -> int:
        """Return how many requests the live window of ``limit`` has counted (0 if none)."""
        window = self._live_window(limit, now)
        return 0 if window is None else window.hits

    def remaining(self, limit: Limit, now: float) -> int:
        """Return how many more requests ``limit`` would admit at ``now``."""
        return limit.max_attempts - self.hits(limit, now)

    def reset(self) -> None:
        """Forget every window, as if the cache had been flushed."""
        self._windows.clear()

    def _live_window(self, limit: Limit, now: float) -> _Window | None:
        """Return the key's window if it has not expired at ``now``, dropping it if it has."""
        window = self._windows.get(limit.key)
        if window is not None and now >= window.opened_at + limit.window:
            del self._windows[limit.key]
            return None
        return window

    def _hit(self, limit: Limit, window: _Window | None, now: float) -> _Window:
        """Count one request, opening a window if none is live (never extending one)."""
        if window is None:
            window = _Window(opened_at=now)
            self._windows[limit.key] = window
        window.hits += 1
        return window

    @staticmethod
    def _refusal(limit: Limit, window: _Window, now: float) -> Verdict:
        """Build the 429 verdict, with Laravel's whole-second ``Retry-After``."""
        window_end = window.opened_at + limit.window
        retry_after = max(0, math.floor(window_end) - math.floor(now))
        return Verdict(
            allowed=False,
            key=limit.key,
            limit=limit.max_attempts,
            remaining=0,
            retry_after=retry_after,
            window_ends_in=max(0.0, window_end - now),
        )
