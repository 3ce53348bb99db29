"""Tests of ``patchworks_async.testing.FakePatchworks`` and its pure throttle model.

The fake is what every other test trusts, so it is tested on its own: the throttle model
with plain numbers (no loop, no clock), and the server over real sockets with a plain
``aiohttp.ClientSession``, never with the client library.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks, Fault, ReceivedRequest, StartedRun
from patchworks_async.testing._throttle import (
    FixedWindowThrottle,
    Limit,
    whole_second_retry_after,
)

# --------------------------------------------------------------------------- helpers


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def fake() -> AsyncIterator[FakePatchworks]:
    async with FakePatchworks() as server:
        yield server


def key_headers(fake: FakePatchworks) -> dict[str, str]:
    return {"Authorization": fake.api_key, "Accept": "application/json"}


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | str | io.BytesIO | None = None,
    json_body: Any = None,
) -> tuple[int, dict[str, str], Any]:
    """Send one request; return status, headers and the JSON (or text) body."""
    async with session.request(method, url, headers=headers, data=data, json=json_body) as resp:
        text = await resp.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return resp.status, dict(resp.headers), body


async def start(
    session: aiohttp.ClientSession,
    fake: FakePatchworks,
    suffix: str = "flows/101/start",
    body: Any = None,
    **kwargs: Any,
) -> tuple[int, dict[str, str], Any]:
    """POST to the start service with the API key, by default a valid start."""
    payload = {"payload": '{"order": 1}'} if body is None else body
    headers = kwargs.pop("headers", key_headers(fake))
    return await call(
        session, "POST", f"{fake.start_url}/{suffix}", headers=headers, json_body=payload, **kwargs
    )


async def get_flow(
    session: aiohttp.ClientSession, fake: FakePatchworks, query: str = ""
) -> tuple[int, dict[str, str], Any]:
    return await call(
        session, "GET", f"{fake.core_url}/flows/101{query}", headers=key_headers(fake)
    )


# --------------------------------------------------------------------------- throttle model


GLOBAL = Limit("global", 3, 10.0)


def test_window_opens_at_first_hit_not_on_clock_boundaries() -> None:
    throttle = FixedWindowThrottle()
    assert [throttle.attempt([GLOBAL], t).allowed for t in (5.0, 6.0, 7.0, 8.0)] == [
        True,
        True,
        True,
        False,
    ]
    assert not throttle.attempt([GLOBAL], 14.99).allowed  # window is [5, 15)
    verdict = throttle.attempt([GLOBAL], 15.0)
    assert verdict.allowed
    assert verdict.remaining == 2


def test_window_is_never_extended_by_later_hits() -> None:
    throttle = FixedWindowThrottle()
    throttle.attempt([GLOBAL], 0.0)
    throttle.attempt([GLOBAL], 9.9)
    assert throttle.hits(GLOBAL, 9.95) == 2
    verdict = throttle.attempt([GLOBAL], 10.0)  # the window from 0 has ended
    assert verdict.remaining == 2
    assert verdict.window_ends_in == pytest.approx(10.0)


def test_refused_requests_are_not_counted() -> None:
    throttle = FixedWindowThrottle()
    for t in (0.0, 0.1, 0.2):
        throttle.attempt([GLOBAL], t)
    for t in (1.0, 2.0, 3.0, 4.0):
        assert not throttle.attempt([GLOBAL], t).allowed
    assert throttle.hits(GLOBAL, 5.0) == 3
    assert throttle.remaining(GLOBAL, 10.0) == 3  # nothing carried into the next window


def test_stacked_throttles_count_outer_before_inner_refuses() -> None:
    throttle = FixedWindowThrottle()
    outer = Limit("global", 5, 60.0)
    inner = Limit("manual", 1, 60.0)
    assert throttle.attempt([outer, inner], 0.0).allowed
    refused = throttle.attempt([outer, inner], 1.0)
    assert not refused.allowed
    assert refused.key == "manual"
    assert refused.limit == 1
    assert refused.remaining == 0
    assert throttle.hits(outer, 1.0) == 2  # the refused manual call spent a global hit
    assert throttle.hits(inner, 1.0) == 1


def test_inner_throttle_is_not_counted_when_outer_refuses() -> None:
    throttle = FixedWindowThrottle()
    outer = Limit("global", 1, 60.0)
    inner = Limit("manual", 5, 60.0)
    throttle.attempt([outer], 0.0)
    refused = throttle.attempt([outer, inner], 1.0)
    assert (refused.allowed, refused.key) == (False, "global")
    assert throttle.hits(inner, 1.0) == 0


def test_headers_report_the_lowest_remaining_ties_go_to_the_inner() -> None:
    throttle = FixedWindowThrottle()
    outer = Limit("global", 240, 60.0)
    inner = Limit("manual", 10, 60.0)
    verdict = throttle.attempt([outer, inner], 0.0)
    assert (verdict.key, verdict.limit, verdict.remaining) == ("manual", 10, 9)

    tight = FixedWindowThrottle()
    small_outer = Limit("global", 3, 60.0)
    tight.attempt([small_outer], 0.0)
    tight.attempt([small_outer], 0.0)
    verdict = tight.attempt([small_outer, inner], 0.0)
    assert (verdict.key, verdict.remaining) == ("global", 0)

    tie = FixedWindowThrottle()
    verdict = tie.attempt([Limit("global", 2, 60.0), Limit("manual", 2, 60.0)], 0.0)
    assert (verdict.key, verdict.remaining) == ("manual", 1)


def test_retry_after_uses_whole_seconds_so_it_can_be_short_but_never_negative() -> None:
    throttle = FixedWindowThrottle()
    limit = Limit("global", 1, 60.0)
    throttle.attempt([limit], 0.9)  # window [0.9, 60.9)
    early = throttle.attempt([limit], 1.0)
    assert early.retry_after == 59  # floor(60.9) - floor(1.0)
    assert early.window_ends_in == pytest.approx(59.9)  # so Retry-After is 0.9 s short
    late = throttle.attempt([limit], 60.5)
    assert late.retry_after == 0
    assert late.window_ends_in == pytest.approx(0.4)
    for now in (59.95, 60.0, 60.89):
        assert throttle.attempt([limit], now).retry_after >= 0


@pytest.mark.parametrize(
    ("ends_in", "now", "expected"),
    [(59.9, 1.0, 59), (59.9, 1.95, 60), (0.4, 60.5, 0), (0.05, 7.99, 1), (0.0, 3.0, 0)],
)
def test_whole_second_retry_after(ends_in: float, now: float, expected: int) -> None:
    retry_after = whole_second_retry_after(ends_in, now)
    assert retry_after == expected
    assert retry_after > ends_in - 1  # at most one second short...
    assert retry_after >= 0  # ...and never negative


def test_throttle_model_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Limit("global", 0, 60.0)
    with pytest.raises(ValueError, match="window"):
        Limit("global", 1, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        FixedWindowThrottle().attempt([], 0.0)


def test_throttle_reset_forgets_windows() -> None:
    throttle = FixedWindowThrottle()
    throttle.attempt([GLOBAL], 0.0)
    throttle.reset()
    assert throttle.hits(GLOBAL, 0.0) == 0


# --------------------------------------------------------------------------- lifecycle


def test_construction_needs_no_event_loop() -> None:
    server = FakePatchworks()
    assert server.api_key == "test-api-key"
    assert server.email == "user@example.com"
    assert server.password == "correct horse battery staple"
    assert sorted(server.flows) == [101]
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.core_url


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_keys": ()},
        {"users": {}},
        {"run_id_key": "runId"},
        {"requests_per_window": 0},
        {"window": 0},
        {"token_ttl": -1},
        {"max_body_bytes": -1},
        {"latency": -0.1},
        {"latency": (0.2, 0.1)},
        {"starts_per_window": 0},
    ],
)
def test_constructor_validates_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        FakePatchworks(**kwargs)


async def test_urls_and_lifecycle(session: aiohttp.ClientSession) -> None:
    server = FakePatchworks()
    await server.start()
    try:
        assert server.port > 0
        base = f"http://127.0.0.1:{server.port}"
        assert server.urls == {
            "core_url": f"{base}/core/api/v1",
            "start_url": f"{base}/start/api/v1",
            "login_url": f"{base}/fabric/api/v1/login",
        }
        status, _, _ = await get_flow(session, server)
        assert status == 200
        with pytest.raises(RuntimeError, match="single-use"):
            await server.start()
    finally:
        await server.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_flow(session, server)


async def test_close_is_prompt_with_a_slow_request_in_flight(
    session: aiohttp.ClientSession,
) -> None:
    started = asyncio.Event()

    async def slow_start(server: FakePatchworks) -> int:
        started.set()
        return (await start(session, server))[0]

    async with FakePatchworks() as server:
        server.slow_seconds = 30.0
        server.inject(Fault.SLOW_AFTER)
        pending = asyncio.ensure_future(slow_start(server))
        await started.wait()
        while not server.starts:  # noqa: ASYNC110 (the start is processed, then slowed)
            await asyncio.sleep(0.01)
        assert len(server.starts) == 1
        began = time.monotonic()
    assert time.monotonic() - began < 1.0
    # Closing cuts the delay short: the reply goes out early or the connection drops.
    outcome = (await asyncio.gather(pending, return_exceptions=True))[0]
    assert outcome == 200 or isinstance(outcome, aiohttp.ClientError)


# --------------------------------------------------------------------------- auth


async def test_api_key_is_sent_raw(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    status, headers, body = await get_flow(session, fake)
    assert status == 200
    assert body["data"]["id"] == 101
    assert headers["X-RateLimit-Remaining"] == "239"


@pytest.mark.parametrize(
    "authorization",
    [None, "wrong-key", "Bearer test-api-key", "test-api-key-2", "Bearer "],
)
async def test_bad_auth_is_401_and_not_counted(
    fake: FakePatchworks, session: aiohttp.ClientSession, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    status, resp_headers, body = await call(
        session, "GET", f"{fake.core_url}/flows/101", headers=headers
    )
    assert (status, body) == (401, {"message": "Unauthenticated."})
    assert "X-RateLimit-Remaining" not in resp_headers
    _, resp_headers, _ = await get_flow(session, fake)
    assert resp_headers["X-RateLimit-Remaining"] == "239"


async def login(
    session: aiohttp.ClientSession, fake: FakePatchworks, **credentials: str
) -> tuple[int, dict[str, str], Any]:
    body = credentials or {"email": fake.email, "password": fake.password}
    return await call(session, "POST", fake.login_url, json_body=body)


async def test_login_issues_a_bearer_token_not_counted_by_the_throttle(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, headers, body = await login(session, fake)
    assert status == 200
    assert body["message"] == "You have successfully logged in."
    assert body["expires_in"] == 86400
    assert isinstance(body["expires_in"], int)
    assert "X-RateLimit-Remaining" not in headers
    token = body["token"]
    status, headers, _ = await call(
        session, "GET", f"{fake.core_url}/flows/101", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    assert headers["X-RateLimit-Remaining"] == "239"
    assert fake.login_count == 1
    status, _, _ = await call(
        session, "GET", f"{fake.core_url}/flows/101", headers={"Authorization": token}
    )
    assert status == 401  # a token needs the Bearer prefix


@pytest.mark.parametrize(
    "body",
    [
        {"email": "user@example.com", "password": "wrong"},
        {"email": "nobody@example.com", "password": "correct horse battery staple"},
        {"email": "user@example.com"},
        {},
    ],
)
async def test_login_with_bad_credentials_is_401(
    fake: FakePatchworks, session: aiohttp.ClientSession, body: dict[str, str]
) -> None:
    status, _, reply = await call(session, "POST", fake.login_url, json_body=body)
    assert (status, reply) == (401, {"message": "Invalid credentials."})
    assert fake.login_count == 1


async def test_login_accepts_username_for_email(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, _, _ = await login(session, fake, username=fake.email, password=fake.password)
    assert status == 200


async def test_token_expires_after_token_ttl(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(token_ttl=0.3) as server:
        _, _, body = await login(session, server)
        assert body["expires_in"] == 0.3
        headers = {"Authorization": f"Bearer {body['token']}"}
        url = f"{server.core_url}/flows/101"
        assert (await call(session, "GET", url, headers=headers))[0] == 200
        await asyncio.sleep(0.35)
        assert (await call(session, "GET", url, headers=headers))[0] == 401


async def test_revoke_tokens_forces_a_new_login(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    _, _, body = await login(session, fake)
    headers = {"Authorization": f"Bearer {body['token']}"}
    url = f"{fake.core_url}/flows/101"
    fake.revoke_tokens()
    assert (await call(session, "GET", url, headers=headers))[0] == 401
    assert (await get_flow(session, fake))[0] == 200  # API keys are not revoked
    _, _, body = await login(session, fake)
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert (await call(session, "GET", url, headers=headers))[0] == 200
    assert fake.login_count == 2


# --------------------------------------------------------------------------- flows


async def test_get_flow_with_includes(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    status, _, body = await get_flow(session, fake, "?include=versions,latestVersion,labels")
    assert status == 200
    data = body["data"]
    assert data["name"] == "Orders to ERP"
    assert data["deployed_version_id"] == 9001
    assert [v["id"] for v in data["versions"]] == [9001, 9002]
    assert [v["version"] for v in data["versions"]] == [1, 2]
    assert data["latest_version"]["id"] == 9002
    assert data["labels"] == []  # flows now carry their labels (PATCHWORKS_API.md: labelled)
    _, _, plain = await get_flow(session, fake)
    assert "versions" not in plain["data"]


@pytest.mark.parametrize("flow_id", ["999", "abc"])
async def test_unknown_flow_is_404(
    fake: FakePatchworks, session: aiohttp.ClientSession, flow_id: str
) -> None:
    status, headers, body = await call(
        session, "GET", f"{fake.core_url}/flows/{flow_id}", headers=key_headers(fake)
    )
    assert (status, body) == (404, {"message": f"No query results for model [Flow] {flow_id}"})
    assert headers["X-RateLimit-Remaining"] == "239"  # admitted, so counted


async def test_add_flow_auto_ids_and_deployment(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    flow = fake.add_flow("Second", versions=(), description="x")
    assert flow["id"] == 102
    assert fake.flows[102] is flow
    assert [v["id"] for v in fake.versions.values() if v["flow_id"] == 102] == [9003]
    status, _, body = await start(session, fake, "flows/102/start")
    assert status == 422
    assert body["errors"] == {"version_id": ["The flow has no deployed version."]}
    status, _, _ = await start(session, fake, "flows/102/start/9003")
    assert status == 200
    deployed = fake.add_flow("Third", versions=(7001, 7002), deployed_version=7002)
    status, _, _ = await start(session, fake, f"flows/{deployed['id']}/manual")
    assert status == 200
    assert fake.starts[-1].version_id == 7002
    with pytest.raises(ValueError, match="already used"):
        fake.add_flow("Clash", id=101)
    with pytest.raises(ValueError, match="new and distinct"):
        fake.add_flow("Clash", versions=(9001,))
    with pytest.raises(ValueError, match="not one of"):
        fake.add_flow("Bad", versions=(8001,), deployed_version=8002)


# --------------------------------------------------------------------------- starts


async def test_start_and_manual_record_runs(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, headers, body = await start(session, fake)
    # The reply's message is the documented "Flow initialised." (PATCHWORKS_API.md).
    assert (status, body) == (200, {"message": "Flow initialised.", "flow_run_id": 500001})
    assert headers["X-RateLimit-Remaining"] == "239"
    body_in = {
        "payload": "<xml/>",
        "flow_variables": {"a": 1},
        "virtual_environment_id": 7,
    }
    status, headers, body = await start(session, fake, "flows/101/manual/9002", body_in)
    assert (status, body["flow_run_id"]) == (200, 500002)
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("10", "9")
    # flow_variables travels as a JSON-encoded string (PATCHWORKS_API.md); a list is refused.
    status, _, _ = await start(
        session, fake, "flows/101/start/9002", {"payload": "p", "flow_variables": '{"b": 2}'}
    )
    assert status == 200
    first, second, third = fake.starts
    assert first == StartedRun(
        run_id=500001,
        flow_id=101,
        version_id=9001,
        payload='{"order": 1}',
        manual=False,
        flow_variables=None,
        virtual_environment_id=None,
        received_at=first.received_at,
        raw=False,
        payload_bytes=b'{"order": 1}',
        payload_metadata_id=1,
        scheduled_flow_id=1,  # /start queues (PATCHWORKS_API.md)
    )
    assert (second.manual, second.version_id, second.payload) == (True, 9002, "<xml/>")
    assert (second.flow_variables, second.virtual_environment_id) == ({"a": 1}, 7)
    assert (third.manual, third.flow_variables) == (False, {"b": 2})


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        # {} is no longer here: empty starts are allowed (PATCHWORKS_API.md).
        ({"payload": None}, {"payload": ["The payload field is required."]}),
        ({"payload": "  \n "}, {"payload": ["The payload field is required."]}),
        ({"payload": {"a": 1}}, {"payload": ["The payload field must be a string."]}),
        ({"payload": 5}, {"payload": ["The payload field must be a string."]}),
        (  # flow_variables is a JSON-encoded string (PATCHWORKS_API.md), not an array
            {"payload": "x", "flow_variables": "a=1"},
            {"flow_variables": ["The flow variables field must be a valid JSON string."]},
        ),
        (
            {"payload": "x", "flow_variables": [1]},
            {"flow_variables": ["The flow variables field must be a string."]},
        ),
        (
            {"payload": "x", "virtual_environment_id": "seven"},
            {"virtual_environment_id": ["The virtual environment id field must be an integer."]},
        ),
    ],
)
async def test_start_validation_errors_are_laravel_422s(
    fake: FakePatchworks,
    session: aiohttp.ClientSession,
    body: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    status, headers, reply = await start(session, fake, body=body)
    assert status == 422
    assert reply == {"message": next(iter(errors.values()))[0], "errors": errors}
    assert headers["X-RateLimit-Remaining"] == "239"
    assert fake.starts == []


async def test_several_errors_are_summarised_like_laravel(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, _, reply = await start(session, fake, "flows/101/start/9999", {"payload": 1})
    assert status == 422
    assert reply["message"] == "The payload field must be a string. (and 1 more error)"
    assert reply["errors"]["version_id"] == ["The selected version id is invalid."]


async def test_version_of_another_flow_is_422(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    other = fake.add_flow("Other", versions=(8001,), deployed_version=8001)
    status, _, reply = await start(session, fake, "flows/101/start/8001")
    assert status == 422
    assert reply["errors"] == {"version_id": ["The selected version id is invalid."]}
    status, _, _ = await start(session, fake, f"flows/{other['id']}/start/8001")
    assert status == 200


async def test_start_of_unknown_flow_is_404(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, _, reply = await start(session, fake, "flows/404/manual/9001")
    assert (status, reply) == (404, {"message": "No query results for model [Flow] 404"})


async def test_empty_body_is_like_an_empty_object(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, _, reply = await call(
        session, "POST", f"{fake.start_url}/flows/101/start", headers=key_headers(fake)
    )
    # Empty starts are allowed (PATCHWORKS_API.md): no body starts the flow with no payload.
    assert status == 200
    assert reply["flow_run_id"] == fake.starts[0].run_id
    assert (fake.starts[0].payload, fake.starts[0].payload_bytes) == ("", b"")


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"payload"', b"\xff\xfe"])
async def test_malformed_or_non_object_body_is_400(
    fake: FakePatchworks, session: aiohttp.ClientSession, raw: bytes
) -> None:
    headers = {**key_headers(fake), "Content-Type": "application/json"}
    status, _, reply = await call(
        session, "POST", f"{fake.start_url}/flows/101/start", headers=headers, data=raw
    )
    assert (status, reply) == (400, {"message": "Malformed JSON."})


@pytest.mark.parametrize(
    "key", ["flow_run_id", "run_id", "flowRunId", "id", "data.id", "data.flow_run_id"]
)
async def test_run_id_key(session: aiohttp.ClientSession, key: str) -> None:
    async with FakePatchworks(run_id_key=key) as server:
        ids = []
        for _ in range(2):
            status, _, body = await start(session, server)
            assert status == 200
            assert body["message"] == "Flow initialised."  # the documented message
            holder = body["data"] if key.startswith("data.") else body
            ids.append(holder[key.removeprefix("data.")])
        assert ids == [500001, 500002]
        assert [run.run_id for run in server.starts] == ids


async def test_run_id_key_is_settable_and_validated(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.run_id_key = "data.id"
    assert (await start(session, fake))[2] == {
        "message": "Flow initialised.",  # the documented message
        "data": {"id": 500001},
    }
    with pytest.raises(ValueError, match="run_id_key"):
        fake.run_id_key = "runId"


# --------------------------------------------------------------------------- body and media type


def body_of_size(size: int) -> bytes:
    """A valid start body of exactly ``size`` bytes."""
    overhead = len(b'{"payload": ""}')
    raw = b'{"payload": "' + b"x" * (size - overhead) + b'"}'
    assert len(raw) == size
    return raw


async def post_raw(
    session: aiohttp.ClientSession, fake: FakePatchworks, raw: bytes, content_type: str
) -> tuple[int, dict[str, str], Any]:
    headers = {**key_headers(fake), "Content-Type": content_type}
    return await call(
        session, "POST", f"{fake.start_url}/flows/101/start", headers=headers, data=io.BytesIO(raw)
    )


async def test_body_of_max_body_bytes_is_accepted_one_more_is_413(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    limit = 8 * 1024 * 1024
    assert fake.max_body_bytes == limit
    status, _, _ = await post_raw(session, fake, body_of_size(limit), "application/json")
    assert status == 200
    status, headers, reply = await post_raw(
        session, fake, body_of_size(limit + 1), "application/json"
    )
    assert status == 413
    assert reply["message"].startswith("The payload is too large.")
    assert "X-RateLimit-Remaining" not in headers
    assert len(fake.starts) == 1
    _, headers, _ = await get_flow(session, fake)
    assert headers["X-RateLimit-Remaining"] == "238"  # the 413 was not counted


async def test_413_comes_before_auth(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(max_body_bytes=100) as server:
        status, _, _ = await call(
            session,
            "POST",
            f"{server.start_url}/flows/101/start",
            data=body_of_size(101),
            headers={"Content-Type": "application/json"},
        )
        assert status == 413
        assert server.received[-1].body == body_of_size(101)


async def test_non_json_content_type_is_415_and_counted(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, headers, reply = await post_raw(session, fake, body_of_size(100), "text/plain")
    assert (status, reply) == (415, {"message": "Unsupported Media Type"})
    assert headers["X-RateLimit-Remaining"] == "239"
    status, headers, _ = await post_raw(
        session, fake, body_of_size(100), "application/json; charset=utf-8"
    )
    assert status == 200
    assert headers["X-RateLimit-Remaining"] == "238"


async def test_unknown_route_and_wrong_verb_are_json(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, headers, body = await call(
        session, "GET", f"{fake.core_url}/nothing-here", headers=key_headers(fake)
    )
    assert (status, body) == (404, {"message": "Not Found"})
    assert headers["Content-Type"].startswith("application/json")
    status, headers, body = await call(
        session, "GET", f"{fake.start_url}/flows/101/start", headers=key_headers(fake)
    )
    assert (status, body) == (405, {"message": "Method Not Allowed"})
    assert headers["Allow"] == "POST"
    status, headers, body = await call(
        session, "POST", f"{fake.core_url}/flows/101", headers=key_headers(fake)
    )
    assert (status, body) == (405, {"message": "Method Not Allowed"})
    assert headers["Allow"] == "GET, PUT, DELETE"
    _, headers, _ = await get_flow(session, fake)
    assert headers["X-RateLimit-Remaining"] == "239"


# --------------------------------------------------------------------------- throttle end to end


async def test_throttle_end_to_end(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(requests_per_window=5, window=1.0) as server:
        remaining = []
        for _ in range(5):
            status, headers, _ = await get_flow(session, server)
            assert status == 200
            assert headers["X-RateLimit-Limit"] == "5"
            remaining.append(headers["X-RateLimit-Remaining"])
        assert remaining == ["4", "3", "2", "1", "0"]
        before = int(time.time())
        status, headers, body = await start(session, server)
        assert (status, body) == (429, {"message": "Too Many Attempts."})
        assert headers["X-RateLimit-Limit"] == "5"
        assert headers["X-RateLimit-Remaining"] == "0"
        retry_after = int(headers["Retry-After"])
        assert 0 <= retry_after <= 1
        assert before <= int(headers["X-RateLimit-Reset"]) <= int(time.time()) + 1
        assert server.starts == []
        assert (server.throttled, server.throttled_by) == (1, {"global": 1})
        assert server.received[-1].status == 429

        window_end = server.received[0].at + 1.0
        await asyncio.sleep(max(0.0, window_end - time.monotonic()) + 0.02)
        status, headers, _ = await start(session, server)
        assert status == 200
        assert headers["X-RateLimit-Remaining"] == "4"


async def test_concurrent_burst_admits_exactly_the_limit(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(requests_per_window=10) as server:
        results = await asyncio.gather(*(start(session, server) for _ in range(25)))
        statuses = sorted(status for status, _, _ in results)
        assert statuses == [200] * 10 + [429] * 15
        assert len(server.starts) == 10
        assert server.throttled == 15


async def test_manual_refused_by_its_throttle_still_spends_a_global_hit(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(requests_per_window=5, manual_per_window=2) as server:
        for expected in ("1", "0"):
            status, headers, _ = await start(session, server, "flows/101/manual")
            assert status == 200
            assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == (
                "2",
                expected,
            )
        status, headers, _ = await start(session, server, "flows/101/manual")
        assert status == 429
        assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("2", "0")
        assert server.throttled_by == {"manual": 1}
        status, headers, _ = await get_flow(session, server)
        assert status == 200
        assert headers["X-RateLimit-Remaining"] == "1"  # 3 manual calls + this one
        assert (await get_flow(session, server))[0] == 200
        status, headers, _ = await start(session, server, "flows/101/manual")
        assert (status, headers["X-RateLimit-Limit"]) == (429, "5")  # now global refuses
        assert server.throttled_by == {"manual": 1, "global": 1}
        assert len(server.starts) == 2


async def test_starts_per_window_caps_start_and_manual_only(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(starts_per_window=2) as server:
        assert (await start(session, server))[0] == 200
        status, headers, _ = await start(session, server, "flows/101/manual")
        assert status == 200
        assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("2", "0")
        status, _, _ = await start(session, server)
        assert status == 429
        assert server.throttled_by == {"starts": 1}
        assert (await get_flow(session, server))[0] == 200


# --------------------------------------------------------------------------- faults


async def test_unavailable_before_is_not_processed_nor_counted(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.inject(Fault.UNAVAILABLE_BEFORE, times=2)
    for _ in range(2):
        status, headers, body = await start(session, fake)
        assert (status, body) == (503, {"message": "Service Unavailable"})
        assert "X-RateLimit-Remaining" not in headers
    assert fake.starts == []
    status, headers, _ = await start(session, fake)
    assert status == 200
    assert headers["X-RateLimit-Remaining"] == "239"


async def test_html_error_before(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    fake.inject(Fault.HTML_ERROR_BEFORE)
    status, headers, body = await start(session, fake)
    assert status == 502
    assert headers["Content-Type"].startswith("text/html")
    assert "<html>" in body
    assert fake.starts == []


async def test_drop_before_closes_without_response_and_starts_nothing(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.inject(Fault.DROP_BEFORE)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await start(session, fake)
    assert fake.starts == []
    assert fake.received[-1].status == 0
    assert (await start(session, fake))[0] == 200
    assert (await get_flow(session, fake))[1]["X-RateLimit-Remaining"] == "238"


async def test_aiohttp_retries_a_dropped_get_once(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.inject(Fault.DROP_BEFORE)
    assert (await get_flow(session, fake))[0] == 200
    assert [r.status for r in fake.received] == [0, 200]


async def test_server_error_after_has_started_the_flow(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.inject(Fault.SERVER_ERROR_AFTER)
    status, headers, body = await start(session, fake)
    assert (status, body) == (500, {"message": "Server Error"})
    assert headers["X-RateLimit-Remaining"] == "239"
    assert [run.run_id for run in fake.starts] == [500001]


async def test_drop_after_has_started_the_flow(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.inject(Fault.DROP_AFTER)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await start(session, fake)
    assert len(fake.starts) == 1
    assert fake.received[-1].status == 0


async def test_slow_after_makes_the_client_time_out_after_the_start(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.slow_seconds = 0.5
    fake.inject(Fault.SLOW_AFTER)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(start(session, fake), 0.2)
    assert len(fake.starts) == 1
    fake.slow_seconds = 0.1
    fake.inject(Fault.SLOW_AFTER)
    began = time.monotonic()
    status, _, _ = await start(session, fake)
    assert status == 200
    assert time.monotonic() - began >= 0.1
    assert len(fake.starts) == 2


async def test_faults_target_routes(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    fake.inject(Fault.UNAVAILABLE_BEFORE, route="manual")
    fake.inject(Fault.SERVER_ERROR_AFTER, route="login")
    assert (await start(session, fake))[0] == 200
    assert (await get_flow(session, fake))[0] == 200
    assert (await start(session, fake, "flows/101/manual"))[0] == 503
    assert (await start(session, fake, "flows/101/manual"))[0] == 200
    assert (await login(session, fake))[0] == 500
    assert fake.login_count == 1
    assert (await login(session, fake))[0] == 200


async def test_after_faults_wait_for_a_processed_request(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.inject(Fault.SERVER_ERROR_AFTER)
    status, _, _ = await call(session, "GET", f"{fake.core_url}/flows/101")  # no auth
    assert status == 401
    assert (await start(session, fake))[0] == 500
    assert len(fake.starts) == 1


def test_inject_validates_and_clear_faults() -> None:
    server = FakePatchworks()
    with pytest.raises(ValueError, match="route"):
        server.inject(Fault.DROP_AFTER, route="flows")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        server.inject(Fault.DROP_AFTER, times=0)
    server.inject(Fault.DROP_AFTER)
    server.clear_faults()
    assert server._injections == []
    assert Fault.DROP_BEFORE.acts_before
    assert not Fault.SLOW_AFTER.acts_before
    assert Fault("drop_after") is Fault.DROP_AFTER


# --------------------------------------------------------------------------- latency and records


async def test_latency_is_applied_and_assignable(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.latency = 0.15
    began = time.monotonic()
    assert (await get_flow(session, fake))[0] == 200
    assert time.monotonic() - began >= 0.15
    assert fake.received[-1].at >= began + 0.15
    fake.latency = (0.0, 0.01)
    assert fake.latency == (0.0, 0.01)
    with pytest.raises(ValueError, match="latency"):
        fake.latency = -1.0


def test_latency_jitter_is_reproducible_with_a_seed() -> None:
    first = FakePatchworks(latency=(0.05, 0.65), seed=7)
    second = FakePatchworks(latency=(0.05, 0.65), seed=7)
    draws = [first._sample_latency() for _ in range(5)]
    assert draws == [second._sample_latency() for _ in range(5)]
    assert all(0.05 <= d <= 0.65 for d in draws)


async def test_received_records_everything(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    await call(
        session,
        "GET",
        f"{fake.core_url}/flows/101?include=versions",
        headers={**key_headers(fake), "User-Agent": "patchworks-async/test"},
    )
    await start(session, fake)
    await call(session, "GET", f"{fake.core_url}/flows/101")
    first, second, third = fake.received
    assert isinstance(first, ReceivedRequest)
    assert (first.method, first.path, first.query) == (
        "GET",
        "/core/api/v1/flows/101",
        {"include": "versions"},
    )
    assert first.header("user-agent") == "patchworks-async/test"
    assert first.header("ACCEPT") == "application/json"
    assert first.header("X-Missing") is None
    assert (first.status, first.route, first.body) == (200, "core", b"")
    assert (second.route, second.status, second.json()) == (
        "start",
        200,
        {"payload": '{"order": 1}'},
    )
    assert third.status == 401
    assert first.at <= second.at <= third.at

    fake.reset_records()
    assert (fake.received, fake.starts, fake.throttled, fake.login_count) == ([], [], 0, 0)
    _, headers, _ = await get_flow(session, fake)
    assert headers["X-RateLimit-Remaining"] == "237"  # windows survive reset_records
    fake.reset_throttle()
    _, headers, _ = await get_flow(session, fake)
    assert headers["X-RateLimit-Remaining"] == "239"
