"""The client end to end against FakePatchworks over real sockets: starts, reads, errors."""

from __future__ import annotations

import json
import logging
import re
import socket

import aiohttp
import pytest

from patchworks_async import (
    AuthenticationError,
    ConfigurationError,
    Flow,
    InProcessRateLimiter,
    NotFoundError,
    PatchworksClient,
    PayloadError,
    PayloadTooLargeError,
    RateLimits,
    RequestKind,
    ValidationError,
    __version__,
)
from patchworks_async.testing import FakePatchworks

from ..support.clients import client_for

FAST = RateLimits(requests=1000, per=1.0)
"""Limits far above what a test sends (the fake allows 240 per minute by default)."""


class CountingLimiter:
    """A limiter with the public interface that only counts: shows ``limiter=`` is honoured."""

    def __init__(self) -> None:
        self.acquired: list[RequestKind] = []
        self.pauses: list[float] = []

    async def acquire(self, kind: RequestKind) -> None:
        self.acquired.append(kind)

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


class TestConfiguration:
    def test_rate_limits_are_the_ones_the_limiter_keeps(self) -> None:
        limits = RateLimits(requests=60, per=3.0)
        shared = PatchworksClient(api_key="k", limiter=InProcessRateLimiter(limits))
        assert shared.rate_limits == limits
        assert PatchworksClient(api_key="k", rate_limits=limits).rate_limits == limits
        assert PatchworksClient(api_key="k").rate_limits == RateLimits()
        assert PatchworksClient(api_key="k", limiter=CountingLimiter()).rate_limits is None

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"api_key": "k", "email": "e@x", "password": "p"},
            {"email": "e@x"},
            {"password": "p"},
            {"api_key": ""},
            {"api_key": "k", "core_url": "http://core.example.com/api/v1"},
            {"api_key": "k", "start_url": "ftp://127.0.0.1/x"},
            {"api_key": "k", "login_url": "https://user:pw@example.com/login"},
            {"api_key": "k", "timeout": 0},
            {"api_key": "k", "max_body_bytes": -1},
            {"api_key": "k", "rate_limits": RateLimits(), "limiter": CountingLimiter()},
        ],
    )
    def test_bad_arguments_raise_configuration_error(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ConfigurationError):
            PatchworksClient(**kwargs)  # type: ignore[arg-type]

    def test_configuration_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 - the base class is the point
            PatchworksClient()

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/api",
            "http://127.1.2.3/api",
            "http://[::1]:9/api",
            "http://localhost/api",
        ],
    )
    def test_plain_http_is_allowed_for_loopback_only(self, url: str) -> None:
        client = PatchworksClient(api_key="k", core_url=url + "/")
        assert client.core_url == url

    def test_rate_limits_need_a_positive_window(self) -> None:
        with pytest.raises(ConfigurationError):
            RateLimits(per=0)

    def test_from_env_reads_the_patchworks_variables(self) -> None:
        client = PatchworksClient.from_env(
            {
                "PATCHWORKS_EMAIL": "ops@example.com",
                "PATCHWORKS_PASSWORD": "hunter2-secret",
                "PATCHWORKS_CORE_URL": "https://core.example.com/api/v1",
                "PATCHWORKS_START_URL": "https://start.example.com/api/v1",
                "PATCHWORKS_LOGIN_URL": "https://login.example.com/login",
            }
        )
        assert client.core_url == "https://core.example.com/api/v1"
        assert client.start_url == "https://start.example.com/api/v1"
        assert client.login_url == "https://login.example.com/login"
        assert "hunter2-secret" not in repr(client)

    def test_from_env_overrides_win_and_empty_variables_are_unset(self) -> None:
        client = PatchworksClient.from_env(
            {"PATCHWORKS_API_KEY": "from-env", "PATCHWORKS_CORE_URL": ""}, timeout=5.0
        )
        assert client.timeout == 5.0
        assert client.core_url == "https://core.wearepatchworks.com/api/v1"

    def test_from_env_without_credentials_says_which_variables(self) -> None:
        with pytest.raises(ConfigurationError, match="PATCHWORKS_API_KEY"):
            PatchworksClient.from_env({})

    def test_repr_never_shows_secrets(self) -> None:
        for client in (
            PatchworksClient(api_key="sk-very-secret"),
            PatchworksClient(email="a@b.c", password="pw-very-secret"),
        ):
            text = repr(client) + str(client) + repr(vars(client))
            assert "very-secret" not in text


