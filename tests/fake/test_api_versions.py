"""The fake's flow versions (and deploying them) and its virtual environments."""

from __future__ import annotations

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks

from .calls import ISO, api, list_ids, start

# --------------------------------------------------------------------------- versions


async def test_versions_list_shape(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    status, reply = await api(session, fake, "GET", "/flows/101/versions")
    assert status == 200
    first, second = reply["data"]
    assert first == {
        "id": 9001,
        "flow_id": 101,
        "version": 1,
        "name": None,
        "status": "deployed",
        "deployed_at": first["deployed_at"],
        "created_at": first["created_at"],
        "updated_at": first["updated_at"],
    }
    assert ISO.fullmatch(first["deployed_at"])
    assert (second["id"], second["status"], second["deployed_at"]) == (9002, "draft", None)
    assert reply["meta"]["total"] == 2


async def test_versions_of_an_unknown_flow_are_404(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "GET", "/flows/999/versions")
    assert (status, reply) == (404, {"message": "No query results for model [Flow] 999"})


async def test_a_new_version_gets_the_next_number(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "POST", "/flows/101/versions", {"name": "Next"})
    assert status == 201
    version = reply["data"]
    assert (version["flow_id"], version["version"], version["name"]) == (101, 3, "Next")
    assert (version["status"], version["deployed_at"]) == ("draft", None)
    assert fake.versions[version["id"]] == version


async def test_a_new_version_needs_no_body(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "POST", "/flows/101/versions")
    assert (status, reply["data"]["version"], reply["data"]["name"]) == (201, 3, None)


async def test_get_one_version(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    status, reply = await api(session, fake, "GET", "/flows/101/versions/9002")
    assert (status, reply["data"]) == (200, fake.versions[9002])


async def test_a_version_of_another_flow_is_404(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.add_flow("Other", versions=(7001,))
    status, reply = await api(session, fake, "GET", "/flows/101/versions/7001")
    assert (status, reply) == (404, {"message": "No query results for model [FlowVersion] 7001"})


async def test_deploying_a_version_moves_the_deployment(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = {"deployed_at": "2026-02-03T04:05:06Z"}
    status, reply = await api(session, fake, "PUT", "/flows/101/versions/9002", body)
    assert status == 200
    assert (reply["data"]["deployed_at"], reply["data"]["status"]) == (
        "2026-02-03T04:05:06.000000Z",
        "deployed",
    )
    assert fake.flows[101]["deployed_version_id"] == 9002
    assert (fake.versions[9001]["deployed_at"], fake.versions[9001]["status"]) == (None, "draft")
    await start(session, fake, "flows/101/manual", {"payload": "x"})
    assert fake.starts[0].version_id == 9002  # a start without a version runs it


async def test_deployed_at_takes_unix_milliseconds(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = {"deployed_at": 1_767_225_600_000}
    _, reply = await api(session, fake, "PUT", "/flows/101/versions/9002", body)
    assert reply["data"]["deployed_at"] == "2026-01-01T00:00:00.000000Z"


async def test_deployed_at_null_undeploys(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    _, reply = await api(session, fake, "PUT", "/flows/101/versions/9001", {"deployed_at": None})
    assert (reply["data"]["deployed_at"], reply["data"]["status"]) == (None, "draft")
    assert fake.flows[101]["deployed_version_id"] is None
    status, reply = await start(session, fake, body={"payload": "x"})
    assert (status, reply["errors"]) == (422, {"version_id": ["The flow has no deployed version."]})


async def test_a_bad_deployed_at_is_422(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = {"deployed_at": "soon"}
    status, reply = await api(session, fake, "PUT", "/flows/101/versions/9002", body)
    assert (status, reply["errors"]) == (
        422,
        {"deployed_at": ["The deployed at field must be a valid date."]},
    )
    assert fake.flows[101]["deployed_version_id"] == 9001


async def test_an_update_without_deployed_at_leaves_the_deployment(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    _, reply = await api(session, fake, "PUT", "/flows/101/versions/9001", {"name": "Live"})
    assert (reply["data"]["name"], reply["data"]["status"]) == ("Live", "deployed")
    assert fake.flows[101]["deployed_version_id"] == 9001


async def test_deleting_a_version(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    status, reply = await api(session, fake, "DELETE", "/flows/101/versions/9002")
    assert (status, reply) == (200, {"message": "Flow version deleted."})
    assert await list_ids(session, fake, "/flows/101/versions") == [9001]
    assert (await api(session, fake, "DELETE", "/flows/101/versions/9002"))[0] == 404


async def test_deleting_the_deployed_version_is_409(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "DELETE", "/flows/101/versions/9001")
    assert status == 409
    assert reply == {"message": "The deployed version cannot be deleted: undeploy it first."}
    assert 9001 in fake.versions


@pytest.mark.parametrize("sort", ["-version", "-id"])
async def test_versions_sort(
    fake: FakePatchworks, session: aiohttp.ClientSession, sort: str
) -> None:
    assert await list_ids(session, fake, f"/flows/101/versions?sort={sort}") == [9002, 9001]


# --------------------------------------------------------------------------- virtual environments


async def test_two_virtual_environments_are_seeded(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    path = "/flow-version-deployments/virtual-environments"
    status, reply = await api(session, fake, "GET", path)
    assert status == 200
    assert [(env["id"], env["name"]) for env in reply["data"]] == [
        (1, "Staging"),
        (2, "Development"),
    ]
    assert all(set(env) == {"id", "name", "created_at"} for env in reply["data"])
    assert reply["meta"]["total"] == 2


async def test_add_virtual_environment(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    added = fake.add_virtual_environment("Production")
    assert added == {"id": 3, "name": "Production", "created_at": added["created_at"]}
    path = "/flow-version-deployments/virtual-environments"
    assert await list_ids(session, fake, path) == [1, 2, 3]
    with pytest.raises(ValueError, match="already used"):
        fake.add_virtual_environment("Clash", id=3)
