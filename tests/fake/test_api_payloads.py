"""The fake's payloads: one metadata record per start, and the bytes exactly as they were sent."""

from __future__ import annotations

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks

from .calls import ISO, api, list_ids, start, started_run_id


async def download(
    session: aiohttp.ClientSession, fake: FakePatchworks, metadata_id: int
) -> tuple[int, str, bytes]:
    """``GET /payload-metadata/{id}/download``: status, content type, body."""
    url = f"{fake.core_url}/payload-metadata/{metadata_id}/download"
    async with session.get(url, headers={"Authorization": fake.api_key}) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def test_each_start_gets_a_metadata_record(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    run_id = await started_run_id(session, fake, "flows/101/manual", payload="<é/>")
    status, reply = await api(session, fake, "GET", "/payload-metadata")
    assert status == 200
    (record,) = reply["data"]
    assert record == {
        "id": fake.starts[0].payload_metadata_id,
        "flow_version_id": 9001,
        "flow_step_id": None,
        "flow_run_id": run_id,
        "payload_store_reference": record["payload_store_reference"],
        "payload_size": len("<é/>".encode()),
        "dropped": False,
        "created_at": record["created_at"],
    }
    assert ISO.fullmatch(record["created_at"])


async def test_a_queued_start_names_the_run_it_will_become(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(queue_delay=3600) as fake:
        run_id = await started_run_id(session, fake)
        _, reply = await api(session, fake, "GET", "/payload-metadata")
        assert reply["data"][0]["flow_run_id"] == run_id
        assert (await api(session, fake, "GET", f"/flow-runs/{run_id}"))[0] == 404


async def test_a_standard_payload_downloads_as_its_bytes(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    await started_run_id(session, fake, payload="id,qty\n1,é\n")
    status, content_type, body = await download(session, fake, 1)
    assert (status, content_type, body) == (
        200,
        "application/octet-stream",
        "id,qty\n1,é\n".encode(),
    )


async def test_a_raw_payload_downloads_as_json_byte_for_byte(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    sent = b'{"b": 2,   "a": [1]}'
    await start(session, fake, "flows/101/start/raw", data=sent)
    assert await download(session, fake, 1) == (200, "application/json", sent)


async def test_an_empty_start_downloads_as_nothing(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    await start(session, fake, "flows/101/manual", {})
    status, _, body = await download(session, fake, 1)
    assert (status, body) == (200, b"")
    assert (await api(session, fake, "GET", "/payload-metadata"))[1]["data"][0]["payload_size"] == 0


async def test_downloading_an_unknown_payload_is_404(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "GET", "/payload-metadata/5/download")
    assert (status, reply) == (404, {"message": "No query results for model [PayloadMetadata] 5"})


async def test_payload_metadata_filters(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    first = await started_run_id(session, fake, "flows/101/manual")
    await started_run_id(session, fake, "flows/101/manual")
    assert await list_ids(session, fake, f"/payload-metadata?filter[flow_run_id]={first}") == [1]
    assert await list_ids(session, fake, "/payload-metadata?filter[id]=2") == [2]
    assert await list_ids(session, fake, "/payload-metadata?filter[flow_step_id]=1") == []
    _, logs = await api(session, fake, "GET", f"/flow-runs/{first}/flow-run-logs")
    received = next(log for log in logs["data"] if log["payload_metadata_id"] is not None)
    path = f"/payload-metadata?filter[flow_log_id]={received['id']}"
    assert await list_ids(session, fake, path) == [1]
    assert (await api(session, fake, "GET", "/payload-metadata?filter[size]=1"))[0] == 400


async def test_payload_metadata_sorts_by_id_and_takes_sparse_fields(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    for _ in range(2):
        await started_run_id(session, fake, "flows/101/manual")
    assert await list_ids(session, fake, "/payload-metadata?sort=-id") == [2, 1]
    _, reply = await api(session, fake, "GET", "/payload-metadata?fields[payload_metadata]=dropped")
    assert reply["data"] == [{"id": 1, "dropped": False}, {"id": 2, "dropped": False}]


@pytest.mark.parametrize("sort", ["payload_size", "created_at"])
async def test_payload_metadata_sorts_only_by_id(
    fake: FakePatchworks, session: aiohttp.ClientSession, sort: str
) -> None:
    assert (await api(session, fake, "GET", f"/payload-metadata?sort={sort}"))[0] == 400
