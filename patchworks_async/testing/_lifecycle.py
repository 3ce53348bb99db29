"""How a start becomes a run and a run ends: the queue, the run, its logs, its retry.

One start touches every run resource, in the order the real service would:

1. the payload is stored and described (``_payloads``), naming the run it will become;
2. ``/start`` queues (``_queue``) and is picked up ``queue_delay`` seconds later;
   ``/manual`` and a retry run at once;
3. the run (``_flow_runs``) is STARTED and writes that it started and got its payload
   (``_logs``);
4. ``run_duration`` seconds later it finishes with ``run_outcome`` and logs how.

The run id is allocated at the start, so the id in the reply is the id the run will have.
Steps 2 and 4 are events on the lazy ``Timeline``, computed when the data is read. The
settings in force when the start arrived apply to it: changing ``queue_delay``,
``run_duration`` or ``run_outcome`` afterwards affects later starts only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._flow_runs import FlowRuns
from ._logs import FINISH_LOGS, RunLogs
from ._payloads import JSON_PAYLOAD, OPAQUE_PAYLOAD, Payloads
from ._queue import RunQueue
from ._resources import CoreRequest, Reply, iso_timestamp, not_found
from ._switches import Switches, start_reply
from ._timeline import Timeline

__all__ = ["RunLifecycle", "StartOrder", "Started"]


@attrs.frozen
class StartOrder:
    """An accepted start, as the Start service hands it over.

    Attributes:
        flow_id: The flow to run.
        version_id: The version to run.
        payload: The payload bytes to store (empty for an empty start).
        raw: True for the raw variant (the body was the payload).
        manual: True for ``/manual`` (runs at once), False for ``/start`` (queues).
        at: ``time.monotonic()`` when the start arrived.
        virtual_environment_id: The environment to run in, if one was named.
    """

    flow_id: int
    version_id: int
    payload: bytes
    raw: bool
    manual: bool
    at: float
    virtual_environment_id: int | None = None


@attrs.frozen
class Started:
    """What a start created: the run id it will have, its payload, its place in the queue.

    Attributes:
        run_id: The id the run has (manual) or will have once picked up (start).
        payload_metadata_id: The metadata of the stored payload.
        scheduled_flow_id: The queue item of a ``/start``; None for ``/manual``.
    """

    run_id: int
    payload_metadata_id: int
    scheduled_flow_id: int | None


@attrs.frozen
class _RunPlan:
    """Everything a run needs from the moment it starts (the settings are fixed then)."""

    run_id: int
    flow_id: int
    version_id: int | None
    trigger: str
    payload: Mapping[str, Any]
    started: float  # wall clock, Unix seconds
    due: float  # monotonic instant the run starts at
    duration: float
    outcome: int
    fields: Mapping[str, Any] = attrs.field(factory=dict)


class RunLifecycle:
    """Turns starts into queue items and runs, runs into finished runs, and retries them."""

    def __init__(
        self,
        *,
        runs: FlowRuns,
        logs: RunLogs,
        payloads: Payloads,
        queue: RunQueue,
        timeline: Timeline,
        switches: Switches,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """Wire the run resources together.

        Args:
            runs: Where runs are created and finished.
            logs: Where runs write their logs.
            payloads: Where payloads are stored.
            queue: Where ``/start`` waits.
            timeline: When pickups and finishes happen.
            switches: ``queue_delay``, ``run_duration``, ``run_outcome``, ``run_id_key``.
            wall: Clock for timestamps (Unix seconds); injectable for tests.
        """
        self._runs = runs
        self._logs = logs
        self._payloads = payloads
        self._queue = queue
        self._timeline = timeline
        self._switches = switches
        self._wall = wall

    def _now(self) -> float:
        """The wall clock in whole milliseconds, so a run's ``finished_at`` minus its
        ``started_at`` is exactly its duration once both are written in ISO 8601."""
        return round(self._wall(), 3)

    def start(self, order: StartOrder) -> Started:
        """Store the payload, then queue the start (``/start``) or run it (``/manual``)."""
        run_id = self._runs.new_run_id()
        now = self._now()
        payload = self._payloads.store(
            order.payload,
            JSON_PAYLOAD if order.raw else OPAQUE_PAYLOAD,
            flow_version_id=order.version_id,
            flow_run_id=run_id,
            created_at=iso_timestamp(now),
        )
        delay = 0.0 if order.manual else self._switches.queue_delay
        plan = _RunPlan(
            run_id=run_id,
            flow_id=order.flow_id,
            version_id=order.version_id,
            trigger="Manual" if order.manual else "API",
            payload=payload,
            started=now + delay,
            due=order.at + delay,
            duration=self._switches.run_duration,
            outcome=self._switches.run_outcome,
            fields={"virtual_environment_id": order.virtual_environment_id},
        )
        if order.manual:
            self._begin(plan)
            return Started(run_id, payload["id"], None)
        item = self._queue.add(order.flow_id, order.version_id, payload["id"], iso_timestamp(now))

        def pick_up() -> None:
            """The queue takes the item (unless it was deleted) and the run begins."""
            if self._queue.take(item["id"]) is not None:
                self._begin(plan)

        self._timeline.at(plan.due, pick_up)
        return Started(run_id, payload["id"], item["id"])

    def _begin(self, plan: _RunPlan) -> None:
        """Create the STARTED run, log its start and payload, and schedule its finish."""
        started_at = iso_timestamp(plan.started)
        self._runs.create(
            plan.run_id,
            plan.flow_id,
            plan.version_id,
            trigger=plan.trigger,
            started_at=started_at,
            payload_size=int(plan.payload["payload_size"]),
            **plan.fields,
        )
        self._logs.add(plan.run_id, "info", "Flow run started.", started_at)
        self._logs.add(
            plan.run_id,
            "info",
            "Payload received.",
            started_at,
            payload_metadata_id=int(plan.payload["id"]),
        )
        finished_at = iso_timestamp(plan.started + plan.duration)

        def finish() -> None:
            """The run ends with its outcome and says so in its logs."""
            if self._runs.finish(plan.run_id, plan.outcome, finished_at):
                level, message = FINISH_LOGS[plan.outcome]
                self._logs.add(plan.run_id, level, message, finished_at)

        self._timeline.at(plan.due + plan.duration, finish)

    def retry_flow_run(self, request: CoreRequest) -> Reply:
        """``POST /flow-runs/{id}/retry``: a new run of the same version and payload, at once.

        The retry bypasses the queue, has ``trigger`` ``Retry`` and names the run it
        retried in ``retry_flow_run_id``; its payload is a new metadata record pointing at
        the same stored bytes (empty bytes for a seeded run, which has none). The reply is
        a start reply (``run_id_key`` applies). Not idempotent: each call is a new run.
        """
        source = self._runs.find(request.params.get("run_id"))
        if source is None:
            return not_found("FlowRun", request.params["run_id"])
        run_id = self._runs.new_run_id()
        now = self._now()
        original = self._payloads.first_of_run(int(source["id"]))
        if original is None:
            payload = self._payloads.store(
                b"",
                OPAQUE_PAYLOAD,
                flow_version_id=source.get("flow_version_id"),
                flow_run_id=run_id,
                created_at=iso_timestamp(now),
            )
        else:
            payload = self._payloads.copy(
                original, flow_run_id=run_id, created_at=iso_timestamp(now)
            )
        plan = _RunPlan(
            run_id=run_id,
            flow_id=int(source["flow_id"]),
            version_id=source.get("flow_version_id"),
            trigger="Retry",
            payload=payload,
            started=now,
            due=self._timeline.now(),
            duration=self._switches.run_duration,
            outcome=self._switches.run_outcome,
            fields={
                "retry_flow_run_id": source["id"],
                "virtual_environment_id": source.get("virtual_environment_id"),
            },
        )
        self._begin(plan)
        return Reply(200, start_reply(run_id, self._switches.run_id_key))
