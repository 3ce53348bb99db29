"""The fake's switches set together: ``configure``, and ``/_fake/settings`` for another process."""

from __future__ import annotations

import aiohttp
import pytest

from patchworks_async import PatchworksClient
from patchworks_async.testing import FakePatchworks, fake_patchworks_process

from .calls import api, started_run_id


def test_configure_sets_several_switches_at_once() -> None:
    fake = FakePatchworks()
    switches = fake.configure(queue_delay=0, run_duration=2, run_id_key=None)
    assert switches == {
        "run_id_key": None,
        "wrap_writes_in_data": True,
        "queue_delay": 0.0,
        "run_duration": 2.0,
        "run_outcome": 2,
        "co_tenant": 0.0,
    }
    assert (fake.queue_delay, fake.run_duration, fake.run_id_key) == (0.0, 2.0, None)


@pytest.mark.parametrize(
    "switches",
    [{"queue_delay": 0, "run_outcome": 9}, {"queue_delay": 0, "colour": "red"}],
)
def test_configure_changes_nothing_when_one_switch_is_bad(switches: dict[str, object]) -> None:
    fake = FakePatchworks()
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        fake.configure(**switches)
    assert fake.queue_delay == 0.5


async def test_the_settings_admin_route_configures_the_fake(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    url = f"{fake.base_url}/_fake/settings"
    async with session.post(url, json={"queue_delay": 0}) as resp:
        assert (resp.status, (await resp.json())["queue_delay"]) == (200, 0.0)
    run_id = await started_run_id(session, fake)
    assert (await api(session, fake, "GET", f"/flow-runs/{run_id}"))[0] == 200
    async with session.post(url, json={"run_outcome": 1}) as resp:
        assert resp.status == 400
    assert fake.received[-1].path.startswith("/core/")  # admin calls are not recorded


async def test_a_remote_fake_can_be_configured() -> None:
    async with fake_patchworks_process() as remote:
        assert (await remote.configure(queue_delay=0))["queue_delay"] == 0.0
        with pytest.raises(ValueError, match="queue_delay"):
            await remote.configure(queue_delay=-1)


async def test_clear_runs_forgets_runs_queue_logs_and_payloads(
    fake: FakePatchworks, session: aiohttp.ClientSession
) -> None:
    manual = await started_run_id(session, fake, "flows/101/manual")
    queued = await started_run_id(session, fake)
    fake.clear_runs()
    assert (fake.flow_runs, fake.scheduled_flows, fake.flow_run_logs) == ({}, {}, {})
    assert (fake.payload_metadata, fake.payloads) == ({}, {})
    fake.queue_delay = 0
    assert (await api(session, fake, "GET", f"/flow-runs/{queued}"))[0] == 404  # never runs
    assert await started_run_id(session, fake) > max(manual, queued)  # ids are not reused
    assert list(fake.flows) == [101]


async def test_advance_moves_the_queue_and_the_runs_on_without_waiting() -> None:
    async with FakePatchworks(queue_delay=60, run_duration=60) as fake:
        async with PatchworksClient(api_key=fake.api_key, **fake.urls) as pw:
            started = await pw.flows.start(101, 9001, "x")
            assert started.id is not None
            assert fake.scheduled_flows and started.id not in fake.flow_runs
            fake.advance(60)
            assert not fake.scheduled_flows
            assert fake.flow_runs[started.id]["status"] == 1
            fake.advance(60)
            assert (await pw.flow_runs.get(started.id)).finished
