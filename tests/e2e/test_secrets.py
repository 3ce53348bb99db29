"""No secret in a traceback that shows local variables (Sentry, ``pytest --showlocals``).

Each test makes a request fail deep in the client (a refused login, a server error on a
start, a dropped connection), renders the traceback with every frame's locals, as error
trackers do, and looks for the API key, the password and the login token in it.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable

import pytest

from patchworks_async import PatchworksClient, PatchworksError, RetryPolicy
from patchworks_async.testing import FakePatchworks, Fault

API_KEY = "key-9f8e7d6c5b4a39281706"
PASSWORD = "correct-horse-battery-staple-1234"
EMAIL = "ada@example.com"


def rendered(error: BaseException) -> str:
    """The traceback as an error tracker renders it: every frame, with its locals."""
    return "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())


async def failure(call: Callable[[], Awaitable[object]]) -> str:
    with pytest.raises(PatchworksError) as caught:
        await call()
    return rendered(caught.value)


@pytest.fixture
async def fake() -> object:
    async with FakePatchworks(api_keys=[API_KEY], users={EMAIL: PASSWORD}) as server:
        yield server


def client(fake: FakePatchworks, **credentials: str) -> PatchworksClient:
    return PatchworksClient(**fake.urls, retry=RetryPolicy(backoff_base=0), **credentials)


async def test_a_server_error_on_a_start_with_an_api_key(fake: FakePatchworks) -> None:
    fake.inject(Fault.SERVER_ERROR_AFTER, route="start")
    async with client(fake, api_key=API_KEY) as pw:
        shown = await failure(lambda: pw.flows.start(101, 9001, "x"))
    assert "options = CallOptions(" in shown  # the frames' locals were rendered
    assert API_KEY not in shown


async def test_a_request_cut_short_deep_in_the_transport(fake: FakePatchworks) -> None:
    """A timeout of the caller's own interrupts the send: every frame down to the socket."""
    hold = fake.hold(route="core")
    async with client(fake, api_key=API_KEY) as pw:
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(0.05):
                await pw.flows.get(101)
    hold.release()
    shown = rendered(caught.value)
    assert "authorization = '***'" in shown  # the transport's frame, redacted
    assert API_KEY not in shown


async def test_a_dropped_start_after_a_login(fake: FakePatchworks) -> None:
    async with client(fake, email=EMAIL, password=PASSWORD) as pw:
        await pw.flows.get(101)  # logged in: a token is in play
        fake.inject(Fault.DROP_AFTER, route="start")
        shown = await failure(lambda: pw.flows.start(101, 9001, "x"))
    tokens = [r.headers["Authorization"].removeprefix("Bearer ") for r in fake.received[1:]]
    assert PASSWORD not in shown
    assert all(token not in shown for token in tokens)


async def test_a_refused_login(fake: FakePatchworks) -> None:
    async with client(fake, email=EMAIL, password="not-" + PASSWORD) as pw:
        shown = await failure(lambda: pw.flows.get(101))
    assert "not-" + PASSWORD not in shown
    assert "password" in shown  # the login body's frame was rendered, redacted


async def test_a_rejected_token_renewed_then_refused(fake: FakePatchworks) -> None:
    async with client(fake, email=EMAIL, password=PASSWORD) as pw:
        await pw.flows.get(101)
        fake.revoke_tokens()
        fake.inject(Fault.UNAVAILABLE_BEFORE, times=10, route="core")
        shown = await failure(lambda: pw.flows.get(101))
    assert PASSWORD not in shown
    for request in fake.received:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        assert not token or token not in shown


def test_a_client_whose_constructor_failed_still_has_a_repr() -> None:
    """An error tracker shows ``self`` of the failed ``__init__``: that must not raise."""
    with pytest.raises(PatchworksError) as caught:
        PatchworksClient(api_key=API_KEY, timeout=-1)
    assert API_KEY not in rendered(caught.value).split("def __init__")[-1]
    assert "<not configured>" in repr(object.__new__(PatchworksClient))
