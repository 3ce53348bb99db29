"""What the server's replies let the limiter believe: pure bookkeeping, times passed in.

Times are seconds on the limiter's clock; ``per`` is 10 s and the limit 10 requests, so
every figure in these tests can be checked by hand.
"""

from __future__ import annotations

import math

import pytest

from patchworks_async._server_window import Flight, ServerWindow

LIMIT, PER = 10, 10.0


def headers(remaining: int, limit: int = LIMIT, **extra: str) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), **extra}


class Tracker:
    """A ServerWindow and the requests sent through it, by name."""

    def __init__(self, limit: int = LIMIT, wall: float = 1_000_000.0) -> None:
        self.limit = limit
        self.window = ServerWindow(limit, PER, wall=lambda: wall)
        self.flights: dict[str, Flight] = {}

    def send(self, name: str, at: float) -> None:
        self.window.hold()
        flight = self.flights[name] = Flight(at)
        self.window.send(flight)

    def reply(
        self,
        name: str,
        at: float,
        remaining: int | None,
        *,
        status: int = 200,
        only_global: bool = True,
        limit: int | None = None,
        **extra: str,
    ) -> None:
        limit = self.limit if limit is None else limit
        reply = {} if remaining is None else headers(remaining, limit, **extra)
        self.window.replied(self.flights[name], at, status, reply, only_global=only_global)

    def exchange(self, name: str, sent: float, replied: float, remaining: int) -> None:
        self.send(name, sent)
        self.reply(name, replied, remaining)

    def available(self, at: float) -> float:
        return self.window.available(at)


class TestWithoutHeaders:
    def test_replies_without_the_headers_leave_the_limiter_to_its_timer(self) -> None:
        tracker = Tracker()
        for n in range(20):
            tracker.send(f"r{n}", n * 0.1)
            tracker.reply(f"r{n}", n * 0.1 + 0.05, None)
        assert not tracker.window.following(2.0)
        assert tracker.available(2.0) == math.inf
        assert tracker.window.ready_at(2.0) == 2.0

    def test_requests_in_flight_change_nothing_before_the_first_figures(self) -> None:
        tracker = Tracker()
        for n in range(50):
            tracker.send(f"r{n}", 0.0)
        assert tracker.available(0.0) == math.inf


class TestOneWindow:
    def test_the_first_reply_proves_a_window_and_what_is_left_of_it(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=6)  # others spent 3 before us
        assert tracker.window.following(0.1)
        assert tracker.available(0.1) == 6

    def test_requests_in_flight_are_already_spent(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=9)
        for name in "bcd":
            tracker.send(name, 0.2)
        assert tracker.available(0.2) == 9 - 3

    def test_the_lowest_figure_counts_not_the_last_to_arrive(self) -> None:
        """Replies overtake each other: the one counted last shows the least left."""
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=9)
        tracker.send("b", 0.2)
        tracker.send("c", 0.2)
        tracker.reply("c", 0.3, remaining=7)  # counted after b
        tracker.reply("b", 0.4, remaining=8)  # arrives last, counted first
        assert tracker.available(0.4) == 7

    def test_the_window_is_believed_full_until_it_surely_ended(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.5, remaining=0)
        assert tracker.available(0.6) <= 0
        # It opened at the latest when a's reply came back: it ends by 0.5 + per.
        assert tracker.window.ready_at(0.6) == 0.5 + PER


