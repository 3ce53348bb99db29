"""The fake's Core API as one object: flows, flow runs and lookups, without any HTTP.

``FakePatchworks`` owns the sockets, auth and throttle; the ``Store`` owns the Core API
data and routes, each resource in its own module (``_flows``, ``_flow_runs``,
``_lookups``) and this class composing them. It is the one handle the server needs: live
dicts for tests to read and edit, seeding, the start hook that creates a run, and every
Core API route by the name ``_routes.ROUTES`` gives it. Every route is a plain method
(``CoreRequest`` in, ``Reply`` out), so the whole API can be driven synchronously.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ._flow_runs import FlowRuns
from ._flows import Flows
from ._lookups import Lookups
from ._resources import CoreRequest, CoreRoute, Reply

__all__ = ["Store"]


class Store:
    """All Core API state and route logic of one ``FakePatchworks``.

    Args:
        run_duration: Seconds a started run stays STARTED before it finishes.
        run_outcome: The status a started run finishes with (2 to 5).
        wall: Clock for timestamps (Unix seconds); injectable for tests.
        mono: Clock deciding when runs finish; injectable for tests.
    """

    def __init__(
        self,
        *,
        run_duration: float = 0.5,
        run_outcome: int = 2,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        """Compose the resources, which share the clocks (runs also read the flows)."""
        self._flows = Flows(wall=wall)
        self._runs = FlowRuns(
            self._flows, run_duration=run_duration, run_outcome=run_outcome, wall=wall, mono=mono
        )
        self._lookups = Lookups(wall=wall)

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
        """Every run, brought up to date first (runs past their duration have finished)."""
        return self._runs.runs

    @property
    def lookups(self) -> dict[int, dict[str, Any]]:
        """Cross-reference lookups by id; a live dict."""
        return self._lookups.lookups

    @property
    def lookup_values(self) -> dict[int, dict[str, Any]]:
        """Lookup rows by id; a live dict."""
        return self._lookups.values

    @property
    def run_duration(self) -> float:
        """Seconds a started run stays STARTED; applies to later starts."""
        return self._runs.run_duration

    @run_duration.setter
    def run_duration(self, value: float) -> None:
        self._runs.run_duration = value

    @property
    def run_outcome(self) -> int:
        """The status later runs finish with."""
        return self._runs.run_outcome

    @run_outcome.setter
    def run_outcome(self, value: int) -> None:
        self._runs.run_outcome = value

    # ------------------------------------------------------------------ seeding and starts

    def add_flow(
        self,
        name: str,
        *,
        versions: Iterable[int] = (),
        deployed_version: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed one flow and its versions; see ``FakePatchworks.add_flow``."""
        return self._flows.add_flow(
            name, versions=versions, deployed_version=deployed_version, **fields
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

    def new_run_id(self) -> int:
        """Allocate the next flow run id (shared by starts and seeded runs)."""
        return self._runs.new_run_id()

    def record_start(
        self,
        run_id: int,
        flow_id: int,
        version_id: int,
        *,
        manual: bool,
        payload_size: int,
        at: float,
    ) -> dict[str, Any]:
        """Create the STARTED run of an accepted start; see ``FlowRuns.record_start``."""
        return self._runs.record_start(
            run_id, flow_id, version_id, manual=manual, payload_size=payload_size, at=at
        )

    # ------------------------------------------------------------------ routes

    def routes(self) -> dict[str, CoreRoute]:
        """Every Core API route, by the handler name ``_routes.ROUTES`` gives it.

        The map holds the resources' own methods, not the delegates below, so that a
        request served over HTTP costs no extra call.
        """
        flows, runs, lookups = self._flows, self._runs, self._lookups
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
                runs.list_flow_runs,
                runs.get_flow_run,
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

    # Each route again as a method of its own, to drive the API synchronously by name.

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
