"""Tests of FakePatchworks' Core API resources: flows, flow runs, lookups and their rows.

Two layers, as for the rest of the fake: the Laravel list conventions (``_pages``) and the
resource store (``_store``) are pure, so their rules are tested with plain values and an
injected clock; every route is then exercised over real sockets with a plain
``aiohttp.ClientSession`` (never the client library), through auth and the throttle.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks, Fault
from patchworks_async.testing._filters import (
    boolean_filter,
    exact_filter,
    filter_items,
    int_filter,
    int_range_filter,
    partial_filter,
)
from patchworks_async.testing._laravel_query import (
    PER_PAGE_MESSAGE,
    ListSpec,
    QueryError,
    laravel_integer,
    page_url,
    paginate,
    paginator_body,
    parse_fields,
    parse_filters,
    parse_includes,
    parse_list_query,
    parse_page,
    parse_per_page,
    parse_sorts,
    php_query,
    select_fields,
    sort_items,
    sort_key,
    validation_body,
)
from patchworks_async.testing._lifecycle import StartOrder
from patchworks_async.testing._resources import CoreRequest, iso_timestamp
from patchworks_async.testing._store import Store

PER_PAGE_422 = {"message": PER_PAGE_MESSAGE, "errors": {"per_page": [PER_PAGE_MESSAGE]}}
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

# =========================================================================== pure helpers


def test_php_query_last_value_wins_values_trimmed_arrays_grouped() -> None:
    query = php_query(
        [("filter[a]", "1"), ("per_page", " 5 "), ("filter[b]", "2"), ("filter[a]", "3")]
    )
    assert query == {"filter[a]": "3", "filter[b]": "2", "per_page": "5"}
    assert list(query) == ["filter[a]", "filter[b]", "per_page"]  # like parse_str + build


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("5", 5), ("+5", 5), ("-2", -2), (" 7 ", 7), ("1.0", None), ("x", None), ("", None)],
)
def test_laravel_integer(raw: str, expected: int | None) -> None:
    assert laravel_integer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "page"), [(None, 1), ("", 1), ("3", 3), ("0", 1), ("-1", 1), ("abc", 1), ("2.5", 1)]
)
def test_page_falls_back_to_one_like_laravels_paginator(raw: str | None, page: int) -> None:
    assert parse_page({} if raw is None else {"page": raw}) == page


@pytest.mark.parametrize(
    ("raw", "per_page"),
    # Over 100 is capped, not refused (PATCHWORKS_API.md: the server accepts or caps).
    [(None, 15), ("", 15), ("1", 1), ("100", 100), ("101", 100), ("250", 100)],
)
def test_per_page_accepted(raw: str | None, per_page: int) -> None:
    assert parse_per_page({} if raw is None else {"per_page": raw}) == per_page


@pytest.mark.parametrize("raw", ["0", "x", "1.5", "-3"])  # 101 is capped now (PATCHWORKS_API.md)
def test_per_page_refused_with_laravels_422(raw: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_per_page({"per_page": raw})
    assert (caught.value.status, caught.value.body) == (422, PER_PAGE_422)


def test_unknown_filter_include_sort_are_spaties_400s() -> None:
    allowed = {"name": partial_filter("name"), "id": int_filter("id")}
    with pytest.raises(QueryError) as caught:
        parse_filters({"filter[nope]": "", "filter[name]": "a", "filter[bad]": "x"}, allowed)
    assert caught.value.status == 400
    assert caught.value.body == {
        "message": "Requested filter(s) `nope, bad` are not allowed. "
        "Allowed filter(s) are `name, id`."
    }
    with pytest.raises(QueryError) as caught:
        parse_includes({"include": "versions,labels"}, ["versions"])
    assert caught.value.body["message"] == (
        "Requested include(s) `labels` are not allowed. Allowed include(s) are `versions`."
    )
    with pytest.raises(QueryError) as caught:
        parse_sorts({"sort": "-size,name"}, ["name", "id"])
    assert caught.value.body["message"] == (
        "Requested sort(s) `size` is not allowed. Allowed sort(s) are `name, id`."
    )


def test_query_parts_parse() -> None:
    assert parse_sorts({"sort": "-name, id,,"}, ["name", "id"]) == (("name", True), ("id", False))
    assert parse_sorts({}, ["id"]) == ()
    assert parse_includes({"include": "a,b"}, ["a"], ["b"]) == frozenset({"a"})
    assert parse_fields({"fields[flows]": "name, enabled_at"}, "flows") == frozenset(
        {"id", "name", "enabled_at"}
    )
    assert parse_fields({"fields[other]": "name"}, "flows") is None
    assert parse_filters({"filter[name]": ""}, {"name": partial_filter("name")}) == ()


def test_parse_list_query_checks_per_page_before_names() -> None:
    spec = ListSpec("flows", {"name": partial_filter("name")}, ("id",))
    with pytest.raises(QueryError) as caught:
        parse_list_query({"per_page": "0", "filter[x]": "1"}, spec)
    assert caught.value.status == 422
    parsed = parse_list_query({"page": "2", "per_page": "5", "sort": "-id"}, spec)
    assert (parsed.page, parsed.per_page, parsed.sorts, parsed.fields) == (
        2,
        5,
        (("id", True),),
        None,
    )


ITEMS: list[dict[str, Any]] = [
    {"id": 1, "name": "Orders", "enabled_at": "2026-01-02", "status": 2, "at": 100},
    {"id": 2, "name": "orders archive", "enabled_at": None, "status": 3, "at": 300},
    {"id": 3, "name": "Stock", "enabled_at": "2026-01-01", "status": 9, "at": 200},
]


def ids(items: list[Any]) -> list[int]:
    return [item["id"] for item in items]


def test_filters() -> None:
    def run(factory: Any, raw: str, name: str = "f") -> list[int]:
        return ids(filter_items(ITEMS, [factory(name, raw)]))

    assert run(partial_filter("name"), "ORDER") == [1, 2]
    assert run(partial_filter("name"), "stock,archive") == [2, 3]
    assert run(exact_filter("name"), "Orders") == [1]
    assert run(exact_filter("name"), "orders") == []
    assert run(int_filter("status"), "2,9") == [1, 3]
    assert run(int_range_filter("at", lower=True), "200") == [2, 3]
    assert run(int_range_filter("at", lower=False), "200") == [1, 3]
    enabled = boolean_filter(lambda item: item["enabled_at"] is not None)
    assert run(enabled, "true") == run(enabled, "1") == [1, 3]
    assert run(enabled, "FALSE") == run(enabled, "0") == [2]
    with pytest.raises(QueryError) as caught:
        enabled("enabled", "maybe")
    assert caught.value.body == {
        "message": "The filter.enabled field must be true or false.",
        "errors": {"filter.enabled": ["The filter.enabled field must be true or false."]},
    }
    with pytest.raises(QueryError, match="must be an integer"):
        int_filter("status")("status", "1,x")
    both = [partial_filter("name")("name", "order"), int_filter("status")("status", "3")]
    assert ids(filter_items(ITEMS, both)) == [2]


def test_sorting_is_mysql_like() -> None:
    assert ids(sort_items(ITEMS, [("name", False)])) == [1, 2, 3]  # case-insensitive
    assert ids(sort_items(ITEMS, [("enabled_at", False)])) == [2, 3, 1]  # NULL first
    assert ids(sort_items(ITEMS, [("enabled_at", True)])) == [1, 3, 2]  # NULL last
    assert ids(sort_items(list(reversed(ITEMS)), [])) == [1, 2, 3]
    ties = [{"id": 3, "g": 1}, {"id": 1, "g": 2}, {"id": 2, "g": 1}]
    assert ids(sort_items(ties, [("g", True)])) == [1, 2, 3]  # ties by id ascending
    assert ids(sort_items(ties, [("g", False), ("id", True)])) == [3, 2, 1]
    mixed: list[dict[str, Any]] = [{"id": 1, "v": "b"}, {"id": 2, "v": 5}, {"id": 3, "v": None}]
    assert ids(sort_items(mixed, [("v", False)])) == [3, 2, 1]  # never a TypeError
    assert sort_key(None) < sort_key(0) < sort_key("a") < sort_key("B")


def test_select_fields_copies() -> None:
    item = {"id": 1, "name": "x", "other": 2}
    assert select_fields(item, frozenset({"id", "name", "missing"})) == {"id": 1, "name": "x"}
    copied = select_fields(item, None)
    assert copied == item
    assert copied is not item


@pytest.mark.parametrize(
    ("total", "page", "per_page", "expected"),
    [
        (0, 1, 15, (0, 0, 1)),  # empty: one empty page
        (15, 1, 15, (0, 15, 1)),  # exactly one page
        (30, 2, 15, (15, 30, 2)),  # an exact multiple
        (31, 3, 15, (30, 31, 3)),
        (30, 5, 15, (30, 30, 2)),  # beyond the last page
    ],
)
def test_paginate(total: int, page: int, per_page: int, expected: tuple[int, int, int]) -> None:
    assert paginate(total, page, per_page) == expected


def test_page_url_keeps_the_query_like_with_query_string() -> None:
    path = "http://h/core/api/v1/flows"
    query = {"filter[name]": "a b,c", "page": "3", "per_page": "10", "blank": ""}
    assert page_url(path, query, 4) == (
        f"{path}?filter%5Bname%5D=a%20b%2Cc&page=4&per_page=10"
    )  # page replaced in place, blank (null) parameters dropped
    assert page_url(path, {"sort": "-name"}, 1) == f"{path}?sort=-name&page=1"
    assert page_url(path, {}, 2) == f"{path}?page=2"


def test_paginator_body_shapes() -> None:
    path = "http://h/x"
    empty = paginator_body([], path=path, query={}, page=1, per_page=15, total=0)
    assert empty == {
        "data": [],
        "links": {"first": f"{path}?page=1", "last": f"{path}?page=1", "prev": None, "next": None},
        "meta": {
            "current_page": 1,
            "from": None,
            "last_page": 1,
            "path": path,
            "per_page": 15,
            "to": None,
            "total": 0,
        },
    }
    middle = paginator_body([{"id": 6}], path=path, query={}, page=2, per_page=5, total=11)
    assert middle["links"]["prev"] == f"{path}?page=1"
    assert middle["links"]["next"] == f"{path}?page=3"
    assert (middle["meta"]["from"], middle["meta"]["to"], middle["meta"]["last_page"]) == (6, 6, 3)
    beyond = paginator_body([], path=path, query={}, page=9, per_page=5, total=11)
    assert beyond["links"]["prev"] == f"{path}?page=8"  # Laravel: any page > 1
    assert beyond["links"]["next"] is None
    assert (beyond["meta"]["from"], beyond["meta"]["last_page"]) == (None, 3)


def test_validation_body_summarises() -> None:
    body = validation_body({"a": ["A bad."], "b": ["B bad.", "B worse."]})
    assert body["message"] == "A bad. (and 2 more errors)"
    assert body["errors"] == {"a": ["A bad."], "b": ["B bad.", "B worse."]}


class Clock:
    """A settable clock for the store: runs finish without sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def manual_start(store: Store, payload: bytes, at: float) -> int:
    """A manual start straight into the store (no queue): its run id."""
    order = StartOrder(flow_id=1, version_id=10, payload=payload, raw=False, manual=True, at=at)
    return store.start(order).run_id


