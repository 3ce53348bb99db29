"""Every call a user who "starts flows and checks they worked" makes, against the fake.

The fake follows PATCHWORKS_API.md: ``/start`` queues (a run appears after
``queue_delay``), ``/manual`` runs at once, runs log and keep their payloads, replies come
with or without ``data``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from patchworks_async import (
    ConfigurationError,
    FlowRunStatus,
    NotFoundError,
    PatchworksClient,
    PayloadError,
    RateLimits,
    StartStatus,
    ValidationError,
)
from patchworks_async.testing import FakePatchworks

from ..support.clients import client_for

FAST = RateLimits(requests=100_000, per=1.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakePatchworks]:
    async with FakePatchworks(queue_delay=0.05, run_duration=0.05) as server:
        yield server


async def collect(paginator: AsyncIterator[object]) -> list[object]:
    return [item async for item in paginator]


class TestAUsersWholeStory:
    async def test_start_wait_read_the_log_download_the_payload_retry(
        self, fake: FakePatchworks
    ) -> None:
        """Queued start, then the run it became, its log, its payload, and a retry."""
        fake.queue_delay = 30.0  # still queued when first looked at
        async with client_for(fake, rate_limits=FAST) as pw:
            started = await pw.flows.start(101, 9001, {"order": 1})
            assert started.id is not None
            with pytest.raises(NotFoundError):
                await pw.flow_runs.get(started.id)  # queued: not a run yet
            (queued,) = await collect(pw.queue.list())
            assert (queued.flow_id, queued.status) == (101, "pending")
            fake.advance(30.0)  # the queue picks it up
            run = await pw.flow_runs.wait(started.id, timeout=10, poll_interval=0.02)
            assert (run.id, run.status, run.trigger) == (started.id, FlowRunStatus.SUCCESS, "API")
            assert run.started_at is not None and run.started_at.tzinfo is not None

            logs = await collect(pw.flow_runs.logs(run.id, sort="id"))
            assert [line.log_level for line in logs] == ["info", "info", "info"]
            payload_id = next(line.payload_metadata_id for line in logs if line.payload_metadata_id)
            (metadata,) = await collect(pw.payloads.list(filter={"flow_run_id": run.id}))
            assert metadata.id == payload_id
            assert metadata.payload_size == len(b'{"order":1}')
            assert await pw.payloads.download(payload_id) == b'{"order":1}'

            again = await pw.flow_runs.retry(run.id)
            assert again.id is not None and again.id != run.id
            retried = await pw.flow_runs.wait(again.id, timeout=10, poll_interval=0.02)
            assert (retried.trigger, retried.retry_flow_run_id) == ("Retry", run.id)


class TestStarts:
    async def test_a_start_without_a_payload(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            await pw.flows.start(101, 9001)
            await pw.flows.initialise(101, None, raw=True)
        assert [(run.payload_bytes, run.raw) for run in fake.starts] == [(b"", False), (b"", True)]
        standard, raw = fake.received
        assert "payload" not in json.loads(standard.body)
        assert raw.body == b""

    async def test_a_raw_start_sends_the_document_and_keeps_its_bytes(
        self, fake: FakePatchworks
    ) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            started = await pw.flows.start(
                101,
                9001,
                {"orders": [{"id": 1}]},
                raw=True,
                flow_variables={"region": "eu"},
                virtual_environment_id=1,
            )
            run = await pw.flow_runs.wait(started.id, timeout=10, poll_interval=0.02)
            (metadata,) = await collect(pw.payloads.list(filter={"flow_run_id": run.id}))
            downloaded = await pw.payloads.download(metadata.id)
        (request,) = [r for r in fake.received if r.route == "start"]
        assert request.path == "/start/api/v1/flows/101/start/raw/9001"
        assert request.query == {"flow_variables": '{"region":"eu"}', "virtual_environment_id": "1"}
        assert downloaded == request.body == b'{"orders":[{"id":1}]}'
        assert fake.starts[0].flow_variables == {"region": "eu"}

    @pytest.mark.parametrize("payload", ["<order/>", b"not json", None])
    async def test_a_raw_payload_that_is_not_json_is_refused_before_sending(
        self, fake: FakePatchworks, payload: object
    ) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            with pytest.raises(PayloadError):
                await pw.flows.start(101, 9001, payload, raw=True)
        assert fake.received == []

    async def test_flow_variables_as_a_json_string_are_accepted(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            await pw.flows.start(101, 9001, "x", flow_variables='{"region": "us"}')
        assert fake.starts[0].flow_variables == {"region": "us"}

    @pytest.mark.parametrize("key", ["flow_run_id", "run_id", "flowRunId", "id", "data.id"])
    async def test_the_run_id_is_found_under_each_key(self, key: str) -> None:
        async with FakePatchworks(run_id_key=key) as fake, client_for(fake) as pw:
            started = await pw.flows.start(101, 9001, "x")
        assert started.id == fake.starts[0].run_id

    async def test_a_reply_without_a_run_id_is_a_start_that_cannot_be_waited_for(self) -> None:
        async with FakePatchworks(run_id_key=None) as fake, client_for(fake) as pw:
            started = await pw.flows.start(101, 9001, "x")
            assert (started.id, started.message) == (None, "Flow initialised.")
            with pytest.raises(ConfigurationError, match="named no run"):
                await pw.flow_runs.wait(started.id, timeout=1)  # type: ignore[arg-type]
            async with pw.flows.start_many(101, 9001, ["a", "b"]) as results:
                statuses = [(r.status, r.run_id) async for r in results]
        assert statuses == [(StartStatus.STARTED, None)] * 2
        assert len(fake.starts) == 3

    async def test_start_many_raw(self, fake: FakePatchworks) -> None:
        documents = [{"order": n} for n in range(5)]
        async with (
            client_for(fake, rate_limits=FAST) as pw,
            pw.flows.start_many(101, 9001, documents, raw=True) as results,
        ):
            assert {r.status async for r in results} == {StartStatus.STARTED}
        assert sorted(run.payload_bytes for run in fake.starts) == sorted(
            json.dumps(d, separators=(",", ":")).encode() for d in documents
        )


class TestWaitingForAQueuedStart:
    async def test_a_404_for_longer_than_the_grace_is_not_found(self, fake: FakePatchworks) -> None:
        fake.queue_delay = 60.0
        async with client_for(fake, rate_limits=FAST) as pw:
            started = await pw.flows.start(101, 9001, "x")
            assert started.id is not None
            with pytest.raises(NotFoundError):
                await pw.flow_runs.wait(
                    started.id, timeout=5, poll_interval=0.01, not_found_grace=0.05
                )

    async def test_a_start_taken_off_the_queue_never_runs(self, fake: FakePatchworks) -> None:
        fake.queue_delay = 60.0
        async with client_for(fake, rate_limits=FAST) as pw:
            started = await pw.flows.start(101, 9001, "x")
            (queued,) = await collect(pw.queue.list())
            await pw.queue.delete(queued.id)
            fake.advance(60.0)  # when the queue would have picked it up
            assert await collect(pw.queue.list()) == []
            assert started.id is not None
            with pytest.raises(NotFoundError):
                await pw.flow_runs.get(started.id)


class TestFlows:
    @pytest.mark.parametrize("wrapped", [True, False], ids=["data", "bare"])
    async def test_writes_are_read_with_or_without_data(self, wrapped: bool) -> None:
        async with (
            FakePatchworks(wrap_writes_in_data=wrapped) as fake,
            client_for(fake, rate_limits=FAST) as pw,
        ):
            created = await pw.flows.create("Invoices")
            copy = await pw.flows.duplicate(101, 9001)
            version = await pw.flow_versions.create(101, name="Next")
        assert (created.name, copy.name, version.name) == ("Invoices", "Orders to ERP (1)", "Next")
        assert created.id in fake.flows and copy.id in fake.flows

    async def test_an_export_imports_as_it_came(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            bundle = await pw.flows.export(101)
            assert set(bundle) >= {"metadata", "flow", "systems"}
            imported = await pw.flows.import_(bundle)
        (request,) = [r for r in fake.received if r.path.endswith("/flows/import")]
        assert json.loads(request.body) == {**bundle, "as_marketplace": False}
        assert imported.name == bundle["flow"]["name"]
        assert imported.id in fake.flows and imported.id != 101

    async def test_an_import_of_something_that_is_not_a_bundle_is_refused(
        self, fake: FakePatchworks
    ) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            with pytest.raises(ConfigurationError, match="bundle"):
                await pw.flows.import_({"name": "x"})
        assert fake.received == []

    async def test_sparse_fields_and_labels(self, fake: FakePatchworks) -> None:
        fake.add_flow("Labelled", labels=[{"id": 3, "name": "finance"}])
        async with client_for(fake, rate_limits=FAST) as pw:
            flows = await collect(pw.flows.list(filter={"labelled": 3}, fields={"flows": ["id"]}))
            full = await pw.flows.get(flows[0].id)  # type: ignore[attr-defined]
        assert [(flow.id, flow.name) for flow in flows] == [(full.id, None)]  # type: ignore[attr-defined]
        assert full.labels is not None and [label.id for label in full.labels] == [3]


class TestFlowVersions:
    async def test_deploying_a_version_decides_what_a_start_without_one_runs(
        self, fake: FakePatchworks
    ) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            version = await pw.flow_versions.create(101, name="Next")
            deployed = await pw.flow_versions.deploy(101, version.id)
            assert deployed.deployed_at is not None
            assert (await pw.flows.get(101)).deployed_version_id == version.id
            await pw.flows.initialise(101, None, "x")
            assert fake.starts[-1].version_id == version.id
            listed = await collect(pw.flow_versions.list(101))
            assert [v.id for v in listed if v.deployed_at is not None] == [version.id]  # type: ignore[attr-defined]
            await pw.flow_versions.undeploy(101, version.id)
            with pytest.raises(ValidationError):
                await pw.flows.initialise(101, None, "x")
            await pw.flow_versions.delete(101, version.id)
            assert [v.id for v in await collect(pw.flow_versions.list(101))] == [9001, 9002]  # type: ignore[attr-defined]


class TestAccounts:
    async def test_virtual_environments_are_listed(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST) as pw:
            names = [env.name async for env in pw.virtual_environments.list()]
        assert names == ["Staging", "Development"]

    async def test_the_alternative_login_endpoint_takes_the_same_credentials(
        self, fake: FakePatchworks
    ) -> None:
        async with PatchworksClient(
            email=fake.email,
            password=fake.password,
            core_url=fake.urls["core_url"],
            start_url=fake.urls["start_url"],
            login_url=fake.alternative_login_url,
            rate_limits=FAST,
        ) as pw:
            await pw.flows.get(101)
        assert fake.login_count == 1

    async def test_a_tenant_is_named_on_every_request(self, fake: FakePatchworks) -> None:
        async with client_for(fake, rate_limits=FAST, tenant=42) as pw:
            await pw.flows.get(101)
            await pw.flows.start(101, 9001, "x")
        assert [r.header("patchworks-tenant") for r in fake.received] == ["42", "42"]

    @pytest.mark.parametrize("tenant", ["", "4\r\n2", True, 1.5])
    def test_a_tenant_that_cannot_be_a_header_is_refused(self, tenant: object) -> None:
        with pytest.raises(ConfigurationError, match="tenant"):
            PatchworksClient(api_key="k", tenant=tenant)  # type: ignore[arg-type]
