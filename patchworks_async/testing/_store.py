"""The fake's Core API as one object: every resource and route, without any HTTP.

``FakePatchworks`` owns the sockets, auth and throttle; the ``Store`` owns the Core API
data and routes, each resource in its own module and this class composing them: flows
and their versions (``_flows``, ``_versions``), runs (``_flow_runs``) with their logs
(``_logs``), payloads (``_payloads``) and queue (``_queue``), tied together by
``_lifecycle`` on the lazy ``_timeline``; virtual environments (``_environments``) and
lookups (``_lookups``). It is the one handle the server needs: live dicts for tests to
read and edit, seeding, the start hook, and every Core API route by the name
``_routes.ROUTES`` gives it. Every route is a plain method (``CoreRequest`` in, ``Reply``
out), so the whole API can be driven synchronously.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._environments import VirtualEnvironments
from ._flow_runs import FlowRuns
from ._flows import Flows
from ._lifecycle import RunLifecycle, Started, StartOrder
from ._logs import RunLogs
from ._lookups import Lookups
from ._payloads import Payloads
from ._queue import RunQueue
from ._resources import CoreRequest, CoreRoute, Reply
from ._switches import Switches
from ._timeline import Timeline

__all__ = ["Store"]


class Store:
    """All Core API state and route logic of one ``FakePatchworks``.

    Attributes:
        switches: The behaviour switches every resource reads (settable through
            ``FakePatchworks``; checked there).
    """

    def __init__(
        self,
        *,
        run_duration: float = 0.5,
        run_outcome: int = 2,
        queue_delay: float = 0.5,
        run_id_key: str | None = "flow_run_id",
        wrap_writes_in_data: bool = True,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        """Compose the resources, which share the clocks and the switches.

        Args:
            run_duration: Seconds a run stays STARTED before it finishes.
            run_outcome: The status a run finishes with (2 to 5).
            queue_delay: Seconds a ``/start`` waits in the queue before it runs.
            run_id_key: Where start and retry replies put the run id.
            wrap_writes_in_data: Whether write replies wrap their record in ``data``.
            wall: Clock for timestamps (Unix seconds); injectable for tests.
            mono: Clock deciding when queued starts run and runs finish; injectable.
        """
        self._ahead = 0.0  # seconds the data's clocks run ahead of the real ones (advance)
        real_wall, real_mono = wall, mono

        def wall_ahead() -> float:
            return real_wall() + self._ahead

        def mono_ahead() -> float:
            return real_mono() + self._ahead

        wall = wall_ahead

        self.switches = Switches(
            run_id_key=run_id_key,
            wrap_writes_in_data=wrap_writes_in_data,
            queue_delay=queue_delay,
            run_duration=run_duration,
            run_outcome=run_outcome,
        )
        timeline = Timeline(mono_ahead)
        self._flows = Flows(self.switches, wall=wall)
        self._logs = RunLogs(lambda run_id: run_id in self._runs.runs)
        self._runs = FlowRuns(self._flows, self._logs, timeline, self.switches, wall=wall)
        self._payloads = Payloads(self._logs.logs, timeline.settle)
        self._queue = RunQueue(
            self._flows.flows, self._flows.versions, self._payloads.records, timeline
        )
        self._lifecycle = RunLifecycle(
            runs=self._runs,
            logs=self._logs,
            payloads=self._payloads,
            queue=self._queue,
            timeline=timeline,
            switches=self.switches,
            wall=wall,
        )
        self._environments = VirtualEnvironments()
        self._lookups = Lookups(wall=wall)
        self._timeline = timeline

    def advance(self, seconds: float) -> None:
        """Move the data's clocks on: what was due within ``seconds`` happens now."""
        self._ahead += seconds
        self._timeline.settle()

    # ------------------------------------------------------------------ data

    @property
    def flows(self) -> dict[int, dict[str, Any]]:
        """Flows by id; a live dict."""
        return self._flows.flows

    @property
    def versions(self) -> dict[int, dict[str, Any]]:
        """Flow versions by id; a live dict."""
        return self._flows.versions

    @property
    def flow_runs(self) -> dict[int, dict[str, Any]]:
        """Every run, brought up to date first (due pickups and finishes applied)."""
        return self._runs.runs

    @property
    def flow_run_logs(self) -> dict[int, dict[str, Any]]:
        """Every run log by id, brought up to date first; a live dict."""
        self._timeline.settle()
        return self._logs.logs

    @property
    def payload_metadata(self) -> dict[int, dict[str, Any]]:
        """Payload metadata by id; a live dict."""
        return self._payloads.records

    @property
    def payloads(self) -> dict[str, tuple[bytes, str]]:
        """Stored payload bytes and content type by ``payload_store_reference``."""
        return self._payloads.blobs

    @property
    def scheduled_flows(self) -> dict[int, dict[str, Any]]:
        """Queued starts not picked up yet, brought up to date first; a live dict."""
        self._timeline.settle()
        return self._queue.items

    @property
    def virtual_environments(self) -> dict[int, dict[str, Any]]:
        """Virtual environments by id; a live dict."""
        return self._environments.environments

    @property
    def lookups(self) -> dict[int, dict[str, Any]]:
        """Cross-reference lookups by id; a live dict."""
        return self._lookups.lookups

    @property
    def lookup_values(self) -> dict[int, dict[str, Any]]:
        """Lookup rows by id; a live dict."""
        return self._lookups.values

    # ------------------------------------------------------------------ seeding and starts

    def add_flow(
        self,
        name: str,
        *,
        versions: Iterable[int] = (),
        deployed_version: int | None = None,
        labels: Iterable[str | Mapping[str, Any]] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed one flow and its versions; see ``FakePatchworks.add_flow``."""
        return self._flows.add_flow(
            name, versions=versions, deployed_version=deployed_version, labels=labels, **fields
        )

    def add_flows(
        self, count: int, *, name_prefix: str = "Flow", deployed: bool = True
    ) -> list[dict[str, Any]]:
        """Seed ``count`` flows with one version each; see ``FakePatchworks.add_flows``."""
        return self._flows.add_flows(count, name_prefix=name_prefix, deployed=deployed)

    def add_flow_run(
        self,
        flow_id: int,
        *,
        status: int = 2,
        started_at_ms: int | None = None,
        version_id: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed a run that keeps ``status`` as given; see ``FakePatchworks.add_flow_run``."""
        return self._runs.add_flow_run(
            flow_id, status=status, started_at_ms=started_at_ms, version_id=version_id, **fields
        )

    def add_lookup(
        self, name: str, *, rows: Iterable[tuple[str, str]] = (), **fields: Any
    ) -> dict[str, Any]:
        """Seed a lookup and its rows; see ``FakePatchworks.add_lookup``."""
        return self._lookups.add_lookup(name, rows=rows, **fields)

    def add_virtual_environment(self, name: str, **fields: Any) -> dict[str, Any]:
        """Seed a virtual environment; see ``FakePatchworks.add_virtual_environment``."""
        return self._environments.add(name, **fields)

    def clear_runs(self) -> None:
        """Forget every run, queued start, run log and payload, and what was due to happen.

        Flows, versions, lookups and environments stay; ids are not reused.
        """
        self._timeline.clear()
        for records in (
            self._runs.runs,
            self._queue.items,
            self._logs.logs,
            self._payloads.records,
            self._payloads.blobs,
        ):
            records.clear()

    def start(self, order: StartOrder) -> Started:
        """Store an accepted start's payload, then queue it or run it; see ``_lifecycle``."""
        return self._lifecycle.start(order)

    # ------------------------------------------------------------------ routes

    def routes(self) -> dict[str, CoreRoute]:
        """Every Core API route, by the handler name ``_routes.ROUTES`` gives it.

        The map holds the resources' own methods, not the delegates below, so that a
        request served over HTTP costs no extra call.
        """
        flows, versions, runs = self._flows, self._flows.version_routes, self._runs
        lookups = self._lookups
        return {
            route.__name__: route
            for route in (
                flows.list_flows,
                flows.create_flow,
                flows.export_flow,
                flows.import_flow,
                flows.get_flow,
                flows.update_flow,
                flows.delete_flow,
                flows.duplicate_flow,
                flows.toggle_layout_direction,
                versions.list_flow_versions,
                versions.create_flow_version,
                versions.get_flow_version,
                versions.update_flow_version,
                versions.delete_flow_version,
                runs.list_flow_runs,
                runs.get_flow_run,
                self._lifecycle.retry_flow_run,
                self._logs.list_flow_run_logs,
                self._payloads.list_payload_metadata,
                self._payloads.download_payload,
                self._queue.list_scheduled_flows,
                self._queue.delete_scheduled_flow,
                self._environments.list_virtual_environments,
                lookups.list_lookups,
                lookups.create_lookup,
                lookups.get_lookup,
                lookups.update_lookup,
                lookups.delete_lookup,
                lookups.list_lookup_values,
                lookups.create_lookup_value,
                lookups.update_lookup_value,
                lookups.delete_lookup_value,
            )
        }

    def route(self, name: str, request: CoreRequest) -> Reply:
        """Answer ``request`` with the route named ``name``, to drive the API synchronously.

        Raises:
            KeyError: If no route has that name.
        """
        return self.routes()[name](request)

    # The original routes again as methods of their own (``route`` serves every one).

    def list_flows(self, request: CoreRequest) -> Reply:
        """``GET /flows``."""
        return self._flows.list_flows(request)

    def get_flow(self, request: CoreRequest) -> Reply:
        """``GET /flows/{flow}``."""
        return self._flows.get_flow(request)

    def create_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows``."""
        return self._flows.create_flow(request)

    def update_flow(self, request: CoreRequest) -> Reply:
        """``PUT /flows/{flow}``."""
        return self._flows.update_flow(request)

    def delete_flow(self, request: CoreRequest) -> Reply:
        """``DELETE /flows/{flow}``."""
        return self._flows.delete_flow(request)

    def export_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/export``."""
        return self._flows.export_flow(request)

    def import_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/import``."""
        return self._flows.import_flow(request)

    def duplicate_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/{flow}/duplicate``."""
        return self._flows.duplicate_flow(request)

    def toggle_layout_direction(self, request: CoreRequest) -> Reply:
        """``PATCH /flows/{flow}/layout-direction``."""
        return self._flows.toggle_layout_direction(request)

    def list_flow_runs(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs``."""
        return self._runs.list_flow_runs(request)

    def get_flow_run(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs/{run}``."""
        return self._runs.get_flow_run(request)

    def list_lookups(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups``."""
        return self._lookups.list_lookups(request)

    def get_lookup(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups/{id}``."""
        return self._lookups.get_lookup(request)

    def create_lookup(self, request: CoreRequest) -> Reply:
        """``POST /cross-reference-lookups``."""
        return self._lookups.create_lookup(request)

    def update_lookup(self, request: CoreRequest) -> Reply:
        """``PUT /cross-reference-lookups/{id}``."""
        return self._lookups.update_lookup(request)

    def delete_lookup(self, request: CoreRequest) -> Reply:
        """``DELETE /cross-reference-lookups/{id}``."""
        return self._lookups.delete_lookup(request)

    def list_lookup_values(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups/{id}/values``."""
        return self._lookups.list_lookup_values(request)

    def create_lookup_value(self, request: CoreRequest) -> Reply:
        """``POST /cross-reference-lookups/{id}/values``."""
        return self._lookups.create_lookup_value(request)

    def update_lookup_value(self, request: CoreRequest) -> Reply:
        """``PUT /cross-reference-lookups/{id}/values/{valueID}``."""
        return self._lookups.update_lookup_value(request)

    def delete_lookup_value(self, request: CoreRequest) -> Reply:
        """``DELETE /cross-reference-lookups/{id}/values/{valueID}``."""
        return self._lookups.delete_lookup_value(request)