class TestStart:
    async def test_a_start_posts_the_documented_body_and_returns_the_run_id(
        self, fake: FakePatchworks
    ) -> None:
        async with client_for(fake) as pw:
            started = await pw.flows.start(
                101,
                9001,
                {"orders": [1, 2]},
                flow_variables={"region": "eu"},
                virtual_environment_id=4,
            )
        assert started.id == fake.starts[0].run_id
        assert started.message == "Flow initialised."  # the webhook trigger's documented reply
        (request,) = fake.received
        assert request.path == "/start/api/v1/flows/101/start/9001"
        assert request.json() == {
            "payload": '{"orders":[1,2]}',
            "flow_id": 101,
            "version_id": 9001,
            "flow_variables": '{"region":"eu"}',  # a JSON string, as the reference types it
            "virtual_environment_id": 4,
        }

    async def test_every_request_carries_the_documented_headers(self, fake: FakePatchworks) -> None:
        async with client_for(fake) as pw:
            await pw.flows.start(101, 9001, "<order/>")
            await pw.flows.get(101)
        for request in fake.received:
            assert request.header("Authorization") == fake.api_key  # raw, no Bearer
            assert request.header("Accept") == "application/json"
            assert request.header("Content-Type") == "application/json"
            assert request.header(
                "User-Agent",
            ).startswith(f"patchworks-async/{__version__} ")  # type: ignore[union-attr]

    async def test_without_a_version_the_deployed_version_runs(self, fake: FakePatchworks) -> None:
        async with client_for(fake) as pw:
            await pw.flows.start(101, None, "x")
        assert fake.received[0].path == "/start/api/v1/flows/101/start"
        assert fake.received[0].json() == {"payload": "x", "flow_id": 101}
        assert fake.starts[0].version_id == 9001

    async def test_initialise_uses_the_manual_route(self, fake: FakePatchworks) -> None:
        async with client_for(fake) as pw:
            await pw.flows.initialise(101, 9002, b"<order/>")
        assert fake.received[0].path == "/start/api/v1/flows/101/manual/9002"
        assert fake.starts[0].manual
        assert fake.starts[0].payload == "<order/>"

    @pytest.mark.parametrize("key", ["flow_run_id", "run_id", "id", "data.id", "data.flow_run_id"])
    async def test_the_run_id_is_found_under_each_known_key(self, key: str) -> None:
        async with FakePatchworks(run_id_key=key) as fake, client_for(fake) as pw:
            started = await pw.flows.start(101, 9001, "x")
        assert started.id == fake.starts[0].run_id
        assert started.raw  # the whole reply is kept

    @pytest.mark.parametrize("payload", [None, "", "  ", b"\xff"])
    async def test_a_bad_payload_fails_before_a_token_or_a_connection(
        self, fake: FakePatchworks, payload: object
    ) -> None:
        limiter = CountingLimiter()
        async with client_for(fake, limiter=limiter) as pw:
            with pytest.raises(PayloadError):
                await pw.flows.start(101, 9001, payload)
        assert limiter.acquired == []
        assert fake.received == []

    async def test_an_oversized_body_fails_before_a_token_or_a_connection(
        self, fake: FakePatchworks
    ) -> None:
        limiter = CountingLimiter()
        async with client_for(fake, limiter=limiter, max_body_bytes=1000) as pw:
            with pytest.raises(PayloadTooLargeError) as caught:
                await pw.flows.start(101, 9001, "é" * 500)
        assert caught.value.limit == 1000
        assert caught.value.size is not None
        assert caught.value.size > 1000
        assert limiter.acquired == []
        assert fake.received == []

    async def test_the_servers_413_maps_to_payload_too_large(self) -> None:
        async with FakePatchworks(max_body_bytes=100) as fake, client_for(fake) as pw:
            with pytest.raises(PayloadTooLargeError) as caught:
                await pw.flows.start(101, 9001, "x" * 200)
        assert caught.value.status == 413
        assert caught.value.size == len(fake.received[0].body) - 1 or caught.value.size > 100

    async def test_a_wrong_version_is_a_validation_error_with_field_errors(
        self, fake: FakePatchworks
    ) -> None:
        async with client_for(fake) as pw:
            with pytest.raises(ValidationError) as caught:
                await pw.flows.start(101, 12345, "x")
        assert "version_id" in caught.value.errors
        assert caught.value.status == 422
        assert fake.starts == []

    async def test_an_unknown_flow_is_not_found(self, fake: FakePatchworks) -> None:
        async with client_for(fake) as pw:
            with pytest.raises(NotFoundError):
                await pw.flows.start(999, 1, "x")

    async def test_start_and_manual_draw_on_their_buckets(self, fake: FakePatchworks) -> None:
        limiter = CountingLimiter()
        async with client_for(fake, limiter=limiter) as pw:
            await pw.flows.start(101, 9001, "x")
            await pw.flows.initialise(101, 9001, "x")
            await pw.flows.get(101)
        assert limiter.acquired == [RequestKind.START, RequestKind.MANUAL, RequestKind.ORDINARY]


