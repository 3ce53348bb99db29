"""The fake's flow runs: the runs starts become, seeded runs, and ``/flow-runs``.

A client that starts a flow then waits for its run to finish, so every run a start
becomes stays STARTED for ``run_duration`` seconds and then finishes with
``run_outcome`` (``_lifecycle`` drives that on the lazy ``Timeline``: no timer outlives a
test). A run is served as the reference describes it: ``started_at`` and ``finished_at``
are ISO 8601 strings, ``trigger`` one of the documented values (``API``, ``Manual``,
``Retry``...), and ``retry_flow_run_id`` names the run a retry retried.

The list accepts every documented filter and include; the cheap ones are modelled
(``flowRunLogs``, ``errorWarningLogs``, ``retriedFlowRun``...), the rest (``metrics``,
``cpuTime``...) are accepted and add nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from ._checks import as_id
from ._filters import boolean_filter, day_filter, exact_filter, int_filter, moment_bound_filter
from ._flows import Flows
from ._laravel_query import ListSpec, Predicate
from ._logs import RunLogs
from ._resources import (
    CoreRequest,
    IdSequence,
    Reply,
    iso_timestamp,
    list_reply,
    not_found,
    show_reply,
)
from ._switches import RUN_STARTED, Switches
from ._timeline import Timeline

__all__ = ["TRIGGERS", "FlowRuns"]

TRIGGERS: Final = (
    "API",
    "Manual",
    "Router",
    "Webhook",
    "Schedule",
    "Shape",
    "Retry",
    "Event",
    "Callback",
)
"""Every documented ``trigger``; the fake's own runs use ``API``, ``Manual`` and ``Retry``."""

_FIRST_RUN_ID: Final = 500000
_RUN_INCLUDES: Final = (
    "flow",
    "flowVersion",
    "flowVersion.steps",
    "flowRunLogs",
    "errorWarningLogs",
    "retriedFlowRun",
)
_SILENT_RUN_INCLUDES: Final = (
    "trackedData",
    "metrics",
    "cpuTime",
    "payloadSize",
    "operationsSent",
    "operationsReceived",
)


def _run_record(
    run_id: int,
    flow_id: int,
    version_id: int | None,
    status: int,
    trigger: str,
    started_at: str,
    payload_size: int,
) -> dict[str, Any]:
    """A flow run as the API serves it."""
    return {
        "id": run_id,
        "flow_id": flow_id,
        "flow_version_id": version_id,
        "status": status,
        "trigger": trigger,
        "started_at": started_at,
        "finished_at": None,
        "payload_size": payload_size,
        "user_id": None,
        "virtual_environment_id": None,
        "retry_flow_run_id": None,
        "has_warnings": False,
    }