class TestANewWindow:
    def test_remaining_that_jumps_back_up_proves_a_new_window(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=2)
        # b left after a's reply came back (so was counted after it) and shows more left.
        tracker.exchange("b", 4.0, 4.1, remaining=8)
        assert tracker.available(4.1) == 8
        assert tracker.window.ready_at(4.1) == 4.1

    def test_more_left_is_no_proof_if_the_request_left_before_the_other_came_back(
        self,
    ) -> None:
        """Sent before a's reply, b may have been counted before a, in the same window:
        then a's figure has it already."""
        tracker = Tracker()
        tracker.send("a", 0.0)
        tracker.send("b", 0.05)
        tracker.reply("a", 0.2, remaining=2)
        tracker.reply("b", 0.3, remaining=3)
        assert tracker.available(0.3) == 2
        assert tracker.window.ready_at(0.3) == 0.3

    def test_a_request_sent_after_the_window_surely_ended_is_in_a_new_one(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=0)
        tracker.exchange("b", 10.1, 10.2, remaining=0)  # left at ends_by: a later window
        assert tracker.window.ready_at(10.2) == 10.2 + PER

    def test_once_the_window_is_over_the_next_is_assumed_whole_less_what_is_in_flight(
        self,
    ) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=0)
        tracker.send("b", 10.1)
        assert tracker.available(10.1) == LIMIT - 1

    def test_figures_go_stale_a_window_after_the_last_one_ended(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=5)
        assert tracker.window.following(10.0 + PER)
        assert not tracker.window.following(10.1 + PER)
        assert tracker.available(10.1 + PER) == math.inf

    def test_a_reply_from_before_the_new_window_was_proven_is_a_stray(self) -> None:
        """It may be the previous window's (a low figure) or this one's: it is spent until
        a request sent after it came back is answered."""
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=3)
        tracker.send("late", 4.0)
        tracker.exchange("b", 4.1, 4.2, remaining=9)  # a new window
        tracker.reply("late", 4.3, remaining=1)  # left before 4.2: old window, or this one
        assert tracker.available(4.3) == 9 - 1
        tracker.exchange("c", 4.4, 4.5, remaining=7)  # sent after the stray came back
        assert tracker.available(4.5) == 7


class TestRefusals:
    def test_a_429_blocks_until_retry_after_plus_a_second(self) -> None:
        tracker = Tracker()
        tracker.send("a", 0.0)
        tracker.reply("a", 0.1, remaining=0, status=429, **{"Retry-After": "3"})
        assert tracker.available(0.2) <= 0
        assert tracker.window.ready_at(0.2) == pytest.approx(4.1)
        # After it, a new window with the whole budget.
        assert tracker.available(4.1) == LIMIT

    def test_without_retry_after_the_reset_time_is_read_against_the_wall_clock(self) -> None:
        tracker = Tracker(wall=1_000.0)
        tracker.send("a", 0.0)
        tracker.reply("a", 0.1, remaining=0, status=429, **{"X-RateLimit-Reset": "1005"})
        assert tracker.window.ready_at(0.2) == pytest.approx(0.1 + 5 + 1)

    def test_any_admitted_reply_sent_after_a_429_came_back_is_a_new_window(self) -> None:
        tracker = Tracker()
        tracker.send("a", 0.0)
        tracker.reply("a", 0.1, remaining=0, status=429, **{"Retry-After": "3"})
        tracker.exchange("b", 4.1, 4.2, remaining=9)
        assert tracker.available(4.2) == 9


class TestStackedThrottles:
    def test_the_manual_routes_figures_do_not_count_as_the_global_windows(self) -> None:
        """On the manual route Laravel shows the 10-a-minute throttle: its Remaining says
        nothing of the 240, but the request was one of them."""
        tracker = Tracker(limit=240)
        tracker.exchange("a", 0.0, 0.1, remaining=200)
        tracker.send("manual", 0.2)
        tracker.window.replied(
            tracker.flights["manual"],
            0.3,
            200,
            headers(0, limit=10),
            only_global=False,
            other_limits=frozenset({10}),
        )
        assert tracker.available(0.3) == 200 - 1

    def test_a_manual_reply_showing_the_global_limit_is_the_global_windows_figure(
        self,
    ) -> None:
        """With fewer of the 240 left than of the 10, Laravel shows the 240's figures."""
        tracker = Tracker(limit=240)
        tracker.exchange("a", 0.0, 0.1, remaining=4)
        tracker.send("manual", 0.2)
        tracker.window.replied(
            tracker.flights["manual"],
            0.3,
            200,
            headers(3, limit=240),
            only_global=False,
            other_limits=frozenset({10}),
        )
        assert tracker.available(0.3) == 3

    def test_a_refusal_by_the_manual_throttle_still_spent_a_global_hit(self) -> None:
        tracker = Tracker(limit=240)
        tracker.exchange("a", 0.0, 0.1, remaining=200)
        tracker.send("manual", 0.2)
        tracker.window.replied(
            tracker.flights["manual"],
            0.3,
            429,
            headers(0, limit=10, **{"Retry-After": "50"}),
            only_global=False,
            other_limits=frozenset({10}),
        )
        assert tracker.available(0.3) == 200 - 1