class TestGet:
    async def test_get_returns_a_flow_model(self, fake: FakePatchworks) -> None:
        async with client_for(fake) as pw:
            flow = await pw.flows.get(101, include=["versions"])
        assert isinstance(flow, Flow)
        assert (flow.id, flow.name) == (101, "Orders to ERP")
        assert flow.versions is not None
        assert [v.id for v in flow.versions] == [9001, 9002]
        assert flow.enabled_at is not None
        assert flow.enabled_at.tzinfo is not None
        assert fake.received[0].query == {"include": "versions"}

    async def test_the_last_rate_limit_headers_are_exposed(self, fake: FakePatchworks) -> None:
        async with client_for(fake) as pw:
            assert pw.rate_limit is None
            await pw.flows.get(101)
            await pw.flows.get(101)
            assert pw.rate_limit is not None
            assert (pw.rate_limit.limit, pw.rate_limit.remaining) == (240, 238)


class TestLifecycle:
    async def test_a_borrowed_session_is_used_and_left_open(self, fake: FakePatchworks) -> None:
        async with aiohttp.ClientSession() as session:
            async with client_for(fake, session=session) as pw:
                await pw.flows.get(101)
            assert not session.closed
            assert fake.received

    async def test_an_owned_session_is_closed_by_aclose(self, fake: FakePatchworks) -> None:
        pw = client_for(fake)
        await pw.flows.get(101)  # usable without async with; the session is made on demand
        transport = pw._connection.transport  # the session the client made, to check it closes
        assert transport is not None
        session = transport.session
        await pw.aclose()
        assert session.closed
        with pytest.raises(RuntimeError, match="closed"):
            await pw.flows.get(101)

    def test_constructing_a_client_needs_no_event_loop(self) -> None:
        PatchworksClient(api_key="k")  # would raise if it touched the loop


