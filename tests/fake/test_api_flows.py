"""The fake's flows as PATCHWORKS_API.md documents them: filters, labels, includes, sparse
fields, page sizes, export bundles and import, and the shape of write replies."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks

from .calls import ISO, api, list_ids, start

# --------------------------------------------------------------------------- filters and labels


@pytest.mark.parametrize(
    "query",
    [
        "filter[name]=orders",
        "filter[marketplace_app_id]=1",
        "filter[blueprint_id]=1",
        "filter[blueprint_version_number]=1",
        "filter[labelled]=1",
        "filter[enabled]=true",
        "filter[deployed]=true",
        "filter[id]=101",
        "filter[versions]=9001",
        "filter[versions.id]=9001",
    ],
)
async def test_every_documented_flow_filter_is_accepted(
    fake: FakePatchworks, session: aiohttp.ClientSession, query: str
) -> None:
    assert (await api(session, fake, "GET", f"/flows?{query}"))[0] == 200


async def test_labelled_filters_by_label_id(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    erp = fake.add_flow("ERP", labels=["Nightly", "ERP"])
    shop = fake.add_flow("Shop", labels=["Nightly"])
    nightly_id = erp["labels"][0]["id"]
    erp_id = erp["labels"][1]["id"]
    assert shop["labels"] == [{"id": nightly_id, "name": "Nightly"}]  # one id per name
    assert await list_ids(session, fake, f"/flows?filter[labelled]={nightly_id}") == [
        erp["id"],
        shop["id"],
    ]
    assert await list_ids(session, fake, f"/flows?filter[labelled]={erp_id}") == [erp["id"]]


async def test_labelled_takes_an_id_not_a_flag(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "GET", "/flows?filter[labelled]=true")
    assert (status, reply["errors"]) == (
        422,
        {"filter.labelled": ["The filter.labelled field must be an integer."]},
    )


def test_labels_may_be_seeded_with_their_ids() -> None:
    fake = FakePatchworks()
    flow = fake.add_flow("F", labels=[{"id": 40, "name": "Ops"}, "Ops"])
    assert flow["labels"] == [{"id": 40, "name": "Ops"}, {"id": 40, "name": "Ops"}]
    assert fake.add_flow("G", labels=["New"])["labels"] == [{"id": 41, "name": "New"}]
    with pytest.raises(ValueError, match="already used"):
        fake.add_flow("H", labels=[{"id": 40, "name": "Other"}])
    with pytest.raises(ValueError, match="single string"):
        fake.add_flow("I", labels="Ops")


async def test_flows_serve_their_labels(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    flow = fake.add_flow("ERP", labels=["Nightly"])
    _, reply = await api(session, fake, "GET", f"/flows/{flow['id']}")
    assert reply["data"]["labels"] == [{"id": 1, "name": "Nightly"}]


async def test_blueprint_filters_match_exactly(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    flow = fake.add_flow("From blueprint", blueprint_id=5, blueprint_version_number=2)
    assert await list_ids(session, fake, "/flows?filter[blueprint_id]=5") == [flow["id"]]
    path = "/flows?filter[blueprint_version_number]=2,3"
    assert await list_ids(session, fake, path) == [flow["id"]]


async def test_the_versions_filter_takes_version_ids(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    other = fake.add_flow("Other", versions=(7001,))
    assert await list_ids(session, fake, "/flows?filter[versions]=7001") == [other["id"]]


# --------------------------------------------------------------------------- includes


@pytest.mark.parametrize(
    "include",
    [
        "latestVersion",
        "deployedVersion",
        "currentVersion",
        "versions",
        "labels",
        "webhooks",
        "callbacks",
        "versionsCount",
        "versions_count",
        "labelsExists",
        "webhooks_count",
        "callbacksExists",
    ],
)
async def test_every_documented_flow_include_is_accepted(
    fake: FakePatchworks, session: aiohttp.ClientSession, include: str
) -> None:
    assert (await api(session, fake, "GET", f"/flows?include={include}"))[0] == 200
    assert (await api(session, fake, "GET", f"/flows/101?include={include}"))[0] == 200


async def test_count_and_exists_includes(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    path = "/flows/101?include=versionsCount,labels_count,versionsExists,webhooksExists"
    _, reply = await api(session, fake, "GET", path)
    data = reply["data"]
    assert (data["versions_count"], data["labels_count"]) == (2, 0)
    assert (data["versions_exists"], data["webhooks_exists"]) == (True, False)


async def test_current_version_webhooks_and_callbacks(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    _, reply = await api(
        session, fake, "GET", "/flows/101?include=currentVersion,webhooks,callbacks"
    )
    data = reply["data"]
    assert data["current_version"]["id"] == 9002  # the newest version
    assert (data["webhooks"], data["callbacks"]) == ([], [])


@pytest.mark.parametrize("include", ["ownerCount", "versionsTotal", "flowRuns"])
async def test_includes_beyond_the_documented_patterns_are_400(
    fake: FakePatchworks, session: aiohttp.ClientSession, include: str
) -> None:
    assert (await api(session, fake, "GET", f"/flows?include={include}"))[0] == 400


# --------------------------------------------------------------------------- sparse fields, pages


async def test_sparse_flow_fields_lack_even_the_name(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    _, reply = await api(session, fake, "GET", "/flows?fields[flows]=id,enabled_at")
    assert reply["data"] == [{"id": 101, "enabled_at": fake.flows[101]["enabled_at"]}]


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/flows", "fields[flows]=name"),
        ("/flow-runs", "fields[flow_runs]=status"),
        ("/flow-runs/{run}/flow-run-logs", "fields[flow_run_logs]=log_level"),
        ("/payload-metadata", "fields[payload_metadata]=payload_size"),
        ("/scheduled-flows", "fields[scheduled_flows]=status"),
        ("/flows/101/versions", "fields[flow_versions]=version"),
        ("/flow-version-deployments/virtual-environments", "fields[virtual_environments]=name"),
    ],
)
async def test_sparse_fields_work_on_every_list(
    session: aiohttp.ClientSession, path: str, fields: str
) -> None:
    async with FakePatchworks(queue_delay=3600) as fake:
        _, reply = await start(session, fake, "flows/101/manual", {"payload": "x"})
        await start(session, fake, body={"payload": "x"})  # one queued start too
        url = path.format(run=reply["flow_run_id"])
        status, body = await api(session, fake, "GET", f"{url}?{fields}")
        assert status == 200
        kept = fields.split("=")[1]
        assert body["data"]
        assert all(set(item) == {"id", kept} for item in body["data"])


@pytest.mark.parametrize("path", ["/flows", "/flow-runs", "/payload-metadata"])
async def test_per_page_over_100_is_capped(
    fake: FakePatchworks, session: aiohttp.ClientSession, path: str
) -> None:
    status, reply = await api(session, fake, "GET", f"{path}?per_page=250")
    assert (status, reply["meta"]["per_page"]) == (200, 100)


async def test_a_capped_page_holds_100(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.add_flows(150)
    _, reply = await api(session, fake, "GET", "/flows?per_page=200")
    assert (len(reply["data"]), reply["meta"]["last_page"], reply["meta"]["to"]) == (100, 2, 100)


# --------------------------------------------------------------------------- export and import


async def test_export_answers_the_bundle_itself(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, bundle = await api(session, fake, "POST", "/flows/export", {"flow_id": 101})
    assert status == 200
    assert bundle == {
        "metadata": {
            "company_name": bundle["metadata"]["company_name"],
            "flow_name": "Orders to ERP",
            "exported_at": bundle["metadata"]["exported_at"],
        },
        "flow": {
            "name": "Orders to ERP",
            "description": "Demo flow",
            "is_enabled": True,
            "priority": None,
            "versions": [
                {"id": 9001, "version": 1, "steps": [], "schedules": []},
                {"id": 9002, "version": 2, "steps": [], "schedules": []},
            ],
        },
        "systems": [],
    }
    assert isinstance(bundle["metadata"]["company_name"], str)
    assert ISO.fullmatch(bundle["metadata"]["exported_at"])


async def test_export_is_bare_even_when_writes_are_wrapped(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    assert fake.wrap_writes_in_data
    _, bundle = await api(session, fake, "POST", "/flows/export", {"flow_id": 101})
    assert "data" not in bundle


async def test_import_creates_a_flow_named_after_the_bundle(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    bundle = {
        "metadata": {"company_name": "Acme", "flow_name": "X", "exported_at": "2026-01-01"},
        "flow": {
            "name": "Imported orders",
            "description": "From Acme",
            "is_enabled": True,
            "priority": 3,
            "versions": [{"version": 1, "steps": []}, {"version": 4, "name": "Hotfix"}],
        },
        "systems": [],
        "as_marketplace": True,
    }
    status, reply = await api(session, fake, "POST", "/flows/import", bundle)
    assert status == 201
    flow = reply["data"]
    assert (flow["name"], flow["description"], flow["priority"]) == (
        "Imported orders",
        "From Acme",
        3,
    )
    assert (flow["enabled_at"], flow["deployed_version_id"]) == (None, None)
    versions = [v for v in fake.versions.values() if v["flow_id"] == flow["id"]]
    assert [(v["version"], v["name"]) for v in versions] == [(1, None), (2, "Hotfix")]


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"flow": {"versions": []}}, {"flow.name": ["The flow.name field is required."]}),
        ({"systems": "none"}, {"systems": ["The systems field must be an array."]}),
        (
            {"as_marketplace": "maybe"},
            {"as_marketplace": ["The as marketplace field must be true or false."]},
        ),
        (
            {"flow": {"name": "x", "versions": "v1"}},
            {"flow.versions": ["The flow.versions field must be an array."]},
        ),
    ],
)
async def test_import_validates_the_bundle(
    fake: FakePatchworks,
    session: aiohttp.ClientSession,
    change: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    bundle = {"metadata": {}, "flow": {"name": "x"}, **change}
    status, reply = await api(session, fake, "POST", "/flows/import", bundle)
    assert (status, reply["errors"]) == (422, errors)
    assert list(fake.flows) == [101]


async def test_an_export_imports_as_is(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    _, bundle = await api(session, fake, "POST", "/flows/export", {"flow_id": 101})
    status, reply = await api(session, fake, "POST", "/flows/import", bundle)
    assert (status, reply["data"]["name"]) == (201, "Orders to ERP")


# --------------------------------------------------------------------------- write replies


WRITES: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/flows", {"flow": {"name": "New"}}, 201),
    ("POST", "/flows/import", {"metadata": {}, "flow": {"name": "Imported"}}, 201),
    ("POST", "/flows/101/duplicate", {"flow_version_id": 9001}, 201),
    ("POST", "/flows/101/versions", {"name": "Draft"}, 201),
    ("PUT", "/flows/101/versions/9002", {"name": "Renamed"}, 200),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), WRITES)
async def test_write_replies_are_wrapped_in_data_by_default(
    fake: FakePatchworks,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, Any],
    expected: int,
) -> None:
    status, reply = await api(session, fake, method, path, body)
    assert (status, list(reply)) == (expected, ["data"])
    assert isinstance(reply["data"]["id"], int)


@pytest.mark.parametrize(("method", "path", "body", "expected"), WRITES)
async def test_write_replies_are_bare_without_wrap_writes_in_data(
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, Any],
    expected: int,
) -> None:
    async with FakePatchworks(wrap_writes_in_data=False) as fake:
        status, reply = await api(session, fake, method, path, body)
        assert status == expected
        assert "data" not in reply
        assert isinstance(reply["id"], int)


def test_wrap_writes_in_data_is_settable_and_validated() -> None:
    fake = FakePatchworks()
    fake.wrap_writes_in_data = False
    assert fake.wrap_writes_in_data is False
    with pytest.raises(ValueError, match="wrap_writes_in_data"):
        fake.wrap_writes_in_data = "yes"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="wrap_writes_in_data"):
        FakePatchworks(wrap_writes_in_data=1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- timestamps


async def test_every_timestamp_the_fake_writes_is_iso_8601(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePatchworks(queue_delay=3600, run_duration=0) as fake:
        await start(session, fake, "flows/101/manual", {"payload": "x"})
        await start(session, fake, body={"payload": "x"})
        await api(session, fake, "POST", "/flows", {"flow": {"name": "New"}})
        await api(session, fake, "POST", "/cross-reference-lookups", {"name": "L"})
        await api(session, fake, "PUT", "/flows/101/versions/9002", {"deployed_at": 0})
        records = [
            *fake.flows.values(),
            *fake.versions.values(),
            *fake.flow_runs.values(),
            *fake.flow_run_logs.values(),
            *fake.payload_metadata.values(),
            *fake.scheduled_flows.values(),
            *fake.lookups.values(),
            *fake.virtual_environments.values(),
        ]
        stamps = [
            value
            for record in records
            for key, value in record.items()
            if key.endswith("_at") and value is not None
        ]
        assert len(stamps) > 20
        assert all(isinstance(stamp, str) and ISO.fullmatch(stamp) for stamp in stamps)


async def test_enabled_at_takes_unix_milliseconds_too(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = {"flow": {"enabled_at": 1_767_225_600_000}}
    status, reply = await api(session, fake, "PUT", "/flows/101", body)
    assert (status, reply["data"]["enabled_at"]) == (200, "2026-01-01T00:00:00.000000Z")
