"""The fake's lazy clock: what happens to queued starts and running flows, and when.

A ``/start`` waits in the queue for ``queue_delay`` seconds, then becomes a run that stays
STARTED for ``run_duration`` and then finishes. No timer does any of this: each change is
an event due at an instant of the monotonic clock, and every read of the data first
applies the events that are due, in the order they fell due. So nothing outlives a test,
a test can make things happen at once (a delay of 0) or never (a large one), and the
state a reader sees is always the state at the instant it reads.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

__all__ = ["Timeline"]


class Timeline:
    """Events due on the monotonic clock, applied lazily by ``settle``."""

    def __init__(self, mono: Callable[[], float] = time.monotonic) -> None:
        """Nothing due yet.

        Args:
            mono: The clock deciding when events are due; injectable for tests.
        """
        self._mono = mono
        self._order = itertools.count()  # ties go in the order the events were scheduled
        self._due: list[tuple[float, int, Callable[[], None]]] = []

    def now(self) -> float:
        """The current instant of the timeline's clock."""
        return self._mono()

    def at(self, due: float, event: Callable[[], None]) -> None:
        """Make ``event`` happen once ``due`` (a monotonic instant) has passed."""
        heapq.heappush(self._due, (due, next(self._order), event))

    def clear(self) -> None:
        """Drop every event not applied yet: nothing scheduled will happen."""
        self._due.clear()

    def settle(self) -> None:
        """Apply every event that is due, earliest first: O(events applied), not O(events).

        An event may schedule others; those that are due already are applied in the
        same call, so a run with no duration finishes in the read that picks it up.
        """
        now = self._mono()
        while self._due and self._due[0][0] <= now:
            _, _, event = heapq.heappop(self._due)
            event()
