"""The fake's payloads: the bytes each start sent, their metadata, and ``/payload-metadata``.

Every start stores its payload as it arrived (the UTF-8 bytes of a standard start's
``payload`` string, a raw start's body byte for byte, nothing for an empty start) and
describes it in a metadata record: the run it belongs to, its store reference and size
(api-reference/flow-logs-and-queue). A queued start gets its record at once, naming the
run it will become. ``GET /payload-metadata/{id}/download`` answers the bytes exactly as
they were sent, so a client can check what the service received.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ._checks import as_id
from ._filters import int_filter
from ._laravel_query import ListSpec
from ._resources import CoreRequest, IdSequence, Reply, list_reply, not_found

__all__ = ["JSON_PAYLOAD", "OPAQUE_PAYLOAD", "Payloads"]

JSON_PAYLOAD: Final = "application/json"
"""Content type a raw start's payload is downloaded with: its body was a JSON document."""
OPAQUE_PAYLOAD: Final = "application/octet-stream"
"""Content type a standard start's payload is downloaded with: any text (XML, CSV, JSON)."""

_MODEL: Final = "PayloadMetadata"


def _metadata_record(
    metadata_id: int,
    reference: str,
    size: int,
    *,
    flow_version_id: int | None,
    flow_run_id: int | None,
    created_at: str,
) -> dict[str, Any]:
    """Metadata of one stored payload."""
    return {
        "id": metadata_id,
        "flow_version_id": flow_version_id,
        "flow_step_id": None,
        "flow_run_id": flow_run_id,
        "payload_store_reference": reference,
        "payload_size": size,
        "dropped": False,
        "created_at": created_at,
    }


class Payloads:
    """Every stored payload of one fake and its metadata, and the ``/payload-metadata`` routes.

    Attributes:
        records: Payload metadata by id; a live dict.
        blobs: The stored bytes and their content type, by ``payload_store_reference``.
    """

    def __init__(
        self,
        logs: Mapping[int, Mapping[str, Any]],
        settle: Callable[[], None],
    ) -> None:
        """Nothing stored yet.

        Args:
            logs: The run logs by id (a live dict), for ``filter[flow_log_id]``.
            settle: Brings runs and their logs up to date before a read.
        """
        self._logs = logs
        self._settle = settle
        self.records: dict[int, dict[str, Any]] = {}
        self.blobs: dict[str, tuple[bytes, str]] = {}
        self._ids = IdSequence()
        self._spec = ListSpec(
            resource="payload_metadata",
            filters={
                "id": int_filter("id"),
                "flow_run_id": int_filter("flow_run_id"),
                "flow_step_id": int_filter("flow_step_id"),
                "flow_log_id": self._of_logs,
            },
            sorts=("id",),
        )

    def store(
        self,
        data: bytes,
        content_type: str,
        *,
        flow_version_id: int | None,
        flow_run_id: int | None,
        created_at: str,
    ) -> dict[str, Any]:
        """Keep ``data`` and describe it in a new metadata record."""
        metadata_id = self._ids.allocate(self.records)
        reference = f"payloads/{metadata_id:08d}"
        self.blobs[reference] = (bytes(data), content_type)
        record = _metadata_record(
            metadata_id,
            reference,
            len(data),
            flow_version_id=flow_version_id,
            flow_run_id=flow_run_id,
            created_at=created_at,
        )
        self.records[metadata_id] = record
        return record

    def copy(
        self, source: Mapping[str, Any], *, flow_run_id: int, created_at: str
    ) -> dict[str, Any]:
        """A new metadata record for a new run, pointing at the same stored bytes."""
        metadata_id = self._ids.allocate(self.records)
        record = _metadata_record(
            metadata_id,
            str(source["payload_store_reference"]),
            int(source["payload_size"]),
            flow_version_id=source.get("flow_version_id"),
            flow_run_id=flow_run_id,
            created_at=created_at,
        )
        self.records[metadata_id] = record
        return record

    def first_of_run(self, run_id: int) -> dict[str, Any] | None:
        """The payload a run was started with: its oldest metadata record, if any."""
        return next((r for r in self.records.values() if r.get("flow_run_id") == run_id), None)

    def _of_logs(self, name: str, raw: str) -> Callable[[Mapping[str, Any]], bool]:
        """The ``flow_log_id`` filter: payloads named by one of the listed logs."""
        wanted = int_filter("id")(name, raw)
        named = {log.get("payload_metadata_id") for log in self._logs.values() if wanted(log)}
        return lambda record: record.get("id") in named

    # ------------------------------------------------------------------ routes

    def list_payload_metadata(self, request: CoreRequest) -> Reply:
        """``GET /payload-metadata``."""
        self._settle()
        return list_reply(request, self._spec, self.records.values())

    def download_payload(self, request: CoreRequest) -> Reply:
        """``GET /payload-metadata/{id}/download``: the bytes as sent, with their type."""
        metadata_id = as_id(request.params.get("metadata_id"))
        record = self.records.get(metadata_id) if metadata_id is not None else None
        blob = self.blobs.get(str(record["payload_store_reference"])) if record else None
        if blob is None:
            return not_found(_MODEL, request.params["metadata_id"])
        data, content_type = blob
        return Reply(200, None, raw=data, content_type=content_type)
