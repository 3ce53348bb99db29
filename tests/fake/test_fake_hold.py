"""Tests of ``FakePatchworks.hold``: requests and replies parked until the test lets them go.

Holds exist so that tests order events instead of racing sleeps, so these tests order
theirs the same way: every step waits on ``arrived``, ``drained`` or a reply, never on a
sleep. Requests go over real sockets with a plain ``aiohttp.ClientSession``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks, ReplyHold, fake_patchworks_process


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def fake() -> AsyncIterator[FakePatchworks]:
    async with FakePatchworks() as server:
        yield server


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    api_key: str,
    json_body: Any = None,
) -> tuple[int, Any]:
    """Send one authenticated request; return its status and JSON body."""
    headers = {"Authorization": api_key, "Accept": "application/json"}
    async with session.request(method, url, headers=headers, json=json_body) as reply:
        return reply.status, await reply.json(content_type=None)


def start_flow(
    session: aiohttp.ClientSession, fake: FakePatchworks
) -> asyncio.Task[tuple[int, Any]]:
    """Start flow 101 in a task of its own, so the test can go on while it is held."""
    url = f"{fake.start_url}/flows/101/start"
    return asyncio.create_task(send(session, "POST", url, fake.api_key, {"payload": "{}"}))


async def get_flow(session: aiohttp.ClientSession, fake: FakePatchworks) -> int:
    return (await send(session, "GET", f"{fake.core_url}/flows/101", fake.api_key))[0]


# --------------------------------------------------------------------------- phases


async def test_after_hold_records_the_start_before_the_reply_is_sent(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold()
    reply = start_flow(session, fake)
    await hold.arrived(1)
    assert [run.flow_id for run in fake.starts] == [101]
    assert [(r.route, r.status) for r in fake.received] == [("start", 200)]
    assert (hold.held, hold.total) == (1, 1)
    assert not reply.done()

    hold.release()
    status, body = await reply
    assert (status, body["flow_run_id"]) == (200, fake.starts[0].run_id)
    assert (hold.held, hold.total, hold.active) == (0, 1, False)


async def test_before_hold_processes_nothing_until_released(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold(when="before")
    reply = start_flow(session, fake)
    await hold.arrived(1)
    assert (fake.starts, fake.received, hold.held) == ([], [], 1)

    hold.release()
    assert (await reply)[0] == 200
    assert len(fake.starts) == 1
    assert [r.status for r in fake.received] == [200]


async def test_before_hold_arrives_when_released_for_the_throttle(
    session: aiohttp.ClientSession,
) -> None:
    """A request held before processing is counted by the throttle only once let go."""
    async with FakePatchworks(requests_per_window=1) as fake:
        hold = fake.hold(when="before")
        held = start_flow(session, fake)
        await hold.arrived(1)
        hold.release()  # ends the hold too, so the GET below passes freely
        assert (await held)[0] == 200
        assert await get_flow(session, fake) == 429


async def test_release_n_lets_the_oldest_go_and_holds_the_rest(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold()
    replies = []
    for count in (1, 2, 3):  # one at a time, so arrival order is known
        replies.append(start_flow(session, fake))
        await hold.arrived(count)

    hold.release(2)
    assert (hold.held, hold.active) == (1, True)
    first, second = await asyncio.gather(*replies[:2])
    assert [reply[1]["flow_run_id"] for reply in (first, second)] == [
        run.run_id for run in fake.starts[:2]
    ]
    assert not replies[2].done()

    hold.release()
    assert (await replies[2])[1]["flow_run_id"] == fake.starts[2].run_id


async def test_release_n_keeps_holding_later_requests(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold()
    first = start_flow(session, fake)
    await hold.arrived(1)
    hold.release(1)
    assert (await first)[0] == 200
    second = start_flow(session, fake)
    await hold.arrived(2)
    assert (hold.held, hold.total) == (1, 2)
    hold.release()
    assert (await second)[0] == 200


async def test_release_n_with_fewer_held_lets_all_go(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold()
    reply = start_flow(session, fake)
    await hold.arrived(1)
    hold.release(5)
    assert (await reply)[0] == 200
    assert (hold.held, hold.active) == (0, True)


# --------------------------------------------------------------------------- which requests


async def test_a_start_hold_does_not_hold_core_requests(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold(route="start")
    held = start_flow(session, fake)
    await hold.arrived(1)
    assert await get_flow(session, fake) == 200
    assert (hold.held, hold.total) == (1, 1)
    hold.release()
    assert (await held)[0] == 200


async def test_route_none_holds_every_api_route(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold(route=None)
    flow = asyncio.create_task(get_flow(session, fake))
    start = start_flow(session, fake)
    await hold.arrived(2)
    hold.release()
    assert (await flow, (await start)[0]) == (200, 200)


async def test_the_first_active_hold_in_creation_order_catches(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    first = fake.hold(route=None)
    second = fake.hold(route="start")
    caught_by_first = start_flow(session, fake)
    await first.arrived(1)
    assert second.total == 0
    first.release()
    assert (await caught_by_first)[0] == 200

    caught_by_second = start_flow(session, fake)
    await second.arrived(1)
    assert (first.total, second.held) == (1, 1)
    second.release()
    assert (await caught_by_second)[0] == 200


async def test_admin_routes_are_never_held(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold(route=None)
    async with session.get(f"{fake.base_url}/_fake/state") as reply:
        assert reply.status == 200
    assert hold.total == 0


async def test_a_released_hold_lets_later_requests_pass(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold()
    hold.release()
    assert (await start_flow(session, fake))[0] == 200
    assert hold.total == 0


def test_hold_validates_route_phase_and_count() -> None:
    server = FakePatchworks()
    with pytest.raises(ValueError, match="route"):
        server.hold(route="flows")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="when"):
        server.hold(when="during")  # type: ignore[arg-type]
    hold = server.hold()
    assert isinstance(hold, ReplyHold)
    assert (hold.route, hold.when, hold.held, hold.total) == ("start", "after", 0, 0)
    with pytest.raises(ValueError, match="count"):
        hold.release(0)


# --------------------------------------------------------------------------- waiting


async def test_arrived_counts_requests_already_released(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold()
    reply = start_flow(session, fake)
    await hold.arrived(1)
    hold.release(1)
    await reply
    await hold.arrived(1, timeout=1.0)  # returns at once: total, not held, is counted
    assert (hold.held, hold.total) == (0, 1)


async def test_arrived_times_out_with_a_clear_message(fake: FakePatchworks) -> None:
    hold = fake.hold()
    with pytest.raises(TimeoutError, match=r"waited 0\.01 s for 1 requests to arrive"):
        await hold.arrived(1, timeout=0.01)


async def test_arrived_on_an_ended_hold_fails_at_once(fake: FakePatchworks) -> None:
    hold = fake.hold()
    hold.release()
    with pytest.raises(RuntimeError, match="ended"):
        await hold.arrived(1)


# --------------------------------------------------------------------------- clients and close


@pytest.mark.parametrize(("when", "starts"), [("after", 1), ("before", 0)])
async def test_a_client_that_gives_up_leaves_the_hold(
    fake: FakePatchworks, session: aiohttp.ClientSession, when: Any, starts: int
) -> None:
    """Its handler is cancelled and leaves the held set; a start already made stays."""
    hold = fake.hold(when=when)
    reply = start_flow(session, fake)
    await hold.arrived(1)
    reply.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reply
    await hold.drained(timeout=5.0)
    assert (hold.held, hold.total, hold.active) == (0, 1, True)
    assert len(fake.starts) == starts


async def test_a_client_timeout_leaves_the_hold(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    hold = fake.hold()

    async def give_up_once_held() -> None:
        async with asyncio.timeout(30.0) as deadline:
            reply = start_flow(session, fake)
            await hold.arrived(1)
            deadline.reschedule(asyncio.get_running_loop().time())  # the client gives up now
            await reply

    with pytest.raises(TimeoutError):
        await give_up_once_held()
    await hold.drained(timeout=5.0)
    assert (hold.held, len(fake.starts)) == (0, 1)


async def test_close_with_held_requests_is_prompt_and_sends_no_reply(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks() as server:
        after = server.hold(route="start")
        before = server.hold(route="core", when="before")
        replies = [start_flow(session, server) for _ in range(3)]
        flow = asyncio.create_task(get_flow(session, server))
        await after.arrived(3)
        await before.arrived(1)
        began = time.monotonic()
    # Well under the 0.25 s aiohttp waits before cancelling handlers: the holds were cut short.
    assert time.monotonic() - began < 0.2
    outcomes = await asyncio.gather(*replies, flow, return_exceptions=True)
    assert all(isinstance(outcome, aiohttp.ClientError) for outcome in outcomes), outcomes
    assert (after.held, before.held, after.active, before.active) == (0, 0, False, False)


async def test_closing_fails_a_pending_arrived() -> None:
    server = FakePatchworks()
    await server.start()
    hold = server.hold()
    waiting = asyncio.create_task(hold.arrived(1))
    await server.close()
    with pytest.raises(RuntimeError, match="ended"):
        await waiting


# --------------------------------------------------------------------------- admin routes


async def test_admin_hold_routes_in_process(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    root = f"{fake.base_url}/_fake/hold"
    async with session.post(root, json={"route": "start", "when": "after"}) as created:
        assert await created.json() == {"hold": 1}
    reply = start_flow(session, fake)
    async with session.get(f"{root}/1", params={"at_least": "1", "timeout": "5"}) as waited:
        assert (waited.status, await waited.json()) == (200, {"held": 1, "total": 1})
    async with session.post(f"{root}/1/release", json={"count": None}) as released:
        assert await released.json() == {"held": 0, "total": 1}
    assert (await reply)[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "hold", {"json": {"route": "flows"}}, 400),
        ("POST", "hold", {"json": {"when": "during"}}, 400),
        ("POST", "hold", {"data": b"[1]"}, 400),
        ("GET", "hold/9", {}, 404),
        ("GET", "hold/x", {}, 404),
        ("POST", "hold/9/release", {"json": {}}, 404),
        ("GET", "hold", {}, 405),
    ],
)
async def test_admin_hold_routes_refuse_bad_requests_in_json(
    fake: FakePatchworks,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    async with session.request(method, f"{fake.base_url}/_fake/{path}", **kwargs) as reply:
        assert reply.status == status
        assert "message" in await reply.json()


@pytest.mark.parametrize(
    ("query", "body", "status"),
    [
        ({"at_least": "x"}, None, 400),
        ({"timeout": "0"}, None, 400),
        ({"at_least": "1", "timeout": "0.01"}, None, 408),
        (None, {"count": 0}, 400),
        (None, {"count": "2"}, 400),
    ],
)
async def test_admin_hold_wait_and_release_check_their_arguments(
    fake: FakePatchworks,
    session: aiohttp.ClientSession,
    query: dict[str, str] | None,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    fake.hold()
    url = f"{fake.base_url}/_fake/hold/1"
    if body is None:
        request = session.get(url, params=query)
    else:
        request = session.post(f"{url}/release", json=body)
    async with request as reply:
        assert reply.status == status
        assert "message" in await reply.json()


async def test_remote_fake_holds_a_reply_after_recording_the_start(
    session: aiohttp.ClientSession,
) -> None:
    async with fake_patchworks_process() as remote:
        hold_id = await remote.hold()
        url = f"{remote.urls['start_url']}/flows/101/start"
        reply = asyncio.create_task(send(session, "POST", url, remote.api_key, {"payload": "{}"}))
        assert await remote.wait_held(hold_id, 1) == 1
        assert len((await remote.state())["starts"]) == 1
        assert not reply.done()
        await remote.release(hold_id)
        assert (await reply)[0] == 200


async def test_remote_fake_raises_what_the_hold_would() -> None:
    async with fake_patchworks_process() as remote:
        hold_id = await remote.hold(route=None, when="before")
        with pytest.raises(TimeoutError, match="1 requests to arrive"):
            await remote.wait_held(hold_id, 1, timeout=0.01)
        with pytest.raises(ValueError, match="No hold"):
            await remote.release(hold_id + 1)
        with pytest.raises(ValueError, match="route"):
            await remote.hold(route="flows")  # type: ignore[arg-type]
        await remote.release(hold_id)
        with pytest.raises(RuntimeError, match="ended"):
            await remote.wait_held(hold_id, 1)