def test_runs_finish_lazily_on_the_monotonic_clock() -> None:
    mono, wall = Clock(100.0), Clock(1_700_000_000.0)
    store = Store(run_duration=2.0, run_outcome=5, wall=wall, mono=mono)
    store.add_flow("F", id=1, versions=(10,), deployed_version=10)
    run_id = manual_start(store, b"abc", at=100.0)
    # ISO timestamps, documented triggers and the new run fields (PATCHWORKS_API.md).
    assert store.flow_runs[run_id] == {
        "id": run_id,
        "flow_id": 1,
        "flow_version_id": 10,
        "status": 1,
        "trigger": "Manual",
        "started_at": "2023-11-14T22:13:20.000000Z",
        "finished_at": None,
        "payload_size": 3,
        "user_id": None,
        "virtual_environment_id": None,
        "retry_flow_run_id": None,
        "has_warnings": False,
    }
    mono.now = 101.99
    assert store.flow_runs[run_id]["status"] == 1
    mono.now = 102.0
    assert store.flow_runs[run_id]["status"] == 5
    assert store.flow_runs[run_id]["finished_at"] == "2023-11-14T22:13:22.000000Z"
    stopped_id = manual_start(store, b"", at=102.0)
    store.flow_runs[stopped_id]["status"] = 4  # changed by hand before it was due: left alone
    mono.now = 200.0
    assert store.flow_runs[stopped_id]["status"] == 4


