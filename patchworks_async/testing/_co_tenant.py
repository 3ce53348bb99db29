"""Another consumer of the fake's account: a steady integration the client cannot see.

A real account is rarely used by one program alone: another integration, a colleague's
script or the vendor's dashboard spend the same budget. A client that paces itself by its
own clock only learns about them through 429s; one that reads ``X-RateLimit-Remaining``
sees the budget fall faster than its own requests explain. ``CoTenant`` models such a
consumer for ``FakePatchworks(co_tenant=...)``:

* it has a request to send every ``window / (share * requests)`` seconds from the moment it
  is switched on, as an integration fed by a steady queue would: over any window it spends
  ``share`` of the account's budget (``share * requests`` hits, give or take one when that
  is not a whole number);
* its requests go to ordinary routes, so they meet the account-wide throttle only, and are
  counted by the same ``FixedWindowThrottle`` as the client's: they open windows, spend
  budget and are refused (and then not counted) exactly like the client's;
* a refused request is dropped and counted (``refused``), and the co-tenant keeps its pace:
  a client that takes more than is left shows as the co-tenant's 429s. (A co-tenant that
  paused and then sent its backlog all at once would turn a single overlap into a storm
  of 429s on both sides that no reading of the headers can foresee: not a steady
  integration.)

No timer runs: the requests due before a client's request are replayed, at their own
times, just before the throttle looks at that request (as ``Timeline`` does for the run
queue). So nothing outlives the fake, and the throttle sees every hit in time order. A
window the co-tenant alone opened and that ended before the request is counted in one
step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ._throttle import Verdict

__all__ = ["CoTenant", "check_co_tenant"]


def check_co_tenant(value: float) -> float:
    """Refuse a share that is not a number from 0 (no co-tenant) up to, not including, 1.

    Raises:
        ValueError: If ``value`` is not a finite number with ``0 <= value < 1``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"co_tenant must be a number from 0 to below 1, got {value!r}")
    if not 0 <= value < 1 or math.isnan(value):
        raise ValueError(f"co_tenant must be a number from 0 to below 1, got {value!r}")
    return float(value)


class CoTenant:
    """A steady stream of requests that spends ``share`` of every window.

    Request ``k`` is due at ``since + k * window / (share * requests)``: computed from
    ``k``, not added up, so that a window opened by one holds exactly ``share * requests``
    of them when that is a whole number.

    Args:
        share: The part of ``requests`` spent per window (checked by the caller).
        requests: The account-wide limit per window.
        window: The window's length in seconds.
        since: When it starts (its first request), on the throttle's clock.

    Attributes:
        hits: Requests the throttle counted.
        refused: Requests the throttle refused (dropped).
    """

    def __init__(self, share: float, requests: int, window: float, since: float) -> None:
        self.share = share
        self.per_window = share * requests
        self.window = window
        self.since = since
        self.hits = 0
        self.refused = 0
        self._next = 0

    def next_at(self) -> float:
        """When its next request falls due (not replayed yet)."""
        return self.since + self._next * self.window / self.per_window

    def replay(
        self,
        now: float,
        attempt: Callable[[float], Verdict],
        idle_at: Callable[[float], bool],
    ) -> None:
        """Send everything due by ``now``, in time order, through ``attempt(at)``.

        ``idle_at(at)`` says whether the throttle has no live window at ``at``: then a
        request opens one, and if that window ends by ``now`` it holds the co-tenant's
        requests alone (fewer than the limit), which are counted at once.
        """
        while (due := self.next_at()) <= now:
            if due + self.window <= now and idle_at(due):
                count = math.ceil(self.per_window)  # requests k .. k + ceil(n) - 1 fit in
                self._next += count
                self.hits += count
                continue
            self._next += 1
            if attempt(due).allowed:
                self.hits += 1
            else:
                self.refused += 1

    def skip(self, now: float) -> None:
        """Forget the requests due up to ``now`` (the throttle was flushed meanwhile)."""
        if self.next_at() <= now:
            self._next = math.floor((now - self.since) * self.per_window / self.window) + 1
