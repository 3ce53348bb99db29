"""The fake's flow versions: what runs, which one is deployed, and ``/flows/{flow}/versions``.

A flow's versions are numbered 1, 2, ... in the order they were made; at most one is
deployed, and that one runs when a start names no version. Deploying is a write of the
version's ``deployed_at`` (api-reference/flow-actions/flow-versions): an instant deploys it,
moving the flow's ``deployed_version_id`` to it and clearing the previous one's
``deployed_at``; null undeploys it. The deployed version cannot be deleted (409): a client
must undeploy it first, or deploy another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ._checks import as_id
from ._form import Form
from ._laravel_query import ListSpec, validation_body
from ._resources import (
    CoreRequest,
    IdSequence,
    Reply,
    iso_timestamp,
    list_reply,
    not_found,
    show_reply,
)
from ._switches import Switches, write_body

__all__ = ["DEPLOYED", "DRAFT", "FlowVersions", "version_record"]

_VERSION_ID_FLOOR: Final = 9000
DRAFT: Final = "draft"
"""``status`` of a version that is not deployed."""
DEPLOYED: Final = "deployed"
"""``status`` of the flow's deployed version."""

_VERSION_SPEC: Final = ListSpec(
    resource="flow_versions", sorts=("id", "version", "created_at", "deployed_at")
)
_CANNOT_DELETE_DEPLOYED: Final = "The deployed version cannot be deleted: undeploy it first."


def version_record(
    version_id: int,
    flow_id: int,
    number: int,
    timestamp: str,
    *,
    name: str | None = None,
    deployed_at: str | None = None,
) -> dict[str, Any]:
    """A flow version: its flow, its number among the flow's versions (1 first), its state."""
    return {
        "id": version_id,
        "flow_id": flow_id,
        "version": number,
        "name": name,
        "status": DRAFT if deployed_at is None else DEPLOYED,
        "deployed_at": deployed_at,
        "created_at": timestamp,
        "updated_at": timestamp,
    }


