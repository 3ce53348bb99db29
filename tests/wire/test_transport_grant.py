"""The transport tells each slot's :class:`Grant` how its request fared, every time.

A limiter that follows the server's count takes every request it let through as in flight
(spent) until it hears of it: a grant never told would shrink its budget for a whole
window. So every way a send can end must reach the grant exactly once: a reply, a
connection never made, a connection lost, and a caller cancelled in the middle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses

from patchworks_async import OutcomeUnknownError, PatchworksClient, RequestKind, RetryPolicy

CORE = "https://core.example.test/api/v1"
START = "https://start.example.test/api/v1"
FLOW_URL = f"{CORE}/flows/101"
START_URL = f"{START}/flows/101/start/9001"


class RecordingGrant:
    def __init__(self, told: list[tuple[Any, ...]]) -> None:
        self._told = told

    def replied(self, status: int, headers: Mapping[str, str]) -> None:
        self._told.append(("replied", status, headers.get("X-RateLimit-Remaining")))

    def unanswered(self, *, maybe_counted: bool) -> None:
        self._told.append(("unanswered", maybe_counted))


class RecordingLimiter:
    """A limiter that never waits and records what each of its grants is told."""

    def __init__(self) -> None:
        self.told: list[tuple[Any, ...]] = []
        self.slots = 0

    async def acquire(self, kind: RequestKind) -> RecordingGrant:
        self.slots += 1
        return RecordingGrant(self.told)

    async def pause(self, seconds: float) -> None:
        pass


def client(limiter: RecordingLimiter) -> PatchworksClient:
    return PatchworksClient(
        api_key="k",
        core_url=CORE,
        start_url=START,
        limiter=limiter,
        retry=RetryPolicy(attempts=1, backoff_base=0.0),
    )


async def test_a_reply_is_told_with_its_status_and_headers(m: aioresponses) -> None:
    m.get(FLOW_URL, payload={"data": {"id": 101}}, headers={"X-RateLimit-Remaining": "7"})
    limiter = RecordingLimiter()
    async with client(limiter) as pw:
        await pw.flows.get(101)
    assert limiter.told == [("replied", 200, "7")]


async def test_a_connection_never_made_was_surely_not_counted(m: aioresponses) -> None:
    key = ConnectionKey("start.example.test", 443, True, True, None, None, None)
    refused = aiohttp.ClientConnectorError(connection_key=key, os_error=OSError(111, "no"))
    m.get(FLOW_URL, exception=refused)
    limiter = RecordingLimiter()
    async with client(limiter) as pw:
        with pytest.raises(Exception):  # noqa: B017, PT011 - which error is another test's
            await pw.flows.get(101)
    assert limiter.told == [("unanswered", False)]


async def test_a_connection_lost_after_sending_may_have_been_counted(m: aioresponses) -> None:
    m.post(START_URL, exception=aiohttp.ServerDisconnectedError())
    limiter = RecordingLimiter()
    async with client(limiter) as pw:
        with pytest.raises(OutcomeUnknownError):
            await pw.flows.start(101, 9001, "x")
    assert limiter.told == [("unanswered", True)]


async def test_a_caller_cancelled_while_its_request_is_out_still_tells_the_grant(
    m: aioresponses,
) -> None:
    """Else the limiter would count it in flight (spent) for a whole window."""
    sent = asyncio.Event()

    async def never_answer(url: Any, **kwargs: Any) -> None:
        sent.set()
        await asyncio.Event().wait()

    m.get(FLOW_URL, callback=never_answer)
    limiter = RecordingLimiter()
    async with client(limiter) as pw:
        task = asyncio.create_task(pw.flows.get(101))
        await sent.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert limiter.slots == 1
    assert limiter.told == [("unanswered", True)]
