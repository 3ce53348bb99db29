"""How the transport classifies failures a real server cannot easily produce, via aioresponses.

Each test mocks aiohttp at ``ClientSession._request`` and checks one rule of the design in
``_transport.py``: idempotent requests retry connection errors, timeouts and 502/503/504; a
start retries only 429 and connections that were never established, and otherwise raises
:class:`OutcomeUnknownError`; no aiohttp exception ever reaches the caller. The end-to-end
versions over real sockets live in ``test_resilience.py``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses

import patchworks_async
from patchworks_async import (
    APIError,
    OutcomeUnknownError,
    PatchworksClient,
    RateLimits,
    RetryPolicy,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)

from ..support.mocked_aiohttp import calls

CORE = "https://core.example.test/api/v1"
START = "https://start.example.test/api/v1"
START_URL = f"{START}/flows/101/start/9001"
MANUAL_URL = f"{START}/flows/101/manual/9001"
FLOW_URL = f"{CORE}/flows/101"
STARTED = {"message": "flow initialised", "flow_run_id": 555}
FLOW = {"data": {"id": 101, "name": "Orders"}}


def make_client(**kwargs: Any) -> PatchworksClient:
    """A client for the example hosts: instant retries, a limiter that never waits."""
    kwargs.setdefault("retry", RetryPolicy(backoff_base=0.0))
    return PatchworksClient(
        api_key="k",
        core_url=CORE,
        start_url=START,
        rate_limits=RateLimits(requests=10_000, per=1.0),
        **kwargs,
    )


def refused() -> aiohttp.ClientConnectorError:
    """What aiohttp raises when the TCP connection is refused: nothing was sent."""
    key = ConnectionKey("start.example.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(connection_key=key, os_error=OSError(111, "refused"))


def assert_no_aiohttp_leak(exc: BaseException) -> None:
    assert isinstance(exc, patchworks_async.PatchworksError)
    assert not isinstance(exc, aiohttp.ClientError)


# Failures after the request may have left: a plain timeout, a read timeout, a dropped
# connection, a broken reply body. Each factory builds a fresh exception per registration.
# ``TimeoutError`` is what asyncio raises: asyncio.TimeoutError is builtins.TimeoutError.
AMBIGUOUS_FAILURES: list[Callable[[], BaseException]] = [
    lambda: aiohttp.ClientPayloadError("Response payload is not completed"),
    lambda: aiohttp.ServerDisconnectedError(),
    lambda: TimeoutError(),
    lambda: aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
]
AMBIGUOUS_IDS = ["payload-error", "disconnected", "asyncio-timeout", "socket-timeout"]


class TestStartsAreNotResentWhenTheyMayHaveArrived:
    async def test_a_payload_error_while_reading_a_start_reply_is_an_unknown_outcome(
        self, m: aioresponses, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The server answered 200, but the body broke off mid-read: the run may exist."""

        async def broken_read(self: aiohttp.ClientResponse) -> bytes:
            raise aiohttp.ClientPayloadError("Response payload is not completed")

        monkeypatch.setattr(aiohttp.ClientResponse, "read", broken_read)
        m.post(START_URL, payload=STARTED, repeat=True)
        async with make_client() as pw:
            with pytest.raises(OutcomeUnknownError) as caught:
                await pw.flows.start(101, 9001, "once")
        assert_no_aiohttp_leak(caught.value)
        assert calls(m, "POST", START_URL) == 1

    async def test_a_server_disconnect_on_a_start_is_an_unknown_outcome_sent_once(
        self, m: aioresponses
    ) -> None:
        m.post(START_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
        async with make_client() as pw:
            with pytest.raises(OutcomeUnknownError) as caught:
                await pw.flows.start(101, 9001, "once")
        assert_no_aiohttp_leak(caught.value)
        assert calls(m, "POST", START_URL) == 1

    async def test_a_server_disconnect_on_an_initialise_is_an_unknown_outcome_sent_once(
        self, m: aioresponses
    ) -> None:
        m.post(MANUAL_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
        async with make_client() as pw:
            with pytest.raises(OutcomeUnknownError) as caught:
                await pw.flows.initialise(101, 9001, "once")
        assert_no_aiohttp_leak(caught.value)
        assert calls(m, "POST", MANUAL_URL) == 1

    @pytest.mark.parametrize(
        "failure",
        [lambda: TimeoutError(), lambda: aiohttp.SocketTimeoutError("read timeout")],
        ids=["asyncio-timeout", "socket-timeout"],
    )
    async def test_a_timeout_on_a_start_is_an_unknown_outcome_that_says_timed_out(
        self, m: aioresponses, failure: Callable[[], BaseException]
    ) -> None:
        m.post(START_URL, exception=failure(), repeat=True)
        async with make_client() as pw:
            with pytest.raises(OutcomeUnknownError, match="timed out") as caught:
                await pw.flows.start(101, 9001, "once")
        assert_no_aiohttp_leak(caught.value)
        assert not isinstance(caught.value, builtins.TimeoutError)
        assert calls(m, "POST", START_URL) == 1

    @pytest.mark.parametrize("failure", AMBIGUOUS_FAILURES, ids=AMBIGUOUS_IDS)
    async def test_an_unknown_outcome_keeps_the_aiohttp_exception_as_its_cause(
        self, m: aioresponses, failure: Callable[[], BaseException]
    ) -> None:
        """The caller can tell a timeout from a reset: ``__cause__`` is aiohttp's exception."""
        original = failure()
        m.post(START_URL, exception=original)
        async with make_client() as pw:
            with pytest.raises(OutcomeUnknownError) as caught:
                await pw.flows.start(101, 9001, "once")
        assert_no_aiohttp_leak(caught.value)
        assert caught.value.__cause__ is original


class TestStartsAreResentWhenTheyNeverLeft:
    async def test_a_refused_connection_on_a_start_is_retried_then_succeeds(
        self, m: aioresponses
    ) -> None:
        m.post(START_URL, exception=refused())
        m.post(START_URL, exception=refused())
        m.post(START_URL, payload=STARTED)
        async with make_client() as pw:
            started = await pw.flows.start(101, 9001, "resent")
        assert started.id == 555
        assert calls(m, "POST", START_URL) == 3

    async def test_a_refused_connection_on_an_initialise_is_retried_then_succeeds(
        self, m: aioresponses
    ) -> None:
        m.post(MANUAL_URL, exception=refused())
        m.post(MANUAL_URL, payload=STARTED)
        async with make_client() as pw:
            started = await pw.flows.initialise(101, 9001, "resent")
        assert started.id == 555
        assert calls(m, "POST", MANUAL_URL) == 2

    async def test_a_connect_timeout_on_a_start_is_retried(self, m: aioresponses) -> None:
        """``ConnectionTimeoutError`` is a ``TimeoutError`` too, but nothing was sent."""
        m.post(START_URL, exception=aiohttp.ConnectionTimeoutError("connect timeout"))
        m.post(START_URL, payload=STARTED)
        async with make_client() as pw:
            started = await pw.flows.start(101, 9001, "resent")
        assert started.id == 555
        assert calls(m, "POST", START_URL) == 2

    async def test_a_start_that_never_connects_raises_transport_error_after_all_attempts(
        self, m: aioresponses
    ) -> None:
        """Known not to have arrived, so not an unknown outcome; the cause is kept."""
        m.post(START_URL, exception=refused(), repeat=True)
        async with make_client(retry=RetryPolicy(attempts=3, backoff_base=0.0)) as pw:
            with pytest.raises(TransportError) as caught:
                await pw.flows.start(101, 9001, "never")
        assert_no_aiohttp_leak(caught.value)
        assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
        assert calls(m, "POST", START_URL) == 3


class TestIdempotentRequests:
    async def test_a_server_disconnect_on_a_get_is_retried_until_success(
        self, m: aioresponses
    ) -> None:
        m.get(FLOW_URL, exception=aiohttp.ServerDisconnectedError())
        m.get(FLOW_URL, exception=aiohttp.ServerDisconnectedError())
        m.get(FLOW_URL, payload=FLOW)
        async with make_client() as pw:
            flow = await pw.flows.get(101)
        assert flow.id == 101
        assert calls(m, "GET", FLOW_URL) == 3

    @pytest.mark.parametrize(
        "failure",
        [lambda: TimeoutError(), lambda: aiohttp.SocketTimeoutError("read timeout")],
        ids=["asyncio-timeout", "socket-timeout"],
    )
    async def test_a_get_that_keeps_timing_out_raises_the_library_timeout_error(
        self, m: aioresponses, failure: Callable[[], BaseException]
    ) -> None:
        for _ in range(2):
            m.get(FLOW_URL, exception=failure())
        async with make_client(retry=RetryPolicy(attempts=2, backoff_base=0.0)) as pw:
            with pytest.raises(patchworks_async.TimeoutError) as caught:
                await pw.flows.get(101)
        assert_no_aiohttp_leak(caught.value)
        assert isinstance(caught.value, builtins.TimeoutError)
        assert isinstance(caught.value, TransportError)
        assert isinstance(caught.value.__cause__, builtins.TimeoutError)
        assert calls(m, "GET", FLOW_URL) == 2

    async def test_a_503_with_retry_after_zero_on_a_get_is_retried(self, m: aioresponses) -> None:
        m.get(FLOW_URL, status=503, body="busy", headers={"Retry-After": "0"})
        m.get(FLOW_URL, payload=FLOW)
        async with make_client() as pw:
            flow = await pw.flows.get(101)
        assert flow.id == 101
        assert calls(m, "GET", FLOW_URL) == 2

    async def test_a_500_on_a_get_raises_server_error_without_retrying(
        self, m: aioresponses
    ) -> None:
        """Only 502/503/504 mean "try again"; a 500 is the server's own failure."""
        m.get(FLOW_URL, status=500, payload={"message": "Server Error"}, repeat=True)
        async with make_client() as pw:
            with pytest.raises(ServerError) as caught:
                await pw.flows.get(101)
        assert_no_aiohttp_leak(caught.value)
        assert caught.value.status == 500
        assert calls(m, "GET", FLOW_URL) == 1


class TestReplies:
    @pytest.mark.parametrize(
        ("body", "content_type"),
        [
            ("flow initialised", "text/plain"),
            ("<html>Welcome</html>", "text/html"),
            ("", "text/plain"),
        ],
        ids=["text", "html", "empty"],
    )
    async def test_a_2xx_start_reply_that_is_not_json_leaves_the_outcome_unknown(
        self, m: aioresponses, body: str, content_type: str
    ) -> None:
        """A proxy's page proves nothing: the start may or may not have happened."""
        m.post(START_URL, status=200, body=body, content_type=content_type)
        async with make_client() as pw:
            with pytest.raises(OutcomeUnknownError) as caught:
                await pw.flows.start(101, 9001, "once")
        assert_no_aiohttp_leak(caught.value)
        assert caught.value.status == 200
        assert calls(m, "POST", START_URL) == 1  # never resent

    @pytest.mark.parametrize(
        "reply",
        [{"message": "Flow initialised."}, [], "queued", {"data": {"status": "queued"}}],
        ids=["message-only", "list", "string", "data-without-id"],
    )
    async def test_a_json_2xx_start_reply_without_a_run_id_is_a_start(
        self, m: aioresponses, reply: object
    ) -> None:
        m.post(START_URL, status=200, payload=reply)
        async with make_client() as pw:
            started = await pw.flows.start(101, 9001, "once")
        assert started.id is None
        assert started.raw == reply

    async def test_a_run_id_under_flow_run_id_in_camel_case_is_found(self, m: aioresponses) -> None:
        m.post(START_URL, status=200, payload={"flowRunId": 77})
        async with make_client() as pw:
            assert (await pw.flows.start(101, 9001, "once")).id == 77

    async def test_a_2xx_html_page_on_a_get_says_it_was_not_json(self, m: aioresponses) -> None:
        m.get(FLOW_URL, status=200, body="<html>Log in</html>", content_type="text/html")
        async with make_client() as pw:
            with pytest.raises(UnexpectedResponseError, match="not JSON") as caught:
                await pw.flows.get(101)
        assert_no_aiohttp_leak(caught.value)
        assert caught.value.body == "<html>Log in</html>"

    async def test_an_empty_200_on_flows_get_is_an_unexpected_response(
        self, m: aioresponses
    ) -> None:
        """Not a ``KeyError`` or ``TypeError`` from digging into ``None``."""
        m.get(FLOW_URL, status=200, body="")
        async with make_client() as pw:
            with pytest.raises(UnexpectedResponseError) as caught:
                await pw.flows.get(101)
        assert_no_aiohttp_leak(caught.value)
        assert caught.value.body is None

    async def test_a_redirect_on_a_start_is_not_followed(self, m: aioresponses) -> None:
        """Following a 302 would turn the POST into a GET; it surfaces as a 302 instead."""
        elsewhere = "https://start.example.test/elsewhere"
        m.post(START_URL, status=302, body="", headers={"Location": elsewhere})
        m.get(elsewhere, payload=STARTED)
        async with make_client() as pw:
            with pytest.raises(APIError) as caught:
                await pw.flows.start(101, 9001, "once")
        assert_no_aiohttp_leak(caught.value)
        assert caught.value.status == 302
        assert calls(m, "POST", START_URL) == 1
        assert calls(m, "GET", elsewhere) == 0