class FlowVersions:
    """Every flow version of one fake, and the ``/flows/{flow}/versions`` routes.

    Attributes:
        versions: Versions by id (each names its ``flow_id``); a live dict.
        ids: Hands out version ids.
    """

    def __init__(
        self,
        flows: Mapping[int, dict[str, Any]],
        switches: Switches,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """No versions yet.

        Args:
            flows: The flows the versions belong to (a live dict, read and updated).
            switches: Whether write replies wrap their record in ``data``.
            wall: Clock for timestamps (Unix seconds); injectable for tests.
        """
        self._flows = flows
        self._switches = switches
        self._wall = wall
        self.versions: dict[int, dict[str, Any]] = {}
        self.ids = IdSequence(_VERSION_ID_FLOOR)

    # ------------------------------------------------------------------ shared with flows

    def add(
        self,
        flow_id: int,
        timestamp: str,
        *,
        name: str | None = None,
        version_id: int | None = None,
    ) -> dict[str, Any]:
        """A new version of ``flow_id`` with the next number (and a fresh id unless given)."""
        if version_id is None:
            version_id = self.ids.allocate(self.versions)
        else:
            self.ids.claim(version_id)
        number = max((int(v["version"]) for v in self.of_flow(flow_id)), default=0) + 1
        version = version_record(version_id, flow_id, number, timestamp, name=name)
        self.versions[version_id] = version
        return version

    def of_flow(self, flow_id: int) -> list[dict[str, Any]]:
        """A flow's versions, oldest first."""
        found = [v for v in self.versions.values() if v["flow_id"] == flow_id]
        return sorted(found, key=lambda version: int(version["version"]))

    def by_flow(self, flow_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """Versions of several flows in one pass over the versions (never one per flow)."""
        grouped: dict[int, list[dict[str, Any]]] = {flow_id: [] for flow_id in flow_ids}
        for version in self.versions.values():
            bucket = grouped.get(version["flow_id"])
            if bucket is not None:
                bucket.append(version)
        for bucket in grouped.values():
            bucket.sort(key=lambda version: int(version["version"]))
        return grouped

    def deploy(self, flow: dict[str, Any], version: dict[str, Any], deployed_at: str) -> None:
        """Make ``version`` the flow's deployed one; the previous one is undeployed."""
        previous = self.versions.get(flow.get("deployed_version_id") or -1)
        if previous is not None and previous is not version:
            previous.update(deployed_at=None, status=DRAFT)
        version.update(deployed_at=deployed_at, status=DEPLOYED)
        flow["deployed_version_id"] = version["id"]

    def undeploy(self, flow: dict[str, Any], version: dict[str, Any]) -> None:
        """Clear ``version``'s deployment; the flow has none left if it was the deployed one."""
        version.update(deployed_at=None, status=DRAFT)
        if flow.get("deployed_version_id") == version["id"]:
            flow["deployed_version_id"] = None

    # ------------------------------------------------------------------ routes

    def _find_flow(self, request: CoreRequest) -> dict[str, Any] | None:
        """The flow named by the ``flow_id`` path parameter, if it exists."""
        flow_id = as_id(request.params.get("flow_id"))
        return None if flow_id is None else self._flows.get(flow_id)

    def _find(self, request: CoreRequest) -> tuple[dict[str, Any] | None, dict[str, Any], Reply]:
        """The flow and its version named by the path; the 404 to send when either is not."""
        flow = self._find_flow(request)
        if flow is None:
            return None, {}, not_found("Flow", request.params["flow_id"])
        version_id = as_id(request.params.get("version_id"))
        version = self.versions.get(version_id) if version_id is not None else None
        if version is None or version["flow_id"] != flow["id"]:
            return None, flow, not_found("FlowVersion", request.params["version_id"])
        return version, flow, Reply(200, None)

    def list_flow_versions(self, request: CoreRequest) -> Reply:
        """``GET /flows/{flow}/versions``."""
        flow = self._find_flow(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        return list_reply(request, _VERSION_SPEC, self.of_flow(flow["id"]))

    def create_flow_version(self, request: CoreRequest) -> Reply:
        """``POST /flows/{flow}/versions``: a draft with the next number; ``name`` optional."""
        flow = self._find_flow(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        form = Form(request.body)
        form.string("name", max_length=255)
        if form.errors:
            return form.reply()
        now = iso_timestamp(self._wall())
        version = self.add(flow["id"], now, name=form.valid.get("name"))
        return Reply(201, write_body(dict(version), self._switches.wrap_writes_in_data))

    def get_flow_version(self, request: CoreRequest) -> Reply:
        """``GET /flows/{flow}/versions/{version}``."""
        version, _, missing = self._find(request)
        if version is None:
            return missing
        return show_reply(request, version, _VERSION_SPEC)

    def update_flow_version(self, request: CoreRequest) -> Reply:
        """``PUT /flows/{flow}/versions/{version}``: ``name``; ``deployed_at`` deploys or not.

        ``deployed_at`` takes an ISO 8601 string or Unix milliseconds (deploy) or null
        (undeploy); an absent one leaves the deployment as it is.
        """
        version, flow, missing = self._find(request)
        if version is None:
            return missing
        form = Form(request.body, partial=True)
        form.string("name", max_length=255)
        form.date("deployed_at")
        if form.errors:
            return Reply(422, validation_body(form.errors))
        if "name" in form.valid:
            version["name"] = form.valid["name"]
        if "deployed_at" in form.valid:
            deployed_at = form.valid["deployed_at"]
            if deployed_at is None:
                self.undeploy(flow, version)
            else:
                self.deploy(flow, version, deployed_at)
            flow["updated_at"] = iso_timestamp(self._wall())
        if form.valid:
            version["updated_at"] = iso_timestamp(self._wall())
        return Reply(200, write_body(dict(version), self._switches.wrap_writes_in_data))

    def delete_flow_version(self, request: CoreRequest) -> Reply:
        """``DELETE /flows/{flow}/versions/{version}``; the deployed one is a 409."""
        version, flow, missing = self._find(request)
        if version is None:
            return missing
        if flow.get("deployed_version_id") == version["id"]:
            return Reply(409, {"message": _CANNOT_DELETE_DEPLOYED})
        del self.versions[version["id"]]
        return Reply(200, {"message": "Flow version deleted."})
