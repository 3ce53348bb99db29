"""The fake's run logs: what a run wrote as it went, and ``/flow-runs/{id}/flow-run-logs``.

A client that investigates a run reads its logs (the MCP's ``get_flow_run_logs``, the PHP
client's ``getFlowRunLogs``): each has a level, a message, the step that wrote it and the
payload it saw. The fake has no steps, so a run writes three logs: that it started, that
it received its payload (naming the payload's metadata), and how it finished, at error
level for a failure. Logs of a run that is still queued do not exist yet: the run is
unknown, a 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from ._checks import as_id
from ._laravel_query import ListSpec
from ._resources import CoreRequest, IdSequence, Reply, list_reply, not_found

__all__ = ["FINISH_LOGS", "LOG_LEVELS", "RunLogs"]

LOG_LEVELS: Final = ("info", "warning", "error")
"""Every ``log_level`` a log may have."""

FINISH_LOGS: Final = {
    2: ("info", "Flow run completed successfully."),
    3: ("error", "Flow run failed."),
    4: ("info", "Flow run stopped."),
    5: ("info", "Flow run partially succeeded."),
}
"""The level and message of the log a run writes when it finishes, by final status."""

_LOG_SPEC: Final = ListSpec(
    resource="flow_run_logs",
    sorts=("id", "created_at"),
    silent_includes=("flowRunLogMetadata",),
)


def _log_record(
    log_id: int,
    run_id: int,
    level: str,
    message: str,
    created_at: str,
    payload_metadata_id: int | None,
) -> dict[str, Any]:
    """One log line of a run."""
    return {
        "id": log_id,
        "flow_run_id": run_id,
        "log_level": level,
        "log_message": message,
        "flow_step_id": None,
        "payload_metadata_id": payload_metadata_id,
        "created_at": created_at,
    }


class RunLogs:
    """Every run log of one fake, and the route that lists a run's logs.

    Attributes:
        logs: Logs by id (each names its ``flow_run_id``); a live dict.
    """

    def __init__(self, run_exists: Callable[[int], bool]) -> None:
        """No logs yet.

        Args:
            run_exists: Whether a run id names a run (brought up to date first): the
                logs of an unknown run are a 404.
        """
        self._run_exists = run_exists
        self.logs: dict[int, dict[str, Any]] = {}
        self._ids = IdSequence()

    def add(
        self,
        run_id: int,
        level: str,
        message: str,
        created_at: str,
        *,
        payload_metadata_id: int | None = None,
    ) -> dict[str, Any]:
        """Write one log line for ``run_id``."""
        log_id = self._ids.allocate(self.logs)
        log = _log_record(log_id, run_id, level, message, created_at, payload_metadata_id)
        self.logs[log_id] = log
        return log

    def by_run(self, run_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """The logs of several runs in one pass over the logs, each run's in id order."""
        grouped: dict[int, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
        for log in self.logs.values():
            bucket = grouped.get(log["flow_run_id"])
            if bucket is not None:
                bucket.append(log)
        for bucket in grouped.values():
            bucket.sort(key=lambda log: int(log["id"]))
        return grouped

    def list_flow_run_logs(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs/{id}/flow-run-logs``; ``load_payload_ids`` is accepted.

        Every log carries its ``payload_metadata_id`` anyway, so ``load_payload_ids=true``
        changes nothing; ``include=flowRunLogMetadata`` is accepted and adds nothing.
        """
        run_id = as_id(request.params.get("run_id"))
        if run_id is None or not self._run_exists(run_id):
            return not_found("FlowRun", request.params["run_id"])
        return list_reply(request, _LOG_SPEC, self.by_run([run_id])[run_id])