class TestAuthentication:
    async def test_a_bad_api_key_is_an_authentication_error_that_hides_the_key(
        self, fake: FakePatchworks
    ) -> None:
        async with client_for(fake, api_key="sk-wrong-and-secret") as pw:
            with pytest.raises(AuthenticationError) as caught:
                await pw.flows.get(101)
        assert "sk-wrong-and-secret" not in str(caught.value) + repr(caught.value)
        assert len(fake.received) == 1  # an API key cannot be renewed: no replay

    async def test_login_once_for_many_concurrent_requests(self, fake: FakePatchworks) -> None:
        import asyncio

        async with client_for(
            fake, email=fake.email, password=fake.password, rate_limits=FAST
        ) as pw:
            await asyncio.gather(*(pw.flows.start(101, 9001, f"#{i}") for i in range(30)))
        assert fake.login_count == 1
        assert len(fake.starts) == 30
        assert all(
            r.header(
                "Authorization",
            ).startswith("Bearer ")  # type: ignore[union-attr]
            for r in fake.received
            if r.route != "login"
        )

    async def test_a_token_is_renewed_before_it_expires(self) -> None:
        import asyncio

        async with (
            FakePatchworks(token_ttl=0.5) as fake,
            client_for(fake, email=fake.email, password=fake.password) as pw,
        ):
            await pw.flows.get(101)
            await asyncio.sleep(0.6)
            await pw.flows.get(101)
        assert fake.login_count == 2
        assert [r.status for r in fake.received if r.route == "core"] == [200, 200]

    async def test_a_401_renews_once_and_replays_once(self, fake: FakePatchworks) -> None:
        import asyncio

        async with client_for(
            fake, email=fake.email, password=fake.password, rate_limits=FAST
        ) as pw:
            await pw.flows.get(101)
            fake.revoke_tokens()
            flows = await asyncio.gather(*(pw.flows.get(101) for _ in range(10)))
        assert len(flows) == 10
        assert fake.login_count == 2  # one renewal for all ten rejected requests

    async def test_a_second_401_is_raised(self) -> None:
        async with (
            FakePatchworks(token_ttl=1e-6) as fake,
            client_for(fake, email=fake.email, password=fake.password) as pw,
        ):
            with pytest.raises(AuthenticationError):
                await pw.flows.get(101)
        assert [r.status for r in fake.received if r.route == "core"] == [401, 401]

    async def test_a_failed_login_hides_the_password(self, fake: FakePatchworks) -> None:
        async with client_for(fake, email=fake.email, password="pw-wrong-and-secret") as pw:
            with pytest.raises(AuthenticationError) as caught:
                await pw.flows.get(101)
        assert "pw-wrong-and-secret" not in str(caught.value) + repr(caught.value)
        assert [r.route for r in fake.received] == ["login"]

    async def test_no_secret_reaches_the_logs(
        self, fake: FakePatchworks, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        async with client_for(fake, email=fake.email, password=fake.password) as pw:
            await pw.flows.get(101)
            fake.revoke_tokens()
            await pw.flows.start(101, 9001, "x")
        tokens = {
            r.header("Authorization").removeprefix("Bearer ")  # type: ignore[union-attr]
            for r in fake.received
            if r.route != "login"
        }
        logged = caplog.text
        assert "patchworks_async" in {r.name for r in caplog.records}
        for secret in (fake.password, *tokens):
            assert secret not in logged
        login_body = json.loads(next(r.body for r in fake.received if r.route == "login"))
        # Both documented login bodies at once: the Fabric one reads email, the app one username.
        assert login_body == {"email": fake.email, "username": fake.email, "password": fake.password}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_connection_never_made_is_a_transport_error_after_every_attempt() -> None:
    from patchworks_async import TransportError

    port = _closed_port()
    base = f"http://127.0.0.1:{port}"
    limiter = CountingLimiter()
    async with PatchworksClient(
        api_key="k",
        core_url=base,
        start_url=base,
        limiter=limiter,
        retry=__import__("patchworks_async").RetryPolicy(attempts=3, backoff_base=0.0),
    ) as pw:
        with pytest.raises(TransportError, match=re.escape("could not connect")):
            await pw.flows.start(101, 9001, "x")  # even a start: it surely never arrived
    assert len(limiter.acquired) == 3  # every try took a token
