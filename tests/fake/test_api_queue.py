"""The fake's run queue: ``/start`` queues, ``/manual`` and retries do not; ``/scheduled-flows``.

Time is driven with ``queue_delay``: 0 picks a start up on the next read, a large value
keeps it queued for the whole test. No test sleeps more than a few hundredths of a second.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks
from patchworks_async.testing._lifecycle import StartOrder
from patchworks_async.testing._resources import CoreRequest
from patchworks_async.testing._store import Store

from .calls import ISO, api, list_ids, start, started_run_id

FOREVER = 3600.0
"""A queue delay no test outlives."""


async def test_a_queued_start_is_404_until_picked_up(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        run_id = await started_run_id(session, fake)
        status, reply = await api(session, fake, "GET", f"/flow-runs/{run_id}")
        assert (status, reply) == (
            404,
            {"message": f"No query results for model [FlowRun] {run_id}"},
        )
        assert run_id not in fake.flow_runs


async def test_a_start_is_a_run_once_picked_up(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=0) as fake:
        run_id = await started_run_id(session, fake)
        status, reply = await api(session, fake, "GET", f"/flow-runs/{run_id}")
        assert (status, reply["data"]["status"]) == (200, 1)


async def test_a_start_is_picked_up_after_queue_delay(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=0.02) as fake:
        run_id = await started_run_id(session, fake)
        await asyncio.sleep(0.03)
        assert (await api(session, fake, "GET", f"/flow-runs/{run_id}"))[0] == 200


async def test_a_manual_start_bypasses_the_queue(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        run_id = await started_run_id(session, fake, "flows/101/manual")
        assert (await api(session, fake, "GET", f"/flow-runs/{run_id}"))[0] == 200
        assert fake.scheduled_flows == {}


async def test_a_run_starts_when_picked_up_and_then_runs_for_run_duration(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(queue_delay=0, run_duration=0, run_outcome=3) as fake:
        run_id = await started_run_id(session, fake)
        _, reply = await api(session, fake, "GET", f"/flow-runs/{run_id}")
        assert (reply["data"]["status"], reply["data"]["trigger"]) == (3, "API")


async def test_the_queue_lists_starts_not_picked_up(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        await started_run_id(session, fake)
        status, reply = await api(session, fake, "GET", "/scheduled-flows")
        assert status == 200
        (item,) = reply["data"]
        assert item == {
            "id": 1,
            "flow_id": 101,
            "flow_version_id": 9001,
            "status": "pending",
            "payload_metadata_id": fake.starts[0].payload_metadata_id,
            "created_at": item["created_at"],
        }
        assert ISO.fullmatch(item["created_at"])
        assert reply["meta"]["total"] == 1


async def test_picked_up_starts_leave_the_queue(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=0) as fake:
        await started_run_id(session, fake)
        assert await list_ids(session, fake, "/scheduled-flows") == []


async def test_the_queue_filters_by_status_and_version(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        await started_run_id(session, fake)
        await started_run_id(session, fake, "flows/101/start/9002")
        assert await list_ids(session, fake, "/scheduled-flows?filter[flow_version_id]=9002") == [2]
        assert await list_ids(session, fake, "/scheduled-flows?filter[status]=pending") == [1, 2]
        assert await list_ids(session, fake, "/scheduled-flows?filter[status]=done") == []
        status, _ = await api(session, fake, "GET", "/scheduled-flows?filter[flow_id]=101")
        assert status == 400  # not a documented filter


async def test_the_queue_includes_flow_version_and_payload(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        await started_run_id(session, fake)
        path = "/scheduled-flows?include=flow,flowVersion,payloadMetadata"
        _, reply = await api(session, fake, "GET", path)
        (item,) = reply["data"]
        assert item["flow"]["name"] == "Orders to ERP"
        assert item["flow_version"]["id"] == 9001
        assert item["payload_metadata"]["flow_run_id"] == fake.starts[0].run_id


async def test_the_queue_has_sparse_fields(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        await started_run_id(session, fake)
        _, reply = await api(
            session, fake, "GET", "/scheduled-flows?fields[scheduled_flows]=status"
        )
        assert reply["data"] == [{"id": 1, "status": "pending"}]


async def test_deleting_a_scheduled_flow_means_it_never_runs(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(queue_delay=30.0) as fake:
        run_id = await started_run_id(session, fake)
        status, reply = await api(session, fake, "DELETE", "/scheduled-flows/1")
        assert (status, reply) == (200, {"message": "Scheduled flow deleted."})
        fake.advance(31.0)  # past the time it would have been picked up
        assert (await api(session, fake, "GET", f"/flow-runs/{run_id}"))[0] == 404
        assert run_id not in fake.flow_runs
        assert await list_ids(session, fake, "/scheduled-flows") == []


def test_a_deleted_item_is_not_picked_up_when_due() -> None:
    """The same, on a driven clock: the item's pickup finds nothing when its time comes."""
    now = [100.0]
    store = Store(queue_delay=5.0, mono=lambda: now[0])
    store.add_flow("F", id=1, versions=(10,), deployed_version=10)
    order = StartOrder(flow_id=1, version_id=10, payload=b"x", raw=False, manual=False, at=100.0)
    started = store.start(order)
    deleted = store.route("delete_scheduled_flow", CoreRequest(params={"item_id": "1"}))
    assert deleted.status == 200
    now[0] = 200.0
    assert started.run_id not in store.flow_runs
    assert store.get_flow_run(CoreRequest(params={"run_id": str(started.run_id)})).status == 404


async def test_deleting_an_unknown_scheduled_flow_is_404(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "DELETE", "/scheduled-flows/7")
    assert (status, reply) == (404, {"message": "No query results for model [ScheduledFlow] 7"})


async def test_queue_delay_is_settable_for_later_starts(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        queued = await started_run_id(session, fake)
        fake.queue_delay = 0
        assert fake.queue_delay == 0.0
        picked = await started_run_id(session, fake)
        assert (await api(session, fake, "GET", f"/flow-runs/{picked}"))[0] == 200
        assert (await api(session, fake, "GET", f"/flow-runs/{queued}"))[0] == 404


@pytest.mark.parametrize("value", [-1.0, float("inf"), float("nan")])
def test_queue_delay_is_validated(value: float) -> None:
    with pytest.raises(ValueError, match="queue_delay"):
        FakePatchworks(queue_delay=value)
    with pytest.raises(ValueError, match="queue_delay"):
        FakePatchworks().queue_delay = value


async def test_a_retry_bypasses_the_queue(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        original = await started_run_id(session, fake, "flows/101/manual")
        status, reply = await api(session, fake, "POST", f"/flow-runs/{original}/retry")
        assert status == 200
        assert (await api(session, fake, "GET", f"/flow-runs/{reply['flow_run_id']}"))[0] == 200


async def test_queued_start_of_raw_variant_queues_too(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=FOREVER) as fake:
        status, _ = await start(session, fake, "flows/101/start/raw", data=b"{}")
        assert status == 200
        assert await list_ids(session, fake, "/scheduled-flows") == [1]