def test_store_list_and_show_without_sockets() -> None:
    store = Store(wall=Clock(0.0))
    store.add_flows(3)
    reply = store.list_flows(CoreRequest(query={"per_page": "2", "sort": "-id"}, url="u"))
    assert reply.status == 200
    assert reply.body is not None
    assert [flow["id"] for flow in reply.body["data"]] == [103, 102]
    assert iso_timestamp(0.0) == "1970-01-01T00:00:00.000000Z"
    assert store.get_flow(CoreRequest(params={"flow_id": "x"})).status == 404


def test_seeding_helpers_validate() -> None:
    store = Store()
    assert store.add_flows(0) == []
    with pytest.raises(ValueError, match="count"):
        store.add_flows(-1)
    flow = store.add_flow("F", versions=(5, 6))
    with pytest.raises(ValueError, match="does not exist"):
        store.add_flow_run(999)
    with pytest.raises(ValueError, match="not a version"):
        store.add_flow_run(flow["id"], version_id=12345)
    run = store.add_flow_run(flow["id"], status=1, id=42)
    assert (run["flow_version_id"], run["finished_at"]) == (6, None)  # latest when undeployed
    with pytest.raises(ValueError, match="already used"):
        store.add_flow_run(flow["id"], id=42)
    with pytest.raises(ValueError, match="distinct"):
        store.add_lookup("L", rows=[("a", "1"), ("a", "2")])
    lookup = store.add_lookup("L", rows=[("a", "1")])
    with pytest.raises(ValueError, match="already used"):
        store.add_lookup("M", id=lookup["id"])


@pytest.mark.parametrize("kwargs", [{"run_outcome": 1}, {"run_outcome": 6}, {"run_duration": -1}])
def test_run_settings_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="run_"):
        FakePatchworks(**kwargs)
    server = FakePatchworks()
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match="run_"):
        setattr(server, name, value)


# =========================================================================== over sockets


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


_NO_BODY: Any = object()


async def api(
    session: aiohttp.ClientSession,
    fake: FakePatchworks,
    method: str,
    path: str,
    body: Any = _NO_BODY,
) -> tuple[int, dict[str, str], Any]:
    """One authenticated Core API request; ``path`` is relative to core_url or absolute."""
    url = path if path.startswith("http") else f"{fake.core_url}{path}"
    headers = {"Authorization": fake.api_key, "Accept": "application/json"}
    kwargs = {} if body is _NO_BODY else {"json": body}
    async with session.request(method, url, headers=headers, **kwargs) as resp:
        raw = await resp.read()
        return resp.status, dict(resp.headers), json.loads(raw) if raw else None


async def list_ids(session: aiohttp.ClientSession, fake: FakePatchworks, path: str) -> list[int]:
    status, _, body = await api(session, fake, "GET", path)
    assert status == 200, body
    return [item["id"] for item in body["data"]]


# --------------------------------------------------------------------------- flows: lists


