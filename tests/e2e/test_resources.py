"""Every resource operation end to end against FakePatchworks over real sockets."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from patchworks_async import (
    ConfigurationError,
    ConflictError,
    CrossReferenceLookup,
    Flow,
    FlowRun,
    FlowRunStatus,
    LookupValue,
    NotFoundError,
    OutcomeUnknownError,
    RateLimits,
    RunWaitTimeoutError,
    ValidationError,
)
from patchworks_async.testing import FakePatchworks, Fault

from ..support.clients import client_for

FAST = RateLimits(requests=10_000, per=1.0)


@pytest.fixture
async def many_flows() -> FakePatchworks:  # type: ignore[misc]
    async with FakePatchworks(requests_per_window=10_000) as fake:
        fake.add_flows(249)  # 250 with the seeded flow 101
        yield fake


class TestListingFlows:
    async def test_all_flows_stream_page_by_page(self, many_flows: FakePatchworks) -> None:
        async with client_for(many_flows, rate_limits=FAST) as pw:
            ids = [flow.id async for flow in pw.flows.list()]
        assert len(ids) == 250
        assert len(set(ids)) == 250
        pages = [r.query.get("page") for r in many_flows.received]
        assert pages == ["1", "2", "3"]
        assert {r.query.get("per_page") for r in many_flows.received} == {"100"}

    async def test_pages_carry_their_metadata(self, many_flows: FakePatchworks) -> None:
        async with client_for(many_flows, rate_limits=FAST) as pw:
            pages = [page async for page in pw.flows.list(per_page=100).pages()]
        assert [(p.current_page, p.last_page, p.total, len(p.items)) for p in pages] == [
            (1, 3, 250, 100),
            (2, 3, 250, 100),
            (3, 3, 250, 50),
        ]

    async def test_an_exact_multiple_of_per_page_takes_no_extra_request(
        self, many_flows: FakePatchworks
    ) -> None:
        async with client_for(many_flows, rate_limits=FAST) as pw:
            count = sum([1 async for _ in pw.flows.list(per_page=50)])
        assert count == 250
        assert len(many_flows.received) == 5

    async def test_max_items_asks_for_no_more_than_it_needs(
        self, many_flows: FakePatchworks
    ) -> None:
        async with client_for(many_flows, rate_limits=FAST) as pw:
            flows = [flow async for flow in pw.flows.list(max_items=7)]
        assert len(flows) == 7
        assert [(r.query["page"], r.query["per_page"]) for r in many_flows.received] == [("1", "7")]

    async def test_filter_sort_and_include_reach_the_server(self, fake: FakePatchworks) -> None:
        fake.add_flow("Disabled one", enabled_at=None)
        fake.add_flow("Another enabled")
        async with client_for(fake, rate_limits=FAST) as pw:
            flows = [
                flow
                async for flow in pw.flows.list(
                    filter={"enabled": True}, sort="-name", include=["versions"]
                )
            ]
        assert [f.name for f in flows] == ["Orders to ERP", "Another enabled"]
        assert all(f.versions for f in flows)
        assert fake.received[0].query == {
            "filter[enabled]": "true",
            "include": "versions",
            "sort": "-name",
            "per_page": "100",
            "page": "1",
        }

    async def test_an_empty_list_ends_cleanly(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            flows = [flow async for flow in pw.flows.list(filter={"name": "no such flow"})]
        assert flows == []
        assert len(fake.received) == 1

    async def test_a_bad_per_page_is_refused_before_any_request(self, fake: FakePatchworks) -> None:
        async with client_for(fake) as pw:
            with pytest.raises(ConfigurationError):
                pw.flows.list(per_page=500)
        assert fake.received == []

    async def test_breaking_early_sends_nothing_more(self, many_flows: FakePatchworks) -> None:
        async with client_for(many_flows, rate_limits=FAST) as pw:
            async with pw.flows.list(per_page=10, prefetch=True) as flows:
                async for flow in flows:
                    if flow.id > 115:
                        break
            # Nothing of the list was left running to ask for another page.
            left = [t for t in asyncio.all_tasks() if "AsyncPaginator" in repr(t.get_coro())]
            assert left == []
        # Two pages consumed, at most one prefetched (a request on the wire may still land).
        assert len(many_flows.received) <= 3
        assert {r.query.get("page", "1") for r in many_flows.received} <= {"1", "2", "3"}

    async def test_a_prefetched_list_is_the_same_list(self, many_flows: FakePatchworks) -> None:
        async with client_for(many_flows, rate_limits=FAST) as pw:
            plain = [f.id async for f in pw.flows.list(per_page=30)]
            prefetched = [f.id async for f in pw.flows.list(per_page=30, prefetch=True)]
        assert plain == prefetched


class TestFlowOperations:
    async def test_create_update_get_and_delete(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            created = await pw.flows.create("Invoices", description="nightly", prod_flag=True)
            assert isinstance(created, Flow)
            assert fake.received[-1].json() == {
                "flow": {"name": "Invoices", "description": "nightly", "prod_flag": True}
            }
            updated = await pw.flows.update(created.id, name="Invoices v2")
            assert fake.received[-1].json() == {"flow": {"name": "Invoices v2"}}
            assert (updated.name, updated.description) == ("Invoices v2", "nightly")
            assert (await pw.flows.get(created.id)).name == "Invoices v2"
            await pw.flows.delete(created.id)
            with pytest.raises(NotFoundError):
                await pw.flows.get(created.id)

    async def test_update_sends_labels_beside_the_flow_object(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            await pw.flows.update(101, labels=[{"id": 3}], priority=2)
        assert fake.received[-1].json() == {"labels": [{"id": 3}], "flow": {"priority": 2}}

    async def test_create_without_a_name_is_a_validation_error(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            with pytest.raises(ValidationError) as caught:
                await pw.flows.create("  ")
        assert "flow.name" in caught.value.errors

    async def test_export_then_import_makes_a_new_flow(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            document = await pw.flows.export(101)
            assert fake.received[-1].json() == {"flow_id": 101}
            imported = await pw.flows.import_(document, metadata={"source": "test"})
        assert imported.id != 101
        assert imported.name == "Orders to ERP"
        assert fake.received[-1].json()["as_marketplace"] is False

    async def test_duplicate_posts_the_version(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            copy = await pw.flows.duplicate(101, 9002)
        assert fake.received[-1].json() == {"flow_version_id": 9002}
        assert copy.name == "Orders to ERP (1)"  # the copy's name gets an incremental number

    async def test_toggle_layout_direction_answers_no_content(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            assert await pw.flows.toggle_layout_direction(101) is None
        assert fake.received[-1].status == 204
        assert fake.flows[101]["layout_direction"] == "vertical"

    async def test_a_toggle_is_never_resent_after_an_ambiguous_failure(
        self, fake: FakePatchworks
    ) -> None:
        fake.inject(Fault.SERVER_ERROR_AFTER, route="core")
        async with client_for(fake, rate_limits=FAST) as pw:
            with pytest.raises(OutcomeUnknownError):
                await pw.flows.toggle_layout_direction(101)
        assert fake.flows[101]["layout_direction"] == "vertical"  # flipped once, not twice

    async def test_a_create_is_never_resent_after_an_ambiguous_failure(
        self, fake: FakePatchworks
    ) -> None:
        fake.inject(Fault.DROP_AFTER, route="core")
        async with client_for(fake, rate_limits=FAST) as pw:
            with pytest.raises(OutcomeUnknownError):
                await pw.flows.create("Once only")
        assert [f["name"] for f in fake.flows.values()].count("Once only") == 1


class TestFlowRuns:
    async def test_a_started_run_can_be_read_and_waited_for(self) -> None:
        # /start queues (PATCHWORKS_API.md): no queue delay, so the run can be read at once.
        async with (
            FakePatchworks(run_duration=30, queue_delay=0) as fake,
            client_for(fake, rate_limits=FAST) as pw,
        ):
            started = await pw.flows.start(101, 9001, "x")
            assert started.id is not None
            run = await pw.flow_runs.get(started.id)
            assert run.status is FlowRunStatus.STARTED
            assert not run.finished
            fake.advance(29.8)  # the run finishes while wait() polls
            done = await pw.flow_runs.wait(started.id, timeout=5, poll_interval=0.1)
        assert done.status is FlowRunStatus.SUCCESS
        assert done.finished_at is not None
        assert done.started_at is not None
        assert done.started_at.tzinfo is not None  # an ISO date-time became an aware datetime

    async def test_waiting_past_the_timeout_raises_with_the_last_status(self) -> None:
        # /start queues (PATCHWORKS_API.md): no queue delay, so the run is running at once.
        async with (
            FakePatchworks(run_duration=30, queue_delay=0) as fake,
            client_for(fake, rate_limits=FAST) as pw,
        ):
            started = await pw.flows.start(101, 9001, "x")
            assert started.id is not None
            with pytest.raises(RunWaitTimeoutError) as caught:
                await pw.flow_runs.wait(started.id, timeout=0.3, poll_interval=0.1)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.last_status is FlowRunStatus.STARTED
        polls = [r for r in fake.received if r.path.startswith("/core/api/v1/flow-runs/")]
        assert 3 <= len(polls) <= 5

    async def test_an_unknown_status_code_still_gives_a_run(self, fake: FakePatchworks) -> None:
        seeded = fake.add_flow_run(101, status=9)
        async with client_for(fake, rate_limits=FAST) as pw:
            run = await pw.flow_runs.get(seeded["id"])
        assert isinstance(run, FlowRun)
        assert run.status == 9
        assert run.finished

    async def test_runs_list_filters_by_flow_and_status(self, fake: FakePatchworks) -> None:
        other = fake.add_flow("Other")
        for status in (2, 3, 3):
            fake.add_flow_run(101, status=status)
        fake.add_flow_run(other["id"], status=3)
        async with client_for(fake, rate_limits=FAST) as pw:
            runs = [
                run
                async for run in pw.flow_runs.list(
                    filter={"flow_id": 101, "status": [FlowRunStatus.FAILURE]},
                    sort="-started_at",
                )
            ]
        assert [run.status for run in runs] == [FlowRunStatus.FAILURE] * 2
        assert fake.received[-1].query["filter[status]"] == "3"

    async def test_time_filters_are_sent_as_unix_milliseconds(self, fake: FakePatchworks) -> None:
        since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        before = fake.add_flow_run(101, started_at_ms=1767225600000 - 1)
        after = fake.add_flow_run(101, started_at_ms=1767225600000 + 1)
        async with client_for(fake, rate_limits=FAST) as pw:
            runs = [run async for run in pw.flow_runs.list(filter={"started_after": since})]
        assert fake.received[-1].query["filter[started_after]"] == "1767225600000"
        assert [run.id for run in runs] == [after["id"]]
        assert before["id"] not in [run.id for run in runs]


class TestLookups:
    async def test_lookup_life_cycle(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            lookup = await pw.cross_reference_lookups.create("Countries", default_value="??")
            assert isinstance(lookup, CrossReferenceLookup)
            assert fake.received[-1].json() == {"name": "Countries", "default_value": "??"}
            renamed = await pw.cross_reference_lookups.update(lookup.id, name="ISO countries")
            assert renamed.name == "ISO countries"
            assert [x.id async for x in pw.cross_reference_lookups.list()] == [lookup.id]
            await pw.cross_reference_lookups.delete(lookup.id)
            with pytest.raises(NotFoundError):
                await pw.cross_reference_lookups.get(lookup.id)

    async def test_rows_can_be_added_listed_changed_and_removed(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            lookup = await pw.cross_reference_lookups.create("Countries")
            gb = await pw.cross_reference_lookups.add_value(lookup.id, "GB", "United Kingdom")
            await pw.cross_reference_lookups.add_value(lookup.id, "FR", "France")
            assert isinstance(gb, LookupValue)
            assert fake.received[-1].path.endswith(f"/cross-reference-lookups/{lookup.id}/values")
            changed = await pw.cross_reference_lookups.update_value(
                lookup.id, gb.id, right_value="Great Britain"
            )
            assert changed.right_value == "Great Britain"
            rows = [row async for row in pw.cross_reference_lookups.values(lookup.id)]
            assert {(r.left_value, r.right_value) for r in rows} == {
                ("GB", "Great Britain"),
                ("FR", "France"),
            }
            await pw.cross_reference_lookups.delete_value(lookup.id, gb.id)
            rows = [row async for row in pw.cross_reference_lookups.values(lookup.id)]
            assert [r.left_value for r in rows] == ["FR"]

    async def test_a_duplicate_left_value_is_a_conflict(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            lookup = await pw.cross_reference_lookups.create("Countries")
            await pw.cross_reference_lookups.add_value(lookup.id, "GB", "United Kingdom")
            with pytest.raises(ConflictError):
                await pw.cross_reference_lookups.add_value(lookup.id, "GB", "Britain")

    async def test_updates_need_a_field(self, fake: FakePatchworks) -> None:
        async with client_for(fake) as pw:
            with pytest.raises(ConfigurationError):
                await pw.cross_reference_lookups.update(1)
            with pytest.raises(ConfigurationError):
                await pw.flows.update(101)
        assert fake.received == []
