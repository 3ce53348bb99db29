"""The demo's rate figure: counted over the server's whole windows, never above the limit
when no window held more than the limit."""

from __future__ import annotations

import pytest

from patchworks_async.cli._demo import whole_windows_rate

WINDOW = 3.0


def packed_windows(windows: int, per_window: int, *, within: float, gap: float) -> list[float]:
    """``per_window`` arrivals spread over the first ``within`` s of each window; each
    window opens ``gap`` s after the previous one ended."""
    arrivals: list[float] = []
    opening = 0.0
    for _ in range(windows):
        step = within / per_window
        arrivals += [opening + n * step for n in range(per_window)]
        opening += WINDOW + gap
    return arrivals


def test_windows_packed_early_read_exactly_the_limit_not_above_it() -> None:
    arrivals = packed_windows(5, 60, within=1.0, gap=0.0)
    # From the first arrival to the last this run reads 299 / 13 s = 23/s, above 20/s.
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) > 20
    assert whole_windows_rate(arrivals, WINDOW) == pytest.approx(20.0)


def test_idle_time_between_windows_lowers_the_rate() -> None:
    arrivals = packed_windows(5, 60, within=2.9, gap=1.0)
    assert whole_windows_rate(arrivals, WINDOW) == pytest.approx(180 / 12.0)


def test_a_run_of_fewer_than_three_windows_is_counted_from_first_to_last_arrival() -> None:
    assert whole_windows_rate([0.0, 0.5, 1.0], WINDOW) == pytest.approx(2.0)
    assert whole_windows_rate([1.0], WINDOW) == 0.0
    assert whole_windows_rate([], WINDOW) == 0.0
