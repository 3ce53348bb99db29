"""The fake's flow runs: the run each start creates, seeded runs, and ``/flow-runs``.

A client that starts a flow then waits for its run to finish, so every accepted start
creates a run that stays STARTED for ``run_duration`` seconds and then finishes with
``run_outcome``. Runs finish lazily: a run remembers when it is due on the monotonic
clock and is brought up to date whenever runs are read, so no timer outlives a test.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from typing import Any, Final

from ._checks import as_id
from ._flows import Flows
from ._laravel_query import ListSpec, exact_filter, int_filter, int_range_filter
from ._resources import CoreRequest, Reply, list_reply, not_found, show_reply

__all__ = ["RUN_STARTED", "FlowRuns", "check_run_duration", "check_run_outcome"]

RUN_STARTED: Final = 1
"""The status of a run that has not finished yet."""

_RUN_OUTCOMES: Final = range(2, 6)
_FIRST_RUN_ID: Final = 500001

_RUN_SPEC: Final = ListSpec(
    resource="flow_runs",
    filters={
        "flow_id": int_filter("flow_id"),
        "flow_version_id": int_filter("flow_version_id"),
        "status": int_filter("status"),
        "trigger": exact_filter("trigger"),
        "started_after": int_range_filter("started_at", lower=True),
        "started_before": int_range_filter("started_at", lower=False),
    },
    sorts=("started_at", "id"),
    includes=("flow", "flowVersion"),
)


def check_run_duration(value: float) -> float:
    """Refuse run durations that are negative or not finite (0 finishes on the next read).

    Raises:
        ValueError: If ``value`` is not a finite number >= 0.
    """
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"run_duration must be a finite number >= 0, got {value!r}")
    return float(value)


def check_run_outcome(value: int) -> int:
    """Refuse a final status that is not one of the finished codes 2 to 5.

    Raises:
        ValueError: If ``value`` is not an int from 2 to 5.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value not in _RUN_OUTCOMES:
        raise ValueError(f"run_outcome must be an int from 2 to 5, got {value!r}")
    return value


def _run_record(
    run_id: int,
    flow_id: int,
    version_id: int | None,
    status: int,
    trigger: str,
    started_at_ms: int,
    payload_size: int,
) -> dict[str, Any]:
    """A flow run as the API serves it; times are Unix milliseconds."""
    return {
        "id": run_id,
        "flow_id": flow_id,
        "flow_version_id": version_id,
        "status": status,
        "trigger": trigger,
        "started_at": started_at_ms,
        "finished_at": None,
        "payload_size": payload_size,
    }


class FlowRuns:
    """Every flow run of one fake, and the ``/flow-runs`` routes.

    Attributes:
        run_duration: Seconds a started run stays STARTED; applies to later starts.
        run_outcome: The status later runs finish with (2 to 5).
    """

    def __init__(
        self,
        flows: Flows,
        *,
        run_duration: float = 0.5,
        run_outcome: int = 2,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        """No runs yet.

        Args:
            flows: The flows the runs belong to (seeding checks them; includes show them).
            run_duration: Seconds a started run stays STARTED before it finishes.
            run_outcome: The status a started run finishes with (2 to 5).
            wall: Clock for timestamps (Unix seconds); injectable for tests.
            mono: Clock deciding when runs finish; injectable for tests.
        """
        self._flows = flows
        self.run_duration = run_duration
        self.run_outcome = run_outcome
        self._wall = wall
        self._mono = mono
        self._runs: dict[int, dict[str, Any]] = {}
        # (due on the monotonic clock, run id, final status, finished_at in Unix ms)
        self._pending: list[tuple[float, int, int, int]] = []
        self._next_run_id = _FIRST_RUN_ID

    @property
    def runs(self) -> dict[int, dict[str, Any]]:
        """Every run, brought up to date first (runs past their duration have finished)."""
        self.settle()
        return self._runs

    def settle(self) -> None:
        """Finish every started run whose time has come: O(runs finishing), not O(runs)."""
        now = self._mono()
        while self._pending and self._pending[0][0] <= now:
            _, run_id, outcome, finished_at = heapq.heappop(self._pending)
            run = self._runs.get(run_id)
            if run is not None and run.get("status") == RUN_STARTED:
                run["status"] = outcome
                run["finished_at"] = finished_at

    def new_run_id(self) -> int:
        """Allocate the next flow run id (shared by starts and seeded runs)."""
        run_id = self._next_run_id
        self._next_run_id += 1
        return run_id

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
        """Create the STARTED run of an accepted start, due to finish ``run_duration`` later.

        Args:
            run_id: The id the start reply carries.
            flow_id: The flow started.
            version_id: The version started.
            manual: True for the manual-initialise route (trigger ``manual``).
            payload_size: Bytes of the payload string, UTF-8 encoded.
            at: Monotonic arrival time of the start: the run's clock starts there.
        """
        started = int(self._wall() * 1000)
        trigger = "manual" if manual else "api"
        run = _run_record(run_id, flow_id, version_id, RUN_STARTED, trigger, started, payload_size)
        self._runs[run_id] = run
        finished = started + round(self.run_duration * 1000)
        heapq.heappush(self._pending, (at + self.run_duration, run_id, self.run_outcome, finished))
        return run

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
            self._next_run_id = max(self._next_run_id, run_id + 1)
        started = int(self._wall() * 1000) if started_at_ms is None else int(started_at_ms)
        finished = None if status == RUN_STARTED else started + round(self.run_duration * 1000)
        run = _run_record(run_id, flow_id, version_id, status, "api", started, 0)
        run["finished_at"] = finished
        run.update(fields)
        self._runs[run_id] = run
        return run

    def _include_relations(self, data: list[dict[str, Any]], includes: frozenset[str]) -> None:
        """Add ``flow`` and ``flow_version`` to each run (null when since deleted)."""
        for item in data:
            stored = self._runs.get(item["id"], item)
            if "flow" in includes:
                flow = self._flows.flows.get(stored.get("flow_id") or -1)
                item["flow"] = dict(flow) if flow is not None else None
            if "flowVersion" in includes:
                version = self._flows.versions.get(stored.get("flow_version_id") or -1)
                item["flow_version"] = dict(version) if version is not None else None

    def list_flow_runs(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs``."""
        self.settle()
        return list_reply(request, _RUN_SPEC, self._runs.values(), self._include_relations)

    def get_flow_run(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs/{run}``."""
        self.settle()
        run_id = as_id(request.params.get("run_id"))
        run = self._runs.get(run_id) if run_id is not None else None
        if run is None:
            return not_found("FlowRun", request.params["run_id"])
        return show_reply(request, run, _RUN_SPEC, self._include_relations)