async def test_list_flows_shape(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    status, headers, body = await api(session, fake, "GET", "/flows")
    assert status == 200
    assert headers["X-RateLimit-Remaining"] == "239"  # through the throttle like any route
    path = f"{fake.core_url}/flows"
    assert body["links"] == {
        "first": f"{path}?page=1",
        "last": f"{path}?page=1",
        "prev": None,
        "next": None,
    }
    assert body["meta"] == {
        "current_page": 1,
        "from": 1,
        "last_page": 1,
        "path": path,
        "per_page": 15,
        "to": 1,
        "total": 1,
    }
    flow = body["data"][0]
    assert flow == fake.flows[101]
    assert flow["layout_direction"] == "horizontal"
    assert ISO.fullmatch(flow["created_at"])


async def test_pagination_edges(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    fake.add_flows(29)  # 30 flows with the seed: an exact multiple of 10 and 15
    _, _, body = await api(session, fake, "GET", "/flows?per_page=10&page=3")
    assert [len(body["data"]), body["meta"]["from"], body["meta"]["to"]] == [10, 21, 30]
    assert (body["meta"]["last_page"], body["links"]["next"]) == (3, None)
    _, _, body = await api(session, fake, "GET", "/flows?per_page=30")
    assert (len(body["data"]), body["meta"]["last_page"], body["links"]["next"]) == (30, 1, None)
    _, _, body = await api(session, fake, "GET", "/flows?per_page=15&page=7")  # beyond the last
    assert body["data"] == []
    assert body["meta"] == {**body["meta"], "current_page": 7, "from": None, "to": None}
    assert (body["meta"]["last_page"], body["meta"]["total"]) == (2, 30)
    assert body["links"]["prev"].endswith("page=6")
    _, _, body = await api(session, fake, "GET", "/flows?filter[name]=nothing-matches")
    assert body["data"] == []
    assert (body["meta"]["total"], body["meta"]["last_page"], body["meta"]["from"]) == (0, 1, None)


@pytest.mark.parametrize("per_page", ["0", "x"])  # 101 is capped now (PATCHWORKS_API.md)
async def test_bad_per_page_is_422(
    fake: FakePatchworks, session: aiohttp.ClientSession, per_page: str
) -> None:
    for path in ("/flows", "/flow-runs", "/cross-reference-lookups"):
        status, _, body = await api(session, fake, "GET", f"{path}?per_page={per_page}")
        assert (status, body) == (422, PER_PAGE_422)


async def test_links_keep_the_query_string_and_can_be_followed(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.add_flows(24, name_prefix="Sync")
    status, _, body = await api(
        session, fake, "GET", "/flows?filter[name]=sync&sort=-id&per_page=10&include=versions"
    )
    assert status == 200
    next_url = body["links"]["next"]
    assert dict(parse_qsl(urlsplit(next_url).query)) == {
        "filter[name]": "sync",
        "sort": "-id",
        "per_page": "10",
        "include": "versions",
        "page": "2",
    }
    seen = [item["id"] for item in body["data"]]
    while next_url:
        _, _, body = await api(session, fake, "GET", next_url)
        seen += [item["id"] for item in body["data"]]
        next_url = body["links"]["next"]
    assert seen == list(range(125, 101, -1))  # every Sync flow once, newest first
    assert body["meta"]["current_page"] == 3


async def test_listing_ten_thousand_flows_is_cheap(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(requests_per_window=1000) as server:
        server.add_flows(10_000)
        url: str | None = f"{server.core_url}/flows?per_page=100"
        seen: list[int] = []
        while url:
            _, _, body = await api(session, server, "GET", url)
            seen += [item["id"] for item in body["data"]]
            url = body["links"]["next"]
        assert seen == sorted(server.flows)
        assert len(seen) == 10_001


async def test_flow_filters(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    fake.add_flow("Stock sync", id=102, enabled_at=None)
    fake.add_flow("Returns", id=103, versions=(9100,), deployed_version=9100)
    assert await list_ids(session, fake, "/flows?filter[name]=ORDERS") == [101]
    assert await list_ids(session, fake, "/flows?filter[name]=sync,turn") == [102, 103]
    assert await list_ids(session, fake, "/flows?filter[enabled]=false") == [102]
    assert await list_ids(session, fake, "/flows?filter[enabled]=1") == [101, 103]
    assert await list_ids(session, fake, "/flows?filter[id]=103,101") == [101, 103]
    assert await list_ids(session, fake, "/flows?filter[deployed]=true") == [101, 103]
    assert await list_ids(session, fake, "/flows?filter[deployed]=false") == [102]
    assert await list_ids(
        session, fake, "/flows?filter[enabled]=true&filter[deployed]=true&filter[name]=ret"
    ) == [103]
    assert await list_ids(session, fake, "/flows?filter[versions.id]=9100") == [103]
    assert await list_ids(session, fake, "/flows?filter[name]=") == [101, 102, 103]
    status, _, body = await api(session, fake, "GET", "/flows?filter[enabled]=maybe")
    assert status == 422
    assert body["errors"] == {"filter.enabled": ["The filter.enabled field must be true or false."]}


async def test_unknown_filter_sort_include_are_400(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, headers, body = await api(session, fake, "GET", "/flows?filter[colour]=red")
    assert status == 400
    assert body == {  # every documented flow filter is allowed now (PATCHWORKS_API.md)
        "message": "Requested filter(s) `colour` are not allowed. Allowed filter(s) are "
        "`name, marketplace_app_id, blueprint_id, blueprint_version_number, labelled, "
        "enabled, deployed, id, versions, versions.id`."
    }
    assert headers["X-RateLimit-Remaining"] == "239"  # admitted, so counted
    status, _, body = await api(session, fake, "GET", "/flows?sort=-size")
    assert status == 400
    assert body["message"].startswith("Requested sort(s) `size` is not allowed.")
    status, _, body = await api(session, fake, "GET", "/flows?include=owner")
    assert status == 400
    assert body["message"].startswith("Requested include(s) `owner` are not allowed.")
    status, _, body = await api(session, fake, "GET", "/flows/101?include=owner")
    assert status == 400
    status, _, body = await api(session, fake, "GET", "/flow-runs?filter[colour]=red")
    assert status == 400
    status, _, body = await api(session, fake, "GET", "/cross-reference-lookups?sort=created_at")
    assert status == 400


async def test_flow_sorts(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    fake.add_flow("beta", id=102, enabled_at=None, created_at="2025-06-01T00:00:00.000000Z")
    fake.add_flow("Alpha", id=103, enabled_at="2026-02-01T00:00:00.000000Z")
    assert await list_ids(session, fake, "/flows") == [101, 102, 103]
    assert await list_ids(session, fake, "/flows?sort=name") == [103, 102, 101]
    assert await list_ids(session, fake, "/flows?sort=-name") == [101, 102, 103]
    assert await list_ids(session, fake, "/flows?sort=enabled_at") == [102, 101, 103]
    assert await list_ids(session, fake, "/flows?sort=-enabled_at") == [103, 101, 102]
    assert await list_ids(session, fake, "/flows?sort=created_at,-id") == [102, 103, 101]
    assert await list_ids(session, fake, "/flows?sort=-id") == [103, 102, 101]


async def test_flow_includes_and_fields(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.add_flow("Undeployed", id=102, versions=(9200,))
    _, _, body = await api(
        session, fake, "GET", "/flows?include=versions,latestVersion,deployedVersion,labels"
    )
    first, second = body["data"]
    assert [v["id"] for v in first["versions"]] == [9001, 9002]
    assert (first["latest_version"]["id"], first["deployed_version"]["id"]) == (9002, 9001)
    assert (second["latest_version"]["id"], second["deployed_version"]) == (9200, None)
    assert first["labels"] == []  # flows carry their labels now (PATCHWORKS_API.md: labelled)
    _, _, body = await api(session, fake, "GET", "/flows?fields[flows]=name,enabled_at")
    assert body["data"][0] == {
        "id": 101,
        "name": "Orders to ERP",
        "enabled_at": fake.flows[101]["enabled_at"],
    }
    _, _, body = await api(
        session, fake, "GET", "/flows/101?fields[flows]=name&include=deployedVersion"
    )
    assert body["data"] == {
        "id": 101,
        "name": "Orders to ERP",
        "deployed_version": fake.versions[9001],
    }


# --------------------------------------------------------------------------- flows: writes


async def test_create_flow(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    status, _, body = await api(
        session,
        fake,
        "POST",
        "/flows",
        {"flow": {"name": "  New flow ", "description": "d", "prod_flag": True}},
    )
    assert status == 201
    flow = body["data"]
    assert flow["id"] == 102
    assert (flow["name"], flow["description"], flow["prod_flag"]) == ("New flow", "d", True)
    assert (flow["enabled_at"], flow["deployed_version_id"]) == (None, None)
    assert ISO.fullmatch(flow["created_at"])
    assert flow["created_at"] == flow["updated_at"] != "2026-01-01T00:00:00.000000Z"
    assert [v["flow_id"] for v in fake.versions.values()].count(102) == 1
    assert fake.flows[102] == flow


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"flow.name": ["The flow.name field is required."]}),
        ({"flow": {"name": "   "}}, {"flow.name": ["The flow.name field is required."]}),
        ({"flow": {"name": 5}}, {"flow.name": ["The flow.name field must be a string."]}),
        (
            {"flow": {"name": "x", "prod_flag": "yes"}},
            {"flow.prod_flag": ["The flow.prod flag field must be true or false."]},
        ),
    ],
)
async def test_create_flow_validation(
    fake: FakePatchworks,
    session: aiohttp.ClientSession,
    body: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    status, _, reply = await api(session, fake, "POST", "/flows", body)
    assert status == 422
    assert reply == {"message": next(iter(errors.values()))[0], "errors": errors}
    assert list(fake.flows) == [101]


async def test_update_flow_changes_only_the_given_keys(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    before = dict(fake.flows[101])
    status, _, body = await api(
        session,
        fake,
        "PUT",
        "/flows/101",
        {
            "flow": {"name": "Renamed", "enabled_at": None, "priority": 3, "use_queued_time": 1},
            "labels": [{"id": 1}],
        },
    )
    assert status == 200
    flow = body["data"]
    assert (flow["name"], flow["enabled_at"], flow["priority"], flow["use_queued_time"]) == (
        "Renamed",
        None,
        3,
        True,
    )
    assert flow["description"] == before["description"]
    assert flow["updated_at"] != before["updated_at"]
    assert flow["created_at"] == before["created_at"]
    _, _, body = await api(
        session, fake, "PUT", "/flows/101", {"flow": {"enabled_at": "2026-03-04T05:06:07+01:00"}}
    )
    assert body["data"]["enabled_at"] == "2026-03-04T04:06:07.000000Z"
    status, _, body = await api(
        session, fake, "PUT", "/flows/101", {"flow": {"name": "", "enabled_at": "soon"}}
    )
    assert status == 422
    assert body["errors"] == {
        "flow.name": ["The flow.name field is required."],
        "flow.enabled_at": ["The flow.enabled at field must be a valid date."],
    }
    assert body["message"] == "The flow.name field is required. (and 1 more error)"
    status, _, body = await api(session, fake, "PUT", "/flows/999", {"flow": {"name": "x"}})
    assert (status, body) == (404, {"message": "No query results for model [Flow] 999"})


async def test_delete_flow(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    status, _, body = await api(session, fake, "DELETE", "/flows/101")
    assert (status, body) == (200, {"message": "Flow deleted."})
    assert (fake.flows, fake.versions) == ({}, {})
    status, _, _ = await api(session, fake, "GET", "/flows/101")
    assert status == 404
    status, _, _ = await api(session, fake, "DELETE", "/flows/101")
    assert status == 404
    _, _, body = await api(session, fake, "POST", "/flows", {"flow": {"name": "After"}})
    assert body["data"]["id"] == 102  # ids are not reused


async def test_export_and_import(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    # Export answers the bundle itself, and import takes it as is (PATCHWORKS_API.md).
    status, _, export = await api(session, fake, "POST", "/flows/export", {"flow_id": 101})
    assert status == 200
    assert export["flow"]["name"] == fake.flows[101]["name"]
    assert [v["id"] for v in export["flow"]["versions"]] == [9001, 9002]
    assert ISO.fullmatch(export["metadata"]["exported_at"])
    status, _, body = await api(
        session, fake, "POST", "/flows/import", {**export, "as_marketplace": False}
    )
    assert status == 201
    imported = body["data"]
    assert (imported["id"], imported["name"]) == (102, "Orders to ERP")
    assert (imported["description"], imported["deployed_version_id"]) == ("Demo flow", None)
    assert [v["version"] for v in fake.versions.values() if v["flow_id"] == 102] == [1, 2]

    status, _, body = await api(session, fake, "POST", "/flows/export", {"flow_id": 999})
    assert (status, body) == (404, {"message": "No query results for model [Flow] 999"})
    status, _, body = await api(session, fake, "POST", "/flows/export", {})
    assert (status, body["errors"]) == (422, {"flow_id": ["The flow id field is required."]})
    status, _, body = await api(session, fake, "POST", "/flows/import", {"flow": export["flow"]})
    assert (status, body["errors"]) == (422, {"metadata": ["The metadata field is required."]})
    status, _, body = await api(session, fake, "POST", "/flows/import", {"metadata": {}})
    assert (status, body["errors"]) == (422, {"flow": ["The flow field is required."]})
    status, _, body = await api(
        session, fake, "POST", "/flows/import", {"flow": {"versions": []}, "metadata": {}}
    )
    assert body["errors"] == {"flow.name": ["The flow.name field is required."]}


async def test_duplicate_flow(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    other = fake.add_flow("Other", versions=(7001,))
    status, _, body = await api(
        session, fake, "POST", "/flows/101/duplicate", {"flow_version_id": 9002}
    )
    assert status == 201
    copy = body["data"]
    # "the copy's name gets an incremental number" (PATCHWORKS_API.md, Flows: Duplicate)
    assert (copy["name"], copy["description"]) == ("Orders to ERP (1)", "Demo flow")
    assert copy["id"] not in (101, other["id"])
    assert len([v for v in fake.versions.values() if v["flow_id"] == copy["id"]]) == 1
    status, _, body = await api(
        session, fake, "POST", "/flows/101/duplicate", {"flow_version_id": 7001}
    )
    assert (status, body["errors"]) == (
        422,
        {"flow_version_id": ["The selected flow version id is invalid."]},
    )
    status, _, body = await api(session, fake, "POST", "/flows/101/duplicate", {})
    assert body["errors"] == {"flow_version_id": ["The flow version id field is required."]}
    status, _, _ = await api(session, fake, "POST", "/flows/999/duplicate", {"flow_version_id": 1})
    assert status == 404


async def test_toggle_layout_direction_has_no_content(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    for expected in ("vertical", "horizontal"):
        status, headers, body = await api(session, fake, "PATCH", "/flows/101/layout-direction")
        assert (status, body) == (204, None)
        assert "X-RateLimit-Remaining" in headers
        assert fake.flows[101]["layout_direction"] == expected
    status, _, _ = await api(session, fake, "PATCH", "/flows/999/layout-direction")
    assert status == 404


# --------------------------------------------------------------------------- pipeline


async def test_new_routes_go_through_the_pipeline(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(requests_per_window=3) as server:
        assert (await api(session, server, "GET", "/flows"))[0] == 200
        server.inject(Fault.SERVER_ERROR_AFTER, route="core")
        assert (await api(session, server, "POST", "/flows", {"flow": {"name": "X"}}))[0] == 500
        assert 102 in server.flows  # processed, then the reply was lost
        async with session.get(f"{server.core_url}/flow-runs") as resp:
            assert resp.status == 401  # no key: refused and not counted
        assert (await api(session, server, "GET", "/cross-reference-lookups"))[0] == 200
        status, headers, body = await api(session, server, "GET", "/flow-runs")
        assert (status, body) == (429, {"message": "Too Many Attempts."})
        assert "Retry-After" in headers
        assert [r.route for r in server.received] == ["core"] * 5


async def test_body_errors_and_wrong_verbs(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": fake.api_key, "Content-Type": "text/plain"}
    async with session.post(f"{fake.core_url}/flows", data=b"{}", headers=headers) as resp:
        assert resp.status == 415
    headers["Content-Type"] = "application/json"
    async with session.post(f"{fake.core_url}/flows", data=b"{oops", headers=headers) as resp:
        assert (resp.status, await resp.json()) == (400, {"message": "Malformed JSON."})
    for method, path, allow in [
        ("PATCH", "/flows", "GET, POST"),
        ("GET", "/flows/101/duplicate", "POST"),
        ("DELETE", "/flow-runs/1", "GET"),
        ("PATCH", "/cross-reference-lookups/1", "GET, PUT, DELETE"),
        ("GET", "/cross-reference-lookups/1/values/1", "PUT, DELETE"),
    ]:
        status, resp_headers, body = await api(session, fake, method, path)
        assert (status, body, resp_headers["Allow"]) == (
            405,
            {"message": "Method Not Allowed"},
            allow,
        )
    status, _, body = await api(session, fake, "GET", "/flows/export")  # a flow named "export"
    assert (status, body) == (404, {"message": "No query results for model [Flow] export"})


# --------------------------------------------------------------------------- flow runs


async def start(
    session: aiohttp.ClientSession, fake: FakePatchworks, route: str, payload: str
) -> int:
    headers = {"Authorization": fake.api_key}
    url = f"{fake.start_url}/flows/101/{route}"
    async with session.post(url, json={"payload": payload}, headers=headers) as resp:
        assert resp.status == 200
        return int((await resp.json())["flow_run_id"])


async def test_runs_are_created_by_starts_and_finish_after_run_duration(
    session: aiohttp.ClientSession,
) -> None:
    # /start queues (PATCHWORKS_API.md): queue_delay=0 makes it a run on the next read.
    async with FakePatchworks(run_duration=30.0, run_outcome=3, queue_delay=0) as server:
        run_id = await start(session, server, "start", '{"é": 1}')
        manual_id = await start(session, server, "manual/9002", "<x/>")
        status, _, body = await api(session, server, "GET", f"/flow-runs/{run_id}")
        assert status == 200
        run = body["data"]
        # ISO timestamps, documented triggers and the new run fields (PATCHWORKS_API.md).
        assert run == {
            "id": run_id,
            "flow_id": 101,
            "flow_version_id": 9001,
            "status": 1,
            "trigger": "API",
            "started_at": run["started_at"],
            "finished_at": None,
            "payload_size": 9,  # UTF-8 bytes, not characters
            "user_id": None,
            "virtual_environment_id": None,
            "retry_flow_run_id": None,
            "has_warnings": False,
        }
        assert ISO.fullmatch(run["started_at"])
        started = dt.datetime.fromisoformat(run["started_at"])
        assert started > dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        manual = server.flow_runs[manual_id]
        assert (manual["trigger"], manual["flow_version_id"]) == ("Manual", 9002)
        server.advance(30.0)
        _, _, body = await api(session, server, "GET", f"/flow-runs/{run_id}")
        assert body["data"]["status"] == 3
        finished = dt.datetime.fromisoformat(body["data"]["finished_at"])
        assert finished - started == dt.timedelta(seconds=30)
        assert server.flow_runs[manual_id]["status"] == 3


async def test_run_lists_filters_sorts_includes(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    other = fake.add_flow("Other", id=102, versions=(7001,))
    a = fake.add_flow_run(101, status=2, started_at_ms=3_000)
    b = fake.add_flow_run(101, status=9, started_at_ms=1_000, version_id=9002)
    c = fake.add_flow_run(other["id"], status=1, started_at_ms=2_000, trigger="Manual")
    # ISO timestamps and documented triggers (PATCHWORKS_API.md); filters still take Unix ms.
    assert (a["id"], a["finished_at"], c["finished_at"]) == (
        500001,
        "1970-01-01T00:00:03.500000Z",
        None,
    )
    assert (a["started_at"], a["trigger"]) == ("1970-01-01T00:00:03.000000Z", "API")
    assert await list_ids(session, fake, "/flow-runs") == [a["id"], b["id"], c["id"]]
    assert await list_ids(session, fake, "/flow-runs?filter[flow_id]=101") == [a["id"], b["id"]]
    assert await list_ids(session, fake, "/flow-runs?filter[flow_version_id]=9002,7001") == [
        b["id"],
        c["id"],
    ]
    assert await list_ids(session, fake, "/flow-runs?filter[status]=9,1") == [b["id"], c["id"]]
    assert await list_ids(session, fake, "/flow-runs?filter[flow_id]=101&filter[status]=2") == [
        a["id"]
    ]
    assert await list_ids(session, fake, "/flow-runs?filter[trigger]=API") == [a["id"], b["id"]]
    assert await list_ids(session, fake, "/flow-runs?filter[started_after]=1000") == [
        a["id"],
        b["id"],
        c["id"],
    ]
    assert await list_ids(session, fake, "/flow-runs?filter[started_after]=2000") == [
        a["id"],
        c["id"],
    ]
    assert await list_ids(session, fake, "/flow-runs?filter[started_before]=1000") == [b["id"]]
    status, _, body = await api(session, fake, "GET", "/flow-runs?filter[started_after]=soon")
    assert status == 422
    assert await list_ids(session, fake, "/flow-runs?sort=started_at") == [
        b["id"],
        c["id"],
        a["id"],
    ]
    assert await list_ids(session, fake, "/flow-runs?sort=-started_at") == [
        a["id"],
        c["id"],
        b["id"],
    ]
    assert await list_ids(session, fake, "/flow-runs?sort=-id") == [c["id"], b["id"], a["id"]]
    _, _, body = await api(session, fake, "GET", f"/flow-runs/{b['id']}?include=flow,flowVersion")
    assert body["data"]["status"] == 9  # an unknown code is served as is
    assert (body["data"]["flow"]["id"], body["data"]["flow_version"]["id"]) == (101, 9002)
    _, _, body = await api(session, fake, "GET", "/flow-runs?fields[flow_runs]=status&per_page=1")
    assert body["data"] == [{"id": a["id"], "status": 2}]
    assert body["meta"]["last_page"] == 3
    status, _, body = await api(session, fake, "GET", "/flow-runs?filter[status]=done")
    assert (status, body["errors"]) == (
        422,
        {"filter.status": ["The filter.status field must be an integer."]},
    )
    status, _, body = await api(session, fake, "GET", "/flow-runs/123")
    assert (status, body) == (404, {"message": "No query results for model [FlowRun] 123"})


# --------------------------------------------------------------------------- lookups


async def test_lookup_crud(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    _, _, body = await api(session, fake, "GET", "/cross-reference-lookups")
    assert (body["data"], body["meta"]["total"], body["meta"]["last_page"]) == ([], 0, 1)
    status, _, body = await api(
        session,
        fake,
        "POST",
        "/cross-reference-lookups",
        {"name": "Countries", "default_value": "GB"},
    )
    assert status == 201
    lookup = body["data"]
    assert lookup == {
        "id": 1,
        "cross_reference_lookup_template_id": None,
        "name": "Countries",
        "description": None,
        "default_value": "GB",
        "created_at": lookup["created_at"],
        "updated_at": lookup["created_at"],
    }
    assert ISO.fullmatch(lookup["created_at"])
    assert fake.lookup_values == {}  # created with no rows
    status, _, body = await api(session, fake, "POST", "/cross-reference-lookups", {"name": " "})
    assert (status, body["errors"]) == (422, {"name": ["The name field is required."]})

    status, _, body = await api(
        session, fake, "PUT", "/cross-reference-lookups/1", {"description": "ISO codes"}
    )
    assert status == 200
    assert (body["data"]["description"], body["data"]["name"]) == ("ISO codes", "Countries")
    assert body["data"]["default_value"] == "GB"
    status, _, body = await api(session, fake, "PUT", "/cross-reference-lookups/1", {"name": None})
    assert (status, body["errors"]) == (422, {"name": ["The name field is required."]})
    _, _, body = await api(session, fake, "GET", "/cross-reference-lookups/1")
    assert body["data"] == fake.lookups[1]

    fake.add_lookup("Carriers", rows=[("dpd", "DPD")])
    fake.add_lookup("Currencies")
    assert await list_ids(session, fake, "/cross-reference-lookups?filter[name]=CUR") == [3]
    assert await list_ids(session, fake, "/cross-reference-lookups?sort=name") == [2, 1, 3]
    assert await list_ids(session, fake, "/cross-reference-lookups?sort=-id&per_page=2") == [3, 2]

    status, _, body = await api(session, fake, "DELETE", "/cross-reference-lookups/2")
    assert (status, body) == (200, {"message": "Lookup deleted."})
    assert (2 not in fake.lookups, fake.lookup_values) == (True, {})  # rows went with it
    status, _, body = await api(session, fake, "GET", "/cross-reference-lookups/2")
    assert (status, body) == (
        404,
        {"message": "No query results for model [CrossReferenceLookup] 2"},
    )


async def test_lookup_rows_crud(fake: FakePatchworks, session: aiohttp.ClientSession) -> None:
    countries = fake.add_lookup("Countries", rows=[("UK", "GB"), ("USA", "US")])
    carriers = fake.add_lookup("Carriers", rows=[("dpd", "DPD")])
    base = f"/cross-reference-lookups/{countries['id']}/values"
    _, _, body = await api(session, fake, "GET", base)
    assert [(r["left_value"], r["right_value"]) for r in body["data"]] == [
        ("UK", "GB"),
        ("USA", "US"),
    ]
    assert body["meta"]["total"] == 2
    assert await list_ids(session, fake, f"{base}?filter[left_value]=US") == []  # exact
    assert await list_ids(session, fake, f"{base}?filter[left_value]=USA") == [2]
    assert await list_ids(session, fake, f"{base}?filter[right_value]=GB,US") == [1, 2]

    status, _, body = await api(
        session, fake, "POST", base, {"left_value": "France", "right_value": "FR"}
    )
    assert status == 201
    row = body["data"]
    assert row == {
        "id": 4,
        "cross_reference_lookup_id": countries["id"],
        "left_value": "France",
        "right_value": "FR",
        "created_at": row["created_at"],
        "updated_at": row["created_at"],
    }
    status, _, body = await api(
        session, fake, "POST", base, {"left_value": "UK", "right_value": "X"}
    )
    assert (status, body) == (409, {"message": "A row with this left value already exists."})
    status, _, body = await api(session, fake, "POST", base, {"left_value": "Spain"})
    assert (status, body["errors"]) == (
        422,
        {"right_value": ["The right value field is required."]},
    )
    status, _, body = await api(session, fake, "POST", base, {"left_value": 1, "right_value": "x"})
    assert body["errors"] == {"left_value": ["The left value field must be a string."]}

    status, _, body = await api(session, fake, "PUT", f"{base}/4", {"right_value": "FRA"})
    assert status == 200
    assert (body["data"]["left_value"], body["data"]["right_value"]) == ("France", "FRA")
    status, _, _ = await api(session, fake, "PUT", f"{base}/4", {"left_value": "France"})
    assert status == 200  # its own left value is no conflict
    status, _, body = await api(session, fake, "PUT", f"{base}/4", {"left_value": "UK"})
    assert status == 409

    carriers_row = next(
        r["id"]
        for r in fake.lookup_values.values()
        if r["cross_reference_lookup_id"] == carriers["id"]
    )
    for method in ("PUT", "DELETE"):
        status, _, body = await api(
            session, fake, method, f"{base}/{carriers_row}", {"right_value": "x"}
        )
        assert (status, body) == (
            404,
            {"message": f"No query results for model [CrossReferenceLookupValue] {carriers_row}"},
        )
    status, _, body = await api(session, fake, "POST", "/cross-reference-lookups/99/values", {})
    assert (status, body) == (
        404,
        {"message": "No query results for model [CrossReferenceLookup] 99"},
    )

    status, _, body = await api(session, fake, "DELETE", f"{base}/4")
    assert (status, body) == (200, {"message": "Value deleted."})
    assert 4 not in fake.lookup_values
    status, _, _ = await api(session, fake, "DELETE", f"{base}/4")
    assert status == 404
