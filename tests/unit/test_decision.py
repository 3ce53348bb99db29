"""``decide()``: the one function that says what an outcome means. No loop, no socket.

The table is the README's retry table (and ``_protocol``'s docstring), one row per cell;
``test_retry_table.py`` checks the same cells through the transport.
"""

from __future__ import annotations

import builtins
import json

import aiohttp
import pytest

from patchworks_async import (
    AuthenticationError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitError,
    RequestKind,
    RetryPolicy,
    ServerError,
    TimeoutError,
    TransportError,
    UnexpectedResponseError,
    ValidationError,
)
from patchworks_async._protocol import (
    Action,
    Decision,
    LostInFlight,
    NeverConnected,
    Outcome,
    Replied,
    Request,
    decide,
)

GET = Request.build("GET", "https://core.test/api/v1/flows/1")
CREATE = Request.build("POST", "https://core.test/api/v1/flows", body=b"{}")
START = Request.build(
    "POST", "https://start.test/api/v1/flows/1/start", body=b"{}", kind=RequestKind.START
)
REQUESTS = {"GET": GET, "create": CREATE, "start": START}


def reply(status: int, body: object = None, **headers: str) -> Replied:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return Replied(status, headers, raw)


OUTCOMES: dict[str, Outcome] = {
    "200 json": reply(200, {"data": {"id": 1}}),
    "200 empty": reply(200),
    "200 html": reply(200, b"<html>portal</html>"),
    "429": reply(429, {"message": "Too Many Attempts."}, **{"Retry-After": "4"}),
    "401": reply(401, {"message": "Unauthenticated."}),
    "404": reply(404, {"message": "Not Found"}),
    "422": reply(422, {"message": "invalid", "errors": {"payload": ["blank"]}}),
    "never connected": NeverConnected(OSError("refused")),
    "timed out": LostInFlight(builtins.TimeoutError(), timed_out=True),
    "dropped": LostInFlight(aiohttp.ServerDisconnectedError(), timed_out=False),
    "502": reply(502, b"<html>Bad Gateway</html>"),
    "503": reply(503, {"message": "Service Unavailable"}, **{"Retry-After": "7"}),
    "504": reply(504),
    "500": reply(500, {"message": "Server Error"}),
}

U = OutcomeUnknownError
# outcome -> (GET, create, start): an Action, or the class of the error raised
TABLE: dict[str, tuple[Action | type[Exception], ...]] = {
    "200 json": (Action.RETURN, Action.RETURN, Action.RETURN),
    "200 empty": (Action.RETURN, Action.RETURN, U),
    "200 html": (UnexpectedResponseError, U, U),
    "429": (Action.PAUSE, Action.PAUSE, Action.PAUSE),
    "401": (Action.RENEW, Action.RENEW, Action.RENEW),
    "404": (NotFoundError, NotFoundError, NotFoundError),
    "422": (ValidationError, ValidationError, ValidationError),
    "never connected": (Action.RETRY, Action.RETRY, Action.RETRY),
    "timed out": (Action.RETRY, U, U),
    "dropped": (Action.RETRY, U, U),
    "502": (Action.RETRY, U, U),
    "503": (Action.RETRY, U, U),
    "504": (Action.RETRY, U, U),
    "500": (ServerError, U, U),
}
CELLS = [(o, r) for o in OUTCOMES for r in REQUESTS]


def decision(outcome: str, request: str, **kwargs: object) -> Decision:
    options: dict[str, object] = {"retry": RetryPolicy(), "refusals": 0, "renewed": False}
    options.update(kwargs)
    return decide(REQUESTS[request], OUTCOMES[outcome], now=0.0, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("outcome", "request_name"), CELLS, ids=[f"{o}-{r}" for o, r in CELLS])
def test_the_decision_table(outcome: str, request_name: str) -> None:
    expected = TABLE[outcome][list(REQUESTS).index(request_name)]
    made = decision(outcome, request_name)
    if isinstance(expected, Action):
        assert made.action is expected
    else:
        assert made.action is Action.RAISE
        assert type(made.error) is expected


class TestDetails:
    def test_a_429_pauses_for_retry_after_plus_the_second_it_can_be_short(self) -> None:
        made = decision("429", "start")
        assert (made.delay, made.unprocessed) == (5.0, True)

    def test_a_429_without_retry_after_backs_off_from_a_second(self) -> None:
        delays = [
            decide(GET, reply(429), retry=RetryPolicy(), refusals=n, renewed=False, now=0).delay
            for n in range(4)
        ]
        assert delays == [1.0, 2.0, 4.0, 8.0]

    def test_too_many_429s_in_a_row_raise(self) -> None:
        made = decision("429", "GET", refusals=RetryPolicy().max_rate_limited_waits)
        assert made.action is Action.RAISE
        assert isinstance(made.error, RateLimitError)
        assert made.error.retry_after == 4.0

    def test_a_second_401_in_one_try_raises(self) -> None:
        made = decision("401", "GET", renewed=True)
        assert (made.action, type(made.error)) == (Action.RAISE, AuthenticationError)

    def test_a_503_keeps_the_servers_retry_after(self) -> None:
        assert decision("503", "GET").delay == 7.0

    @pytest.mark.parametrize("outcome", ["timed out", "dropped", "502", "500"])
    def test_ambiguous_starts_retry_only_when_the_caller_accepts_it(self, outcome: str) -> None:
        opted_in = RetryPolicy(retry_ambiguous_starts=True)
        assert decision(outcome, "start", retry=opted_in).action is Action.RETRY
        assert decision(outcome, "create", retry=opted_in).action is Action.RAISE

    def test_only_a_connection_never_made_is_known_unprocessed(self) -> None:
        assert decision("never connected", "start").unprocessed
        assert not decision("timed out", "start").unprocessed

    def test_a_timeout_on_an_idempotent_request_is_our_timeout_error(self) -> None:
        made = decision("timed out", "GET")
        assert isinstance(made.error, TimeoutError)
        assert isinstance(made.error, builtins.TimeoutError)
        assert isinstance(decision("dropped", "GET").error, TransportError)

    def test_the_cause_is_kept_and_no_aiohttp_error_is_the_error(self) -> None:
        made = decision("dropped", "start")
        assert isinstance(made.error, OutcomeUnknownError)
        assert isinstance(made.error.__cause__, aiohttp.ServerDisconnectedError)

    def test_a_json_reply_is_returned_decoded(self) -> None:
        assert decision("200 json", "start").body == {"data": {"id": 1}}
