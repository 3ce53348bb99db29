"""The fake's run queue: starts waiting to become runs, and ``/scheduled-flows``.

``POST .../start`` does not run a flow: it adds it to the queue, and the flow runs when the
queue picks it up (Flows reference: "flow runs are added to a queue and picked up when
concurrency is available"; manual runs and retries bypass it). Until then the start is a
scheduled flow, listed by ``GET /scheduled-flows`` and cancelled by ``DELETE
/scheduled-flows/{id}``, and ``GET /flow-runs/{id}`` knows no run by the id the start
reply gave. The fake picks each start up ``queue_delay`` seconds after it arrived
(``_lifecycle`` schedules it on the ``Timeline``); a picked-up item leaves the queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._checks import as_id
from ._filters import exact_filter, int_filter
from ._laravel_query import ListSpec
from ._resources import CoreRequest, IdSequence, Reply, list_reply, not_found
from ._timeline import Timeline

__all__ = ["PENDING", "RunQueue"]

PENDING: Final = "pending"
"""``status`` of a scheduled flow waiting to be picked up."""

_MODEL: Final = "ScheduledFlow"
_INCLUDES: Final = {
    "flow": ("flow_id", "flow"),
    "flowVersion": ("flow_version_id", "flow_version"),
    "payloadMetadata": ("payload_metadata_id", "payload_metadata"),
}
"""Each include: the item's key naming the related record, and the key it is served under."""


class RunQueue:
    """The scheduled flows of one fake (those not picked up yet), and their routes.

    Attributes:
        items: Scheduled flows by id; a live dict (deleting one cancels its start).
    """

    def __init__(
        self,
        flows: Mapping[int, Mapping[str, Any]],
        versions: Mapping[int, Mapping[str, Any]],
        payloads: Mapping[int, Mapping[str, Any]],
        timeline: Timeline,
    ) -> None:
        """An empty queue.

        Args:
            flows: Flows by id (a live dict), for ``include=flow``.
            versions: Flow versions by id (a live dict), for ``include=flowVersion``.
            payloads: Payload metadata by id (a live dict), for ``include=payloadMetadata``.
            timeline: Picks due items up before every read.
        """
        self._related = {"flow": flows, "flowVersion": versions, "payloadMetadata": payloads}
        self._timeline = timeline
        self.items: dict[int, dict[str, Any]] = {}
        self._ids = IdSequence()
        self._spec = ListSpec(
            resource="scheduled_flows",
            filters={
                "status": exact_filter("status"),
                "flow_version_id": int_filter("flow_version_id"),
            },
            sorts=("id", "created_at"),
            includes=tuple(_INCLUDES),
        )

    def add(
        self, flow_id: int, flow_version_id: int, payload_metadata_id: int, created_at: str
    ) -> dict[str, Any]:
        """Queue a start: a pending item until it is picked up or deleted."""
        item_id = self._ids.allocate(self.items)
        item = {
            "id": item_id,
            "flow_id": flow_id,
            "flow_version_id": flow_version_id,
            "status": PENDING,
            "payload_metadata_id": payload_metadata_id,
            "created_at": created_at,
        }
        self.items[item_id] = item
        return item

    def take(self, item_id: int) -> dict[str, Any] | None:
        """Pick an item up (it leaves the queue); None if it was deleted meanwhile."""
        return self.items.pop(item_id, None)

    def _include_relations(self, data: list[dict[str, Any]], includes: frozenset[str]) -> None:
        """Add ``flow``, ``flow_version`` and ``payload_metadata`` (null when gone)."""
        for item in data:
            stored = self.items.get(item["id"], item)
            for include in includes:
                key, name = _INCLUDES[include]
                record = self._related[include].get(stored.get(key) or -1)
                item[name] = dict(record) if record is not None else None

    # ------------------------------------------------------------------ routes

    def list_scheduled_flows(self, request: CoreRequest) -> Reply:
        """``GET /scheduled-flows``: the starts not picked up yet."""
        self._timeline.settle()
        return list_reply(request, self._spec, self.items.values(), self._include_relations)

    def delete_scheduled_flow(self, request: CoreRequest) -> Reply:
        """``DELETE /scheduled-flows/{id}``: the start never runs."""
        self._timeline.settle()
        item_id = as_id(request.params.get("item_id"))
        if item_id is None or self.take(item_id) is None:
            return not_found(_MODEL, request.params["item_id"])
        return Reply(200, {"message": "Scheduled flow deleted."})