class TestOthersOnTheAccount:
    def test_others_keep_the_share_they_have_been_spending(self) -> None:
        """Each of our replies, a second apart, shows the count fell by 2: ours and one of
        someone else's. Watched over more than a window, that is one other hit a second:
        of a 10 s window they will spend 10, and what they have not spent yet is theirs."""
        tracker = Tracker(limit=40)
        for n in range(9):  # the first window
            tracker.exchange(f"a{n}", n * 1.0, n * 1.0 + 0.01, remaining=39 - 2 * n)
        for n in range(5):  # the next: sent after the first surely ended
            tracker.exchange(f"b{n}", 10.5 + n, 10.51 + n, remaining=39 - 2 * n)
        assert tracker.window.pace == pytest.approx(1.0)
        # 31 left; others spent 4 of this window, and keep the 6 they will spend.
        assert tracker.available(14.51) == 31 - 6

    def test_a_pace_seen_for_less_than_a_window_is_taken_low(self) -> None:
        """Keeping too much for others would stop us sending, and so seeing that it is too
        much; keeping too little shows in the next replies. So a short look counts low."""
        tracker = Tracker(limit=40)
        for n in range(6):
            tracker.exchange(f"r{n}", n * 1.0, n * 1.0 + 0.01, remaining=39 - 2 * n)
        assert tracker.window.pace == pytest.approx(5 / PER)

    def test_alone_nothing_is_kept_for_others(self) -> None:
        tracker = Tracker(limit=40)
        for n in range(6):
            tracker.exchange(f"r{n}", n * 1.0, n * 1.0 + 0.01, remaining=39 - n)
        assert tracker.window.pace == 0.0
        assert tracker.available(5.01) == 34


class TestBookkeeping:
    def test_a_flight_never_told_about_is_given_up_after_a_window(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=8)
        tracker.send("forgotten", 0.2)
        assert tracker.available(0.3) == 7
        # The window is over at 10.1; the next one is whole, but for the forgotten flight...
        assert tracker.available(10.15) == LIMIT - 1
        # ...until it has been in the air for a whole window.
        assert tracker.available(10.21) == LIMIT

    def test_a_reply_told_twice_counts_once(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=8)
        tracker.send("b", 0.2)
        tracker.reply("b", 0.3, remaining=7)
        tracker.reply("b", 0.4, remaining=7)
        tracker.window.lost(tracker.flights["b"], 0.5, maybe_counted=True)
        assert tracker.window.flying == 0
        assert tracker.available(0.5) == 7

    def test_a_lost_request_that_may_have_been_counted_is_spent(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=8)
        tracker.send("b", 0.2)
        tracker.send("c", 0.2)
        tracker.window.lost(tracker.flights["b"], 0.3, maybe_counted=True)
        tracker.window.lost(tracker.flights["c"], 0.3, maybe_counted=False)
        assert tracker.available(0.3) == 8 - 1

    def test_another_limit_forgets_what_was_known_of_the_old_one(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=0)
        tracker.send("b", 0.2)
        tracker.reply("b", 0.3, remaining=15, limit=20)
        assert tracker.window.limit == 20
        assert tracker.available(0.3) == 15

    def test_held_slots_count_like_requests_in_flight(self) -> None:
        tracker = Tracker()
        tracker.exchange("a", 0.0, 0.1, remaining=5)
        tracker.window.hold()
        tracker.window.hold()
        assert tracker.available(0.2) == 3
        tracker.window.unhold()
        assert tracker.available(0.2) == 4