class FlowRuns:
    """Every flow run of one fake, and the ``/flow-runs`` routes."""

    def __init__(
        self,
        flows: Flows,
        logs: RunLogs,
        timeline: Timeline,
        switches: Switches,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """No runs yet.

        Args:
            flows: The flows the runs belong to (seeding checks them; includes show them).
            logs: The run logs, for the log includes.
            timeline: Applies due pickups and finishes before every read.
            switches: ``run_duration``, for the ``finished_at`` of seeded runs.
            wall: Clock for timestamps (Unix seconds); injectable for tests.
        """
        self._flows = flows
        self._logs = logs
        self._timeline = timeline
        self._switches = switches
        self._wall = wall
        self._runs: dict[int, dict[str, Any]] = {}
        self._ids = IdSequence(_FIRST_RUN_ID)
        self._spec = ListSpec(
            resource="flow_runs",
            filters={
                "flow_id": int_filter("flow_id"),
                "flow_version_id": int_filter("flow_version_id"),
                "status": int_filter("status"),
                "trigger": exact_filter("trigger"),
                "started_after": moment_bound_filter("started_at", lower=True),
                "started_before": moment_bound_filter("started_at", lower=False),
                "started_on": day_filter("started_at"),
                "user_id": int_filter("user_id"),
                "virtual_environment_id": int_filter("virtual_environment_id"),
                "search": self._search,
                "retried": self._retried,
                "has_warnings": boolean_filter(lambda run: bool(run.get("has_warnings"))),
            },
            sorts=("started_at", "id"),
            includes=_RUN_INCLUDES,
            silent_includes=_SILENT_RUN_INCLUDES,
        )

    @property
    def runs(self) -> dict[int, dict[str, Any]]:
        """Every run, brought up to date first (due pickups and finishes applied)."""
        self._timeline.settle()
        return self._runs

    def new_run_id(self) -> int:
        """Allocate the next flow run id (shared by starts, retries and seeded runs)."""
        return self._ids.allocate(self._runs)

    def create(
        self,
        run_id: int,
        flow_id: int,
        version_id: int | None,
        *,
        trigger: str,
        started_at: str,
        payload_size: int,
        **fields: Any,
    ) -> dict[str, Any]:
        """A new STARTED run under an id from ``new_run_id``; ``fields`` override."""
        run = _run_record(
            run_id, flow_id, version_id, RUN_STARTED, trigger, started_at, payload_size
        )
        run.update(fields)
        self._runs[run_id] = run
        return run

    def finish(self, run_id: int, outcome: int, finished_at: str) -> bool:
        """Finish a STARTED run; a run gone or changed by hand is left alone (False)."""
        run = self._runs.get(run_id)
        if run is None or run.get("status") != RUN_STARTED:
            return False
        run["status"] = outcome
        run["finished_at"] = finished_at
        return True

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
        flow = self._flows.flows.get(flow_id)
        if flow is None:
            raise ValueError(f"flow {flow_id} does not exist")
        if version_id is None:
            versions = self._flows.flow_versions(flow_id)
            version_id = flow.get("deployed_version_id") or (
                versions[-1]["id"] if versions else None
            )
        elif self._flows.versions.get(version_id, {}).get("flow_id") != flow_id:
            raise ValueError(f"version {version_id} is not a version of flow {flow_id}")
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError(f"status must be an int, got {status!r}")
        raw_id = fields.pop("id", None)
        if raw_id is None:
            run_id = self.new_run_id()
        else:
            run_id = int(raw_id)
            if run_id in self._runs:
                raise ValueError(f"flow run id {run_id} is already used")
            self._ids.claim(run_id)
        started = self._wall() if started_at_ms is None else int(started_at_ms) / 1000
        run = _run_record(
            run_id, flow_id, version_id, status, "API", iso_timestamp(started), payload_size=0
        )
        if status != RUN_STARTED:
            run["finished_at"] = iso_timestamp(started + self._switches.run_duration)
        run.update(fields)
        self._runs[run_id] = run
        return run

    # ------------------------------------------------------------------ filters and includes

    def _search(self, _name: str, raw: str) -> Predicate:
        """``search``: runs whose id or flow name contains the text (case-insensitive)."""
        needle = raw.casefold()
        flows = self._flows.flows
        return lambda run: (
            needle in str(run.get("id"))
            or needle in str(flows.get(run.get("flow_id") or -1, {}).get("name", "")).casefold()
        )

    def _retried(self, name: str, raw: str) -> Predicate:
        """``retried``: runs that a later run retried (true), or that none did (false)."""
        retried = {run.get("retry_flow_run_id") for run in self._runs.values()} - {None}
        return boolean_filter(lambda run: run.get("id") in retried)(name, raw)

    def _include_relations(self, data: list[dict[str, Any]], includes: frozenset[str]) -> None:
        """Add the modelled includes to each run (null when the record has since gone)."""
        logs = self._logs.by_run(item["id"] for item in data)
        for item in data:
            stored = self._runs.get(item["id"], item)
            if "flow" in includes:
                flow = self._flows.flows.get(stored.get("flow_id") or -1)
                item["flow"] = dict(flow) if flow is not None else None
            if includes & {"flowVersion", "flowVersion.steps"}:
                version = self._flows.versions.get(stored.get("flow_version_id") or -1)
                item["flow_version"] = dict(version) if version is not None else None
                if version is not None and "flowVersion.steps" in includes:
                    item["flow_version"]["steps"] = []  # the fake's flows have no steps
            if "flowRunLogs" in includes:
                item["flow_run_logs"] = [dict(log) for log in logs[item["id"]]]
            if "errorWarningLogs" in includes:
                item["error_warning_logs"] = [
                    dict(log) for log in logs[item["id"]] if log["log_level"] != "info"
                ]
            if "retriedFlowRun" in includes:
                retried = self._runs.get(stored.get("retry_flow_run_id") or -1)
                item["retried_flow_run"] = dict(retried) if retried is not None else None

    # ------------------------------------------------------------------ routes

    def find(self, raw_id: str | None) -> dict[str, Any] | None:
        """The run a path segment names, brought up to date; None if there is none (yet)."""
        run_id = as_id(raw_id)
        return self.runs.get(run_id) if run_id is not None else None

    def list_flow_runs(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs``."""
        return list_reply(request, self._spec, self.runs.values(), self._include_relations)

    def get_flow_run(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs/{run}``: a queued start is no run yet (404) until picked up."""
        run = self.find(request.params.get("run_id"))
        if run is None:
            return not_found("FlowRun", request.params["run_id"])
        return show_reply(request, run, self._spec, self._include_relations)
