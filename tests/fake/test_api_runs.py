"""The fake's flow runs, their logs and retries, as PATCHWORKS_API.md documents them.

Runs are driven with the fake's switches: ``queue_delay=0`` makes a ``/start`` a run on the
next read, ``run_duration=0`` finishes it there, a large ``run_duration`` keeps it STARTED.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from patchworks_async.testing import FakePatchworks

from .calls import ISO, api, list_ids, start, started_run_id


@pytest.fixture
async def instant() -> AsyncIterator[FakePatchworks]:
    """A fake whose starts run at once and finish on the next read, successfully."""
    async with FakePatchworks(queue_delay=0, run_duration=0) as fake:
        yield fake


# --------------------------------------------------------------------------- runs


async def test_run_timestamps_are_iso_8601(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    run_id = await started_run_id(session, instant)
    _, reply = await api(session, instant, "GET", f"/flow-runs/{run_id}")
    assert ISO.fullmatch(reply["data"]["started_at"])
    assert ISO.fullmatch(reply["data"]["finished_at"])


@pytest.mark.parametrize(("route", "trigger"), [("start", "API"), ("manual", "Manual")])
async def test_the_trigger_names_the_start_route(
    instant: FakePatchworks, session: aiohttp.ClientSession, route: str, trigger: str
) -> None:
    run_id = await started_run_id(session, instant, f"flows/101/{route}")
    _, reply = await api(session, instant, "GET", f"/flow-runs/{run_id}")
    assert reply["data"]["trigger"] == trigger


async def test_a_run_carries_retry_and_warning_fields(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    run_id = await started_run_id(session, instant)
    _, reply = await api(session, instant, "GET", f"/flow-runs/{run_id}")
    assert (reply["data"]["retry_flow_run_id"], reply["data"]["has_warnings"]) == (None, False)


async def test_a_started_run_carries_its_virtual_environment(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    body = {"payload": "x", "virtual_environment_id": 2}
    _, started = await start(session, instant, body=body)
    assert instant.flow_runs[started["flow_run_id"]]["virtual_environment_id"] == 2


@pytest.mark.parametrize(
    "query",
    [
        "filter[flow_id]=101",
        "filter[flow_version_id]=9001",
        "filter[status]=2",
        "filter[trigger]=API",
        "filter[started_after]=0",
        "filter[started_before]=99999999999999",
        "filter[started_on]=1767225600000",
        "filter[user_id]=1",
        "filter[virtual_environment_id]=1",
        "filter[search]=orders",
        "filter[retried]=false",
        "filter[has_warnings]=false",
    ],
)
async def test_every_documented_run_filter_is_accepted(
    fake: FakePatchworks, session: aiohttp.ClientSession, query: str
) -> None:
    assert (await api(session, fake, "GET", f"/flow-runs?{query}"))[0] == 200


async def test_started_on_takes_a_day_in_unix_ms(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    day = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    on_day = fake.add_flow_run(101, started_at_ms=day + 3_600_000)
    fake.add_flow_run(101, started_at_ms=day - 1)
    fake.add_flow_run(101, started_at_ms=day + 86_400_000)
    assert await list_ids(session, fake, f"/flow-runs?filter[started_on]={day + 5}") == [
        on_day["id"]
    ]


async def test_started_after_takes_an_iso_string_too(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    fake.add_flow_run(101, started_at_ms=1_000)
    late = fake.add_flow_run(101, started_at_ms=5_000)
    path = "/flow-runs?filter[started_after]=1970-01-01T00:00:02Z"
    assert await list_ids(session, fake, path) == [late["id"]]


async def test_user_and_environment_filters(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    mine = fake.add_flow_run(101, user_id=7, virtual_environment_id=2)
    fake.add_flow_run(101)
    assert await list_ids(session, fake, "/flow-runs?filter[user_id]=7") == [mine["id"]]
    path = "/flow-runs?filter[virtual_environment_id]=2"
    assert await list_ids(session, fake, path) == [mine["id"]]


async def test_search_matches_the_run_id_or_flow_name(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    other = fake.add_flow("Stock sync", versions=(7001,))
    stock = fake.add_flow_run(other["id"])
    orders = fake.add_flow_run(101)
    assert await list_ids(session, fake, "/flow-runs?filter[search]=STOCK") == [stock["id"]]
    path = f"/flow-runs?filter[search]={orders['id']}"
    assert await list_ids(session, fake, path) == [orders["id"]]


async def test_has_warnings_filters_on_the_flag(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    warned = fake.add_flow_run(101, has_warnings=True)
    clean = fake.add_flow_run(101)
    assert await list_ids(session, fake, "/flow-runs?filter[has_warnings]=true") == [warned["id"]]
    assert await list_ids(session, fake, "/flow-runs?filter[has_warnings]=0") == [clean["id"]]


async def test_retried_finds_the_runs_a_retry_retried(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    first = fake.add_flow_run(101, status=3)
    fake.add_flow_run(101)
    _, reply = await api(session, fake, "POST", f"/flow-runs/{first['id']}/retry")
    assert await list_ids(session, fake, "/flow-runs?filter[retried]=true") == [first["id"]]
    retried_false = await list_ids(session, fake, "/flow-runs?filter[retried]=false")
    assert first["id"] not in retried_false
    assert reply["flow_run_id"] in retried_false


async def test_an_undocumented_run_filter_is_still_400(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "GET", "/flow-runs?filter[payload]=x")
    assert status == 400
    assert reply["message"].startswith("Requested filter(s) `payload` are not allowed.")


@pytest.mark.parametrize(
    "include",
    [
        "flow",
        "flowVersion",
        "flowVersion.steps",
        "flowRunLogs",
        "errorWarningLogs",
        "trackedData",
        "metrics",
        "cpuTime",
        "payloadSize",
        "operationsSent",
        "operationsReceived",
        "retriedFlowRun",
    ],
)
async def test_every_documented_run_include_is_accepted(
    instant: FakePatchworks, session: aiohttp.ClientSession, include: str
) -> None:
    run_id = await started_run_id(session, instant)
    assert (await api(session, instant, "GET", f"/flow-runs?include={include}"))[0] == 200
    assert (await api(session, instant, "GET", f"/flow-runs/{run_id}?include={include}"))[0] == 200


async def test_an_undocumented_run_include_is_still_400(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    assert (await api(session, fake, "GET", "/flow-runs?include=owner"))[0] == 400


async def test_run_includes_bring_logs_steps_and_the_retried_run(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    instant.run_outcome = 3
    original = await started_run_id(session, instant)
    _, retry = await api(session, instant, "POST", f"/flow-runs/{original}/retry")
    includes = "flowRunLogs,errorWarningLogs,retriedFlowRun,flowVersion.steps"
    _, reply = await api(
        session, instant, "GET", f"/flow-runs/{retry['flow_run_id']}?include={includes}"
    )
    run = reply["data"]
    assert [log["log_level"] for log in run["flow_run_logs"]] == ["info", "info", "error"]
    assert [log["log_level"] for log in run["error_warning_logs"]] == ["error"]
    assert run["retried_flow_run"]["id"] == original
    assert (run["flow_version"]["id"], run["flow_version"]["steps"]) == (9001, [])


async def test_run_fields_accept_the_camel_case_resource_name(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    run_id = await started_run_id(session, instant)
    _, reply = await api(session, instant, "GET", "/flow-runs?fields[flowRuns]=trigger")
    assert reply["data"] == [{"id": run_id, "trigger": "API"}]


# --------------------------------------------------------------------------- logs


async def test_a_run_logs_its_start_payload_and_finish(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    run_id = await started_run_id(session, instant)
    status, reply = await api(session, instant, "GET", f"/flow-runs/{run_id}/flow-run-logs")
    assert status == 200
    started, payload, finished = reply["data"]
    assert set(started) == {
        "id",
        "flow_run_id",
        "log_level",
        "log_message",
        "flow_step_id",
        "payload_metadata_id",
        "created_at",
    }
    assert [log["log_level"] for log in reply["data"]] == ["info", "info", "info"]
    assert payload["payload_metadata_id"] == instant.starts[0].payload_metadata_id
    assert started["payload_metadata_id"] is None
    assert finished["log_message"] == "Flow run completed successfully."
    assert all(
        log["flow_run_id"] == run_id and ISO.fullmatch(log["created_at"]) for log in reply["data"]
    )
    assert reply["meta"]["total"] == 3


async def test_a_failed_run_logs_an_error(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    instant.run_outcome = 3
    run_id = await started_run_id(session, instant)
    _, reply = await api(session, instant, "GET", f"/flow-runs/{run_id}/flow-run-logs")
    assert (reply["data"][-1]["log_level"], reply["data"][-1]["log_message"]) == (
        "error",
        "Flow run failed.",
    )


async def test_a_running_run_has_not_logged_its_finish(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(run_duration=3600) as fake:
        run_id = await started_run_id(session, fake, "flows/101/manual")
        _, reply = await api(session, fake, "GET", f"/flow-runs/{run_id}/flow-run-logs")
        assert [log["log_message"] for log in reply["data"]] == [
            "Flow run started.",
            "Payload received.",
        ]


async def test_logs_of_an_unknown_run_are_404(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "GET", "/flow-runs/123/flow-run-logs")
    assert (status, reply) == (404, {"message": "No query results for model [FlowRun] 123"})


async def test_logs_of_a_queued_start_are_404(session: aiohttp.ClientSession) -> None:
    async with FakePatchworks(queue_delay=3600) as fake:
        run_id = await started_run_id(session, fake)
        assert (await api(session, fake, "GET", f"/flow-runs/{run_id}/flow-run-logs"))[0] == 404


async def test_logs_sort_and_take_sparse_fields(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    run_id = await started_run_id(session, instant)
    base = f"/flow-runs/{run_id}/flow-run-logs"
    ids = await list_ids(session, instant, base)
    assert await list_ids(session, instant, f"{base}?sort=-id") == ids[::-1]
    assert await list_ids(session, instant, f"{base}?sort=created_at") == ids
    assert await list_ids(session, instant, f"{base}?sort=-created_at,id")
    _, reply = await api(session, instant, "GET", f"{base}?fields[flow_run_logs]=log_level")
    assert reply["data"][0] == {"id": ids[0], "log_level": "info"}


async def test_logs_accept_load_payload_ids_and_their_include(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    run_id = await started_run_id(session, instant)
    path = f"/flow-runs/{run_id}/flow-run-logs?include=flowRunLogMetadata&load_payload_ids=true"
    status, reply = await api(session, instant, "GET", path)
    assert status == 200
    assert reply["data"][1]["payload_metadata_id"] is not None
    assert (await api(session, instant, "GET", f"/flow-runs/{run_id}/flow-run-logs?include=x"))[
        0
    ] == 400


# --------------------------------------------------------------------------- retry


async def test_a_retry_is_a_new_run_of_the_same_version(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    original = await started_run_id(session, instant, "flows/101/start/9002")
    status, reply = await api(session, instant, "POST", f"/flow-runs/{original}/retry")
    assert status == 200
    assert reply["message"] == "Flow initialised."
    retry = instant.flow_runs[reply["flow_run_id"]]
    assert retry["id"] != original
    assert (retry["flow_version_id"], retry["trigger"], retry["retry_flow_run_id"]) == (
        9002,
        "Retry",
        original,
    )


async def test_a_retry_runs_the_same_payload(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    original = await started_run_id(session, instant, payload="<order id='1'/>")
    _, reply = await api(session, instant, "POST", f"/flow-runs/{original}/retry")
    _, metadata = await api(
        session, instant, "GET", f"/payload-metadata?filter[flow_run_id]={reply['flow_run_id']}"
    )
    (record,) = metadata["data"]
    assert record["id"] != instant.starts[0].payload_metadata_id
    async with session.get(
        f"{instant.core_url}/payload-metadata/{record['id']}/download",
        headers={"Authorization": instant.api_key},
    ) as resp:
        assert await resp.read() == b"<order id='1'/>"


async def test_a_retry_is_not_idempotent(
    instant: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    original = await started_run_id(session, instant)
    first = await api(session, instant, "POST", f"/flow-runs/{original}/retry")
    second = await api(session, instant, "POST", f"/flow-runs/{original}/retry")
    assert first[1]["flow_run_id"] != second[1]["flow_run_id"]


@pytest.mark.parametrize("key", [None, "data.id"])
async def test_a_retry_reply_follows_run_id_key(
    session: aiohttp.ClientSession, key: str | None
) -> None:
    async with FakePatchworks(run_id_key=key) as fake:
        seeded = fake.add_flow_run(101)
        _, reply = await api(session, fake, "POST", f"/flow-runs/{seeded['id']}/retry")
        expected = {"message": "Flow initialised."}
        if key is not None:
            expected["data"] = {"id": seeded["id"] + 1}  # type: ignore[assignment]
        assert reply == expected


async def test_a_retry_of_a_seeded_run_has_an_empty_payload(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    seeded = fake.add_flow_run(101, status=3)
    _, reply = await api(session, fake, "POST", f"/flow-runs/{seeded['id']}/retry")
    run = fake.flow_runs[reply["flow_run_id"]]
    assert (run["payload_size"], run["retry_flow_run_id"]) == (0, seeded["id"])


async def test_a_retry_of_an_unknown_run_is_404(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    status, reply = await api(session, fake, "POST", "/flow-runs/9/retry")
    assert (status, reply) == (404, {"message": "No query results for model [FlowRun] 9"})
