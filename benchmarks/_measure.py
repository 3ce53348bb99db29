"""Measures the benchmark scripts share, computed from a server's arrival times."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` (sorted) inside any half-open interval ``[t, t + window)``."""
    return max(
        (bisect.bisect_left(times, start + window, lo=i) - i for i, start in enumerate(times)),
        default=0,
    )


def sustained_fraction(accepted: Sequence[float], requests: int, window: float) -> float | None:
    """Rate of accepted arrivals from one window after the first, over the limit's rate."""
    if not accepted:
        return None
    steady = accepted[bisect.bisect_left(accepted, accepted[0] + window) :]
    if len(steady) < 2 or steady[-1] <= steady[0]:
        return None
    return (len(steady) - 1) / (steady[-1] - steady[0]) / (requests / window)
