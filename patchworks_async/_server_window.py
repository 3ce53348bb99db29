"""Following the server's own count: its fixed window, inferred from ``X-RateLimit-*`` replies.

A limiter paced by its own clock cannot see other consumers of the account, nor latency
jitter larger than its margin. The server tells both on every admitted reply:
``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` (what is left *after* that request). This
module turns those replies into one number, :meth:`ServerWindow.available`: how many more
requests may be sent now without any of them reaching a full window. It is pure bookkeeping
on times passed in (the limiter's loop clock), so it is tested without a loop.

What the server does (Laravel's throttle): a window opens at the first counted request and
lasts ``per`` seconds; a refused request is not counted; the window's start is never sent.
What the replies prove, with ``s`` a request's send time, ``t`` its reply time and ``c`` the
unknown moment the server counted it (``s <= c <= t``):

* **A reply's window ends by ``t + per``** (it was open at ``c``). The window's first reply
  gives ``ends_by``; until then its count stands, and after it a new window may be full or
  empty: nothing is believed of it until one of its own replies comes back.
* **Remaining only falls within a window.** A reply whose request left after another reply
  came back (``s > t'``: counted later) showing as much left (``r >= r'``) was counted in a
  *later* window: Remaining jumped back up. So was any request sent at or after
  ``ends_by``. These are the only ways a new window is believed in.
* **Out-of-order replies**: the lowest Remaining a window showed is its latest count we
  know of (the *snapshot*), not the last reply to arrive.
* **Requests in flight are already spent.** So are replies that came back after the
  snapshot's request left (they may have been counted after it) and are not known to be
  of this window: *strays*, sent before it was proven (they may be the previous window's),
  lost requests, and replies whose figures are another throttle's.
* **Others keep their share.** How fast the count falls beyond what our own replies explain
  (another integration, the dashboard) is measured between *settled* lows (every request
  sent before them has come back, so every hit of ours before them is known); the others'
  hits per window, less what they spent of this one, are not ours to take. Seen for less
  than a window, the pace is taken low: keeping too much for others would stop us sending,
  and so seeing that it is too much; keeping too little shows in the next replies.
* **A 429** (refused, not counted) proves its window full until ``Retry-After + 1`` seconds
  (the header is whole seconds and can be a second short).

Before the first reply with the headers, and once no window has been proven for a whole
window after the last one ended (the headers stopped, or the client idled), the tracker
says nothing and the limiter is its timer-only self.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Mapping

from ._protocol import parse_rate_limit

__all__ = ["Flight", "ServerWindow"]


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class Flight:
    """One request the limiter let through, until its reply (or its loss) is heard."""

    __slots__ = ("done", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.done = False


class _Known:
    """A window of the server's that replies proved, and what its own replies said.

    Attributes:
        proof_at: When the reply that proved it came back.
        members_from: Requests sent from then on (its proof, or the end of the window
            before) are surely not in an earlier window: their replies are *members*. The
            replies of requests sent before may be the previous window's: *strays*.
        ends_by: The latest it can end: its first reply's time plus ``per``.
        ends_after: The earliest it can end; replies from before then are surely older.
        lowest, lowest_at, lowest_sent: The snapshot: the lowest Remaining a member
            showed, when its reply came and when its request left.
        lows_at, lows, lows_sent: Each member that set a new low, in reply order: enough
            to tell by bisection whether a later reply proves that Remaining jumped up.
        members_at: Reply times of the members, in order.
        members_down: Their Remainings, negated and sorted (new lows append at the end).
        stray_at: When the last stray with figures came back (it may be the previous
            window's): others' pace is measured after it.
        rtt: The longest round trip among the members.
    """

    __slots__ = (
        "ends_after",
        "ends_by",
        "lowest",
        "lowest_at",
        "lowest_sent",
        "lows",
        "lows_at",
        "lows_sent",
        "members_at",
        "members_down",
        "members_from",
        "proof_at",
        "rtt",
        "stray_at",
    )

    def __init__(
        self, proof_at: float, ends_by: float, ends_after: float, members_from: float
    ) -> None:
        self.proof_at = proof_at
        self.members_from = min(members_from, proof_at)
        self.ends_by = ends_by
        self.ends_after = min(ends_after, ends_by)
        self.lowest = 0
        self.lowest_at = self.lowest_sent = proof_at
        self.lows_at: list[float] = []
        self.lows: list[int] = []
        self.lows_sent: list[float] = []
        self.members_at: list[float] = []
        self.members_down: list[int] = []
        self.stray_at = -math.inf
        self.rtt = 0.0

    def add(self, at: float, left: int, sent_at: float, member: bool = True) -> None:
        """A reply of this window: a new low moves the snapshot."""
        if member:
            self.members_at.append(at)
            insort(self.members_down, -left)
            self.rtt = max(self.rtt, at - sent_at)
        if not self.lows or left < self.lowest:
            self.lowest, self.lowest_at, self.lowest_sent = left, at, sent_at
            self.lows_at.append(at)
            self.lows.append(left)
            self.lows_sent.append(sent_at)

    def witness(self, sent_at: float, left: int) -> int:
        """The index of a low proving that a reply (sent ``sent_at``, ``left``) is later.

        Lows are in reply order with falling Remaining, so among those that came back
        before the request left, the last is the lowest: one bisection. -1 if none.
        """
        i = bisect_left(self.lows_at, sent_at) - 1
        return i if i >= 0 and self.lows[i] <= left else -1

    def others_seen(
        self, settled_until: float, unread: Callable[[float, float], int]
    ) -> tuple[int, float]:
        """Hits that were not ours between two settled lows, and the seconds between them.

        Between the first settled low after the last stray and the last settled low, the
        count fell by ``others + ours``: ``ours`` is the members whose Remaining lies in
        between, and the hits of ours whose figures we could not read that came back in
        between (``unread(since, until)``). Each low was counted between its send and its
        reply: the middle of the two stands for it.
        """
        last = bisect_left(self.lows_at, settled_until + 1e-12) - 1
        first = bisect_left(self.lows_at, self.stray_at)
        if last <= first:
            return 0, 0.0
        top, bottom = self.lows[first], self.lows[last]
        down = self.members_down
        ours = bisect_left(down, -bottom + 1) - bisect_left(down, -top + 1)
        ours += unread(self.lows_at[first], self.lows_at[last])
        seconds = (self.lows_at[last] + self.lows_sent[last]) / 2 - (
            self.lows_at[first] + self.lows_sent[first]
        ) / 2
        return max(0, top - bottom - ours), max(0.0, seconds)


class ServerWindow:
    """What the server's replies say is left of its current window, net of what is spent.

    The limiter calls :meth:`hold` when it grants a slot, :meth:`send` when the request
    leaves (:meth:`unhold` if it never does), and one of :meth:`landed`, :meth:`refused`
    or :meth:`lost` when it is over. :meth:`available` says how many more may leave now,
    :meth:`ready_at` when the next may.

    Args:
        limit: ``X-RateLimit-Limit`` expected until a reply says otherwise.
        per: The window's length in seconds (Laravel's decay); the worst case when the
            server's store makes it a little shorter.
        wall: The wall clock, to read a 429's ``Retry-After`` given as an HTTP date or its
            ``X-RateLimit-Reset`` (epoch seconds).

    Attributes:
        pace: Hits per second that were not ours, lately (0 when alone on the account).
        latency: The longest round trip seen lately: how late a request may land.
        held, flying: Slots granted and not sent yet; requests sent and not heard of.
    """

    def __init__(self, limit: int, per: float, wall: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.per = per
        self._wall = wall
        self.held = 0
        self.flying = 0
        self.pace = 0.0
        self.latency = 0.0
        # What available() needs besides the clock, worked out by _measure().
        self._left = 0
        self._kept = 0
        self._next_left: int | None = None
        self._flights: deque[Flight] = deque()
        self._known: _Known | None = None
        # Replies that may have been counted but are no known window's members (strays,
        # lost requests, another throttle's figures): when they came back, in order, and
        # the Remaining they showed (-1: none).
        self._strays_at: list[float] = []
        self._strays_left: list[int] = []
        # Others' hits and the seconds over which they were seen, in windows gone by
        # (times 0.9 at each new window: a pace measured over a few hundred milliseconds
        # a window needs ten of them to be sure to a few per cent).
        self._others = 0.0
        self._watched = 0.0
        self._rtt_before = 0.0

    # ------------------------------------------------------------------ questions

    def following(self, now: float) -> bool:
        """Whether the server's figures are fresh enough to go by (else: timer only)."""
        known = self._known
        return known is not None and now < known.ends_by + self.per

    def available(self, now: float) -> float:
        """How many more requests may be sent now; ``inf`` when not following the server.

        What is left of the window net of others' share, of our requests in flight, and
        of the replies that came back after the snapshot's request left and are not known
        to be of this window (they may have been counted after it). All but the clock's
        part is worked out once per reply (:meth:`_measure`), not once per request.
        """
        known = self._known
        if known is None or now >= known.ends_by + self.per:
            return math.inf
        flights = self._flights
        if flights and flights[0].sent_at <= now - self.per:
            self._expire(now)
        if now >= known.ends_by:
            if self._next_left is None:
                # The next window is unknown: it may have opened as early as ends_after,
                # with the whole budget, of which others take their share.
                self._next_left = (
                    self.limit - round(self.pace * self.per) - self._strays_since(known.ends_after)
                )
            return self._next_left - self.held - self.flying
        # Others may spend at least this much before a request sent now can land.
        pace = self.pace
        soon = math.ceil(pace * (now + self.latency - known.lowest_sent)) if pace else 0
        return self._left - max(self._kept, soon) - self.held - self.flying

    def ready_at(self, now: float) -> float:
        """When one more may be sent: ``now``, or the earliest time the answer may change."""
        return now if self.available(now) >= 1 else self.renews_at(now)

    def renews_at(self, now: float) -> float:
        """When :meth:`available` may grow with no reply: the window's end, a flight given
        up for lost, or the figures going stale."""
        known = self._known
        if known is None:
            return now
        if now < known.ends_by:
            return known.ends_by
        expiry = self._flights[0].sent_at + self.per if self._flights else math.inf
        return min(known.ends_by + self.per, expiry)

    # ------------------------------------------------------------------ events

    def hold(self) -> None:
        """A slot was granted; the request will leave (or be given up) soon."""
        self.held += 1

    def unhold(self) -> None:
        """The slot was given back before the request left."""
        self.held -= 1

    def send(self, flight: Flight) -> None:
        """The held request leaves (at ``flight.sent_at``): in flight until its reply."""
        self.held -= 1
        self.flying += 1
        self._flights.append(flight)

    def replied(
        self,
        flight: Flight,
        now: float,
        status: int,
        headers: Mapping[str, str],
        *,
        only_global: bool,
        other_limits: frozenset[int] = frozenset(),
    ) -> None:
        """A reply to ``flight``: its figures count if they are the global throttle's.

        Laravel shows the stacked throttle with the lowest Remaining: on the
        manual-initialise route the 10-a-minute one, mostly. On a route where the global
        throttle is the only one (``only_global``) the figures are always its own;
        elsewhere only a limit equal to the global one and to none of ``other_limits``
        names it. Any other reply is a hit of the global window with unknown figures
        (a refusal by another throttle too: the global one counted it first).
        """
        limit = _header_int(headers, "X-RateLimit-Limit")
        remaining = _header_int(headers, "X-RateLimit-Remaining")
        if (
            limit is None
            or remaining is None
            or not (only_global or (limit == self.limit and limit not in other_limits))
        ):
            self.lost(flight, now, maybe_counted=True)
        elif status == 429:
            self.refused(flight, now, retry_after=self._retry_after(headers))
        else:
            self.landed(flight, now, remaining=remaining, limit=limit)

    def landed(self, flight: Flight, now: float, *, remaining: int, limit: int) -> None:
        """An admitted reply with the global throttle's figures: the request was counted."""
        if not self._land(flight):
            return
        if limit != self.limit:  # another tier: what was known was about another limit
            self.limit, self._known = limit, None
        known, sent = self._known, flight.sent_at
        # A later window starts after the known one ended (so after ends_after), and after
        # the witness of the jump was counted (so after that request left).
        if known is None:
            self._prove(now, sent, remaining, -math.inf)
        elif sent >= known.ends_by:
            self._prove(now, sent, remaining, known.ends_after)
        elif (i := known.witness(sent, remaining)) >= 0:
            self._prove(now, sent, remaining, max(known.ends_after, known.lows_sent[i]))
        elif sent >= known.members_from:
            known.add(now, remaining, sent)
            if remaining == limit - 1:  # this request opened the window: it began after it left
                known.ends_after = min(max(known.ends_after, sent + self.per), known.ends_by)
        else:
            self._stray(now, remaining)
        self._measure()

    def refused(self, flight: Flight, now: float, *, retry_after: float | None) -> None:
        """A 429 from the global throttle: not counted, and its window is full.

        ``retry_after`` is the header (whole seconds, up to one short), None if absent.
        A refusal of a request sent before the current window was proven may be the
        previous window's: it proves nothing then (the client's pause covers it).
        """
        if not self._land(flight):
            return
        known, sent = self._known, flight.sent_at
        if known is None or sent >= known.members_from:
            # The window ends within Retry-After +- 1 s of the count (whole-second clocks).
            ends_in = self.per if retry_after is None else retry_after
            ends_by = now + min(ends_in + 1.0, self.per)
            self._open(_Known(now, ends_by, sent + max(0.0, ends_in - 1.0), now), sent)
            assert self._known is not None
            self._known.add(now, 0, sent, member=False)
        self._measure()

    def lost(self, flight: Flight, now: float, *, maybe_counted: bool) -> None:
        """No reply we can read: spent if it may have been counted (a stray)."""
        if not self._land(flight):
            return
        if maybe_counted:
            self._stray(now, -1)
        self._measure()

    # ------------------------------------------------------------------ inside

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        """Seconds to the window's end a 429 gave: ``Retry-After``, else
        ``X-RateLimit-Reset`` (an epoch second: it needs the clocks to agree, so it is only
        the fallback)."""
        wall = self._wall()
        status = parse_rate_limit(headers, now=wall, refused=True)
        if status is None or status.retry_after is not None:
            return None if status is None else status.retry_after
        return None if status.reset is None else max(0.0, status.reset - wall)

    def _land(self, flight: Flight) -> bool:
        """Take ``flight`` out of the air; False if that was done already (told twice, or
        given up for lost)."""
        if flight.done:
            return False
        flight.done = True
        self.flying -= 1
        return True

    def _expire(self, now: float) -> None:
        """Forget flights done, and those in the air for a whole window: a request cannot
        stay uncounted that long, and one that was never told about must not leak."""
        flights = self._flights
        while flights and (flights[0].done or flights[0].sent_at <= now - self.per):
            flight = flights.popleft()
            if not flight.done:
                flight.done = True
                self.flying -= 1

    def _settled_until(self) -> float:
        """Replies up to this time are settled: no request sent before them is in flight."""
        flights = self._flights
        while flights and flights[0].done:
            flights.popleft()
        return flights[0].sent_at if flights else math.inf

    def _measure(self) -> None:
        """Work out after each reply what :meth:`available` needs: others' pace, the
        latency, and what is left of the window and of the next one, strays taken off."""
        others, watched, latency = self._others, self._watched, self._rtt_before
        known = self._known
        if known is None:
            return
        latency = max(latency, known.rtt)
        seen, seconds = known.others_seen(self._settled_until(), self._unread)
        others, watched = others + seen, watched + seconds
        pace = self.pace = others / max(watched, self.per) if others else 0.0
        self.latency = latency
        # Others keep their share of the window: what they spend per window, less what
        # they spent of this one (the count's fall that our hits do not explain: members,
        # and those with no figures that came back before the snapshot's request left), to
        # the nearest request.
        ours = len(known.members_at) + self._unread(known.proof_at, known.lowest_sent)
        spent = self.limit - known.lowest - ours
        self._kept = round(pace * self.per - spent)
        self._left = known.lowest - self._strays_since(known.lowest_sent, known.lowest)
        self._next_left = None  # worked out if asked for, once the window is over

    def _stray(self, now: float, left: int) -> None:
        """A hit that may be the known window's, with ``left`` shown (-1: none)."""
        self._strays_at.append(now)
        self._strays_left.append(left)
        if self._known is not None and left >= 0:
            self._known.stray_at = now

    def _unread(self, since: float, until: float) -> int:
        """Hits of ours with no figures (another throttle's, or lost) that came back in
        ``(since, until]``: counted in between, mostly."""
        start = bisect_left(self._strays_at, since + 1e-12)
        end = bisect_left(self._strays_at, until + 1e-12)
        return sum(1 for left in self._strays_left[start:end] if left < 0)

    def _strays_since(self, since: float, below: int = -1) -> int:
        """Strays that came back since ``since``; with ``below``, only those that showed
        less left (or nothing): one showing more was, if in this window, counted before
        the snapshot, which already has it."""
        start = bisect_left(self._strays_at, since)
        if below < 0:
            return len(self._strays_at) - start
        return sum(1 for left in self._strays_left[start:] if left < below)

    def _prove(self, now: float, sent: float, remaining: int, starts_after: float) -> None:
        """A reply proved a window later than any known: it becomes the current one."""
        if remaining == self.limit - 1:
            starts_after = max(starts_after, sent)  # this request opened it
        ends_after = max(starts_after, sent - self.per) + self.per
        members_from = self._known.ends_by if self._known is not None else now
        self._open(_Known(now, now + self.per, ends_after, members_from), sent)
        assert self._known is not None
        self._known.add(now, remaining, sent)

    def _open(self, known: _Known, sent: float) -> None:
        """Make ``known`` current (proven by a request sent at ``sent``): fold the old
        one's measures in, and trim what is done with."""
        old = self._known
        if old is not None:
            seen, seconds = old.others_seen(self._settled_until(), self._unread)
            self._others = self._others * 0.9 + seen
            self._watched = self._watched * 0.9 + seconds
            self._rtt_before = old.rtt
        self._known = known
        # Strays older than every snapshot to come (this one's, those of flights still in
        # the air, or later) and than this window's earliest end count against nothing.
        keep_from = min(sent, known.ends_after, self._flights[0].sent_at if self._flights else sent)
        drop = bisect_left(self._strays_at, keep_from)
        if drop > 64:
            del self._strays_at[:drop], self._strays_left[:drop]
