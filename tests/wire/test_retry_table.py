"""The README's retry table, cell by cell: what each kind of request does after each failure.

| failure                                   | GET, PUT, DELETE | create, toggle | starts        |
|-------------------------------------------|------------------|----------------|---------------|
| 429                                       | pause, resend    | pause, resend  | pause, resend |
| connection never established              | retried          | retried        | retried       |
| timeout after sending, dropped connection | retried          | unknown        | unknown       |
| 502, 503, 504                             | retried          | unknown        | unknown       |
| other 5xx                                 | ServerError      | unknown        | unknown       |

"unknown" is :class:`OutcomeUnknownError`, raised after one send; with
``RetryPolicy(retry_ambiguous_starts=True)`` a start resends instead (a create never does).
The rules are what keeps "nothing starts twice"; this table pins them for every cell.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from patchworks_async import (
    OutcomeUnknownError,
    PatchworksClient,
    RequestKind,
    RetryPolicy,
    ServerError,
)

from ..support.mocked_aiohttp import calls

CORE = "https://core.example.test/api/v1"
START = "https://start.example.test/api/v1"
FLOW = {"data": {"id": 101, "name": "Orders"}}


class PauseRecorder:
    """A limiter that never waits and records the pauses the client asks for."""

    def __init__(self) -> None:
        self.paused: list[float] = []

    async def acquire(self, kind: RequestKind = RequestKind.ORDINARY) -> None:
        return None

    async def pause(self, seconds: float) -> None:
        self.paused.append(seconds)


Call = Callable[[PatchworksClient], Awaitable[Any]]


class Kind(enum.Enum):
    IDEMPOTENT = "idempotent"
    NOT_IDEMPOTENT = "not idempotent"
    START = "start"


# name -> (kind, method, url, success reply (JSON or None for an empty body), call)
REQUESTS: dict[str, tuple[Kind, str, str, Any, Call]] = {
    "GET": (Kind.IDEMPOTENT, "GET", f"{CORE}/flows/101", FLOW, lambda pw: pw.flows.get(101)),
    "PUT": (
        Kind.IDEMPOTENT,
        "PUT",
        f"{CORE}/flows/101",
        FLOW,
        lambda pw: pw.flows.update(101, name="x"),
    ),
    "DELETE": (
        Kind.IDEMPOTENT,
        "DELETE",
        f"{CORE}/flows/101",
        None,
        lambda pw: pw.flows.delete(101),
    ),
    "create": (
        Kind.NOT_IDEMPOTENT,
        "POST",
        f"{CORE}/flows",
        FLOW,
        lambda pw: pw.flows.create("Orders"),
    ),
    "toggle": (
        Kind.NOT_IDEMPOTENT,
        "PATCH",
        f"{CORE}/flows/101/layout-direction",
        None,
        lambda pw: pw.flows.toggle_layout_direction(101),
    ),
    "start": (
        Kind.START,
        "POST",
        f"{START}/flows/101/start/9001",
        {"flow_run_id": 7},
        lambda pw: pw.flows.start(101, 9001, "x"),
    ),
    "initialise": (
        Kind.START,
        "POST",
        f"{START}/flows/101/manual/9001",
        {"flow_run_id": 7},
        lambda pw: pw.flows.initialise(101, 9001, "x"),
    ),
}


def refused() -> aiohttp.ClientConnectorError:
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("example.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(connection_key=key, os_error=OSError(111, "refused"))


# name -> how to register the failure on the mock
FAILURES: dict[str, dict[str, Any]] = {
    "429": {
        "status": 429,
        "payload": {"message": "Too Many Attempts."},
        "headers": {"Retry-After": "2"},
    },
    "never connected": {"exception": refused()},
    "timeout after sending": {"exception": builtins.TimeoutError()},
    "dropped connection": {"exception": aiohttp.ServerDisconnectedError()},
    "502": {"status": 502, "payload": {"message": "Bad Gateway"}},
    "503": {"status": 503, "payload": {"message": "Service Unavailable"}},
    "504": {"status": 504, "payload": {"message": "Gateway Timeout"}},
    "500": {"status": 500, "payload": {"message": "Server Error"}},
}

RESENT = "resent"
PAUSED = "paused, resent"

# (failure, kind) -> what happens: RESENT, PAUSED, or the exception raised after one send
TABLE: dict[tuple[str, Kind], str | type[Exception]] = {}
for kind in Kind:
    TABLE["429", kind] = PAUSED
    TABLE["never connected", kind] = RESENT
for failure in ("timeout after sending", "dropped connection", "502", "503", "504"):
    TABLE[failure, Kind.IDEMPOTENT] = RESENT
    TABLE[failure, Kind.NOT_IDEMPOTENT] = OutcomeUnknownError
    TABLE[failure, Kind.START] = OutcomeUnknownError
TABLE["500", Kind.IDEMPOTENT] = ServerError
TABLE["500", Kind.NOT_IDEMPOTENT] = OutcomeUnknownError
TABLE["500", Kind.START] = OutcomeUnknownError

CELLS = [(failure, request) for failure in FAILURES for request in REQUESTS]


def client(limiter: PauseRecorder, **retry: Any) -> PatchworksClient:
    return PatchworksClient(
        api_key="k",
        core_url=CORE,
        start_url=START,
        limiter=limiter,
        retry=RetryPolicy(backoff_base=0.0, **retry),
    )


def register(m: aioresponses, method: str, url: str, **reply: Any) -> None:
    m.add(url, method, **reply)


async def run_cell(
    m: aioresponses, failure: str, request: str, **retry: Any
) -> tuple[object, int, list[float]]:
    """Fail the first send as ``failure``, answer the next; return the outcome, sends, pauses."""
    _, method, url, success, call = REQUESTS[request]
    register(m, method, url, **FAILURES[failure])
    if success is None:
        register(m, method, url, status=200, body="")
    else:
        register(m, method, url, status=200, payload=success)
    limiter = PauseRecorder()
    async with client(limiter, **retry) as pw:
        try:
            outcome: object = await call(pw)
        except Exception as exc:  # the cell's expectation says which
            outcome = exc
    return outcome, calls(m, method, url), limiter.paused


@pytest.mark.parametrize(("failure", "request_name"), CELLS, ids=[f"{f}-{r}" for f, r in CELLS])
async def test_the_retry_table(m: aioresponses, failure: str, request_name: str) -> None:
    expected = TABLE[failure, REQUESTS[request_name][0]]
    outcome, sent, paused = await run_cell(m, failure, request_name)
    if expected == RESENT:
        assert not isinstance(outcome, Exception), outcome
        assert (sent, paused) == (2, [])
    elif expected == PAUSED:
        assert not isinstance(outcome, Exception), outcome
        assert (sent, paused) == (2, [3.0])  # Retry-After 2, plus the second it can be short
    else:
        assert isinstance(expected, type)
        assert type(outcome) is expected, outcome
        assert sent == 1


AMBIGUOUS = ["timeout after sending", "dropped connection", "502", "503", "504", "500"]


@pytest.mark.parametrize("failure", AMBIGUOUS)
@pytest.mark.parametrize("request_name", ["start", "initialise", "create", "toggle"])
async def test_retry_ambiguous_starts_resends_starts_only(
    m: aioresponses, failure: str, request_name: str
) -> None:
    """The opt-in covers starts (the caller accepts a possible second run), nothing else."""
    outcome, sent, _ = await run_cell(m, failure, request_name, retry_ambiguous_starts=True)
    if REQUESTS[request_name][0] is Kind.START:
        assert not isinstance(outcome, Exception), outcome
        assert sent == 2
    else:
        assert isinstance(outcome, OutcomeUnknownError)
        assert sent == 1
