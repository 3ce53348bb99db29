"""The fake's flows and their versions: seeding, and the ``/flows`` routes.

A flow is what a client starts, lists, exports and copies; a version is what actually
runs, so each flow owns its versions and names the deployed one (a start that omits the
version runs that one). The state is two plain dicts keyed by id (``flows``,
``versions``) that tests may read and edit directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ._checks import as_id
from ._form import Form
from ._laravel_query import ListSpec, boolean_filter, int_filter, partial_filter, validation_body
from ._resources import (
    SEED_TIMESTAMP,
    CoreRequest,
    IdSequence,
    Reply,
    iso_timestamp,
    list_reply,
    not_found,
    show_reply,
)

__all__ = ["Flows"]

_FLOW_ID_FLOOR: Final = 100
_VERSION_ID_FLOOR: Final = 9000
_LAYOUTS: Final = ("horizontal", "vertical")
_FLOW_SETTINGS: Final = (
    "description",
    "prod_flag",
    "use_queued_time",
    "remove_failed_payloads",
    "priority",
    "layout_direction",
)
"""Flow fields an import or a duplicate carries over to the new flow."""


def _flow_record(
    flow_id: int, name: str, timestamp: str, *, enabled_at: str | None = None
) -> dict[str, Any]:
    """A flow with every field the routes read or write, at its defaults."""
    return {
        "id": flow_id,
        "name": name,
        "description": None,
        "enabled_at": enabled_at,
        "created_at": timestamp,
        "updated_at": timestamp,
        "deployed_version_id": None,
        "layout_direction": "horizontal",
        "use_queued_time": False,
        "remove_failed_payloads": False,
        "priority": None,
        "prod_flag": False,
        "marketplace_app_id": None,
    }


def _version_record(version_id: int, flow_id: int, number: int, timestamp: str) -> dict[str, Any]:
    """A flow version: its flow and its number among the flow's versions (1 first)."""
    return {
        "id": version_id,
        "flow_id": flow_id,
        "version": number,
        "created_at": timestamp,
        "updated_at": timestamp,
    }


class Flows:
    """Every flow and flow version of one fake, and the ``/flows`` routes.

    Attributes:
        flows: Flows by id, as the API serves them.
        versions: Flow versions by id (each names its ``flow_id``).
    """

    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        """No flows yet.

        Args:
            wall: Clock for timestamps (Unix seconds); injectable for tests.
        """
        self._wall = wall
        self.flows: dict[int, dict[str, Any]] = {}
        self.versions: dict[int, dict[str, Any]] = {}
        self._flow_ids = IdSequence(_FLOW_ID_FLOOR)
        self._version_ids = IdSequence(_VERSION_ID_FLOOR)
        self._spec = ListSpec(
            resource="flows",
            filters={
                "name": partial_filter("name"),
                "enabled": boolean_filter(lambda flow: flow.get("enabled_at") is not None),
                "deployed": boolean_filter(
                    lambda flow: flow.get("deployed_version_id") is not None
                ),
                "id": int_filter("id"),
                "marketplace_app_id": int_filter("marketplace_app_id"),
                "labelled": boolean_filter(lambda flow: bool(flow.get("labels"))),
                "versions.id": self._flows_with_versions,
            },
            sorts=("name", "enabled_at", "created_at", "id"),
            includes=("versions", "latestVersion", "deployedVersion"),
            silent_includes=("labels", "webhooks"),
        )

    # ------------------------------------------------------------------ seeding

    def add_flow(
        self,
        name: str,
        *,
        versions: Iterable[int] = (),
        deployed_version: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed one flow and its versions; see ``FakePatchworks.add_flow``."""
        raw_id = fields.pop("id", None)
        flow_id = self._flow_ids.allocate(self.flows) if raw_id is None else int(raw_id)
        version_ids = list(versions) or [self._version_ids.allocate(self.versions)]
        self._check_new_flow(flow_id, version_ids, deployed_version)
        self._flow_ids.claim(flow_id)
        self._version_ids.claim(*version_ids)
        flow = _flow_record(flow_id, name, SEED_TIMESTAMP, enabled_at=SEED_TIMESTAMP)
        flow["deployed_version_id"] = deployed_version
        flow.update(fields)
        self.flows[flow_id] = flow
        for number, version_id in enumerate(version_ids, start=1):
            self.versions[version_id] = _version_record(version_id, flow_id, number, SEED_TIMESTAMP)
        return flow

    def add_flows(
        self, count: int, *, name_prefix: str = "Flow", deployed: bool = True
    ) -> list[dict[str, Any]]:
        """Seed ``count`` flows with one version each, in O(count); see ``FakePatchworks``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an int >= 0, got {count!r}")
        first_flow = self._flow_ids.peek(self.flows)
        first_version = self._version_ids.peek(self.versions)
        created = []
        for offset in range(count):
            flow_id, version_id = first_flow + offset, first_version + offset
            flow = _flow_record(
                flow_id, f"{name_prefix} {offset + 1}", SEED_TIMESTAMP, enabled_at=SEED_TIMESTAMP
            )
            flow["deployed_version_id"] = version_id if deployed else None
            self.flows[flow_id] = flow
            self.versions[version_id] = _version_record(version_id, flow_id, 1, SEED_TIMESTAMP)
            created.append(flow)
        if count:
            self._flow_ids.claim(first_flow + count - 1)
            self._version_ids.claim(first_version + count - 1)
        return created

    def _check_new_flow(
        self, flow_id: int, version_ids: list[int], deployed_version: int | None
    ) -> None:
        """Refuse ids already in use and a deployed version the flow does not have."""
        if flow_id in self.flows:
            raise ValueError(f"flow id {flow_id} is already used")
        clashes = [version_id for version_id in version_ids if version_id in self.versions]
        if clashes or len(set(version_ids)) != len(version_ids):
            raise ValueError(f"version ids must be new and distinct, got {version_ids}")
        if deployed_version is not None and deployed_version not in version_ids:
            raise ValueError(f"deployed_version {deployed_version} is not one of {version_ids}")

    def _create_flow(
        self, name: str, settings: Mapping[str, Any], version_count: int = 1
    ) -> dict[str, Any]:
        """A new flow (disabled, undeployed) with ``version_count`` fresh versions."""
        now = iso_timestamp(self._wall())
        flow = _flow_record(self._flow_ids.allocate(self.flows), name, now)
        flow.update({key: settings[key] for key in _FLOW_SETTINGS if key in settings})
        self.flows[flow["id"]] = flow
        for number in range(1, max(1, version_count) + 1):
            version_id = self._version_ids.allocate(self.versions)
            self.versions[version_id] = _version_record(version_id, flow["id"], number, now)
        return flow

    # ------------------------------------------------------------------ reading

    def flow_versions(self, flow_id: int) -> list[dict[str, Any]]:
        """A flow's versions, oldest first."""
        found = [v for v in self.versions.values() if v["flow_id"] == flow_id]
        return sorted(found, key=lambda version: int(version["version"]))

    def _versions_by_flow(self, flow_ids: set[int]) -> dict[int, list[dict[str, Any]]]:
        """Versions of several flows in one pass over the versions (never one per flow)."""
        grouped: dict[int, list[dict[str, Any]]] = {flow_id: [] for flow_id in flow_ids}
        for version in self.versions.values():
            bucket = grouped.get(version["flow_id"])
            if bucket is not None:
                bucket.append(version)
        for bucket in grouped.values():
            bucket.sort(key=lambda version: int(version["version"]))
        return grouped

    def _flows_with_versions(self, name: str, raw: str) -> Callable[[Mapping[str, Any]], bool]:
        """The ``versions.id`` filter: flows owning one of the listed versions."""
        wanted = int_filter("id")(name, raw)
        owners = {v["flow_id"] for v in self.versions.values() if wanted(v)}
        return lambda flow: flow.get("id") in owners

    def _find(self, request: CoreRequest) -> dict[str, Any] | None:
        """The flow named by the ``flow_id`` path parameter, if it exists."""
        flow_id = as_id(request.params.get("flow_id"))
        return None if flow_id is None else self.flows.get(flow_id)

    def _include_relations(self, data: list[dict[str, Any]], includes: frozenset[str]) -> None:
        """Add ``versions``, ``latest_version`` and ``deployed_version`` to each flow."""
        by_flow = self._versions_by_flow({item["id"] for item in data})
        for item in data:
            versions = by_flow.get(item["id"], [])
            if "versions" in includes:
                item["versions"] = [dict(version) for version in versions]
            if "latestVersion" in includes:
                item["latest_version"] = dict(versions[-1]) if versions else None
            if "deployedVersion" in includes:
                stored = self.flows.get(item["id"], item)
                deployed = self.versions.get(stored.get("deployed_version_id") or -1)
                item["deployed_version"] = dict(deployed) if deployed is not None else None

    # ------------------------------------------------------------------ routes

    def list_flows(self, request: CoreRequest) -> Reply:
        """``GET /flows``."""
        return list_reply(request, self._spec, self.flows.values(), self._include_relations)

    def get_flow(self, request: CoreRequest) -> Reply:
        """``GET /flows/{flow}``, with the same includes and fields as the list."""
        flow = self._find(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        return show_reply(request, flow, self._spec, self._include_relations)

    def create_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows`` with ``{"flow": {name, description, prod_flag}}``: one version."""
        outer = Form(request.body)
        fields = outer.object("flow") or {}
        form = Form(fields, prefix="flow.")
        form.string("name", required=True, max_length=255)
        form.string("description")
        form.boolean("prod_flag")
        errors = {**outer.errors, **form.errors}
        if errors:
            return Reply(422, validation_body(errors))
        flow = self._create_flow(form.valid["name"], form.valid)
        return Reply(201, {"data": dict(flow)})

    def update_flow(self, request: CoreRequest) -> Reply:
        """``PUT /flows/{flow}``: only the given keys of ``flow`` change.

        ``labels`` and ``notification_groups`` (beside ``flow``) are accepted and ignored:
        the fake has neither.
        """
        flow = self._find(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        outer = Form(request.body)
        fields = outer.object("flow") or {}
        form = Form(fields, prefix="flow.", partial=True)
        form.string("name", required=True, max_length=255)
        form.string("description")
        form.date("enabled_at")
        form.boolean("use_queued_time")
        form.boolean("remove_failed_payloads")
        form.integer("priority")
        form.boolean("prod_flag")
        errors = {**outer.errors, **form.errors}
        if errors:
            return Reply(422, validation_body(errors))
        if form.valid:
            flow.update(form.valid)
            flow["updated_at"] = iso_timestamp(self._wall())
        return Reply(200, {"data": dict(flow)})

    def delete_flow(self, request: CoreRequest) -> Reply:
        """``DELETE /flows/{flow}``: the flow and its versions (its runs stay, as history)."""
        flow = self._find(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        del self.flows[flow["id"]]
        for version_id in [v["id"] for v in self.versions.values() if v["flow_id"] == flow["id"]]:
            del self.versions[version_id]
        return Reply(200, {"message": "Flow deleted."})

    def export_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/export`` with ``{"flow_id"}``: the flow and its versions."""
        form = Form(request.body)
        form.integer("flow_id", required=True)
        if form.errors:
            return form.reply()
        flow = self.flows.get(form.valid["flow_id"])
        if flow is None:
            return not_found("Flow", str(form.valid["flow_id"]))
        versions = [dict(version) for version in self.flow_versions(flow["id"])]
        exported_at = iso_timestamp(self._wall())
        return Reply(
            200, {"data": {"flow": dict(flow), "versions": versions, "exported_at": exported_at}}
        )

    def import_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/import`` with an export's ``data`` as ``flow``, and ``metadata``.

        The new flow takes the export's name and settings, one version per exported
        version (at least one), and starts disabled and undeployed.
        """
        form = Form(request.body)
        exported = form.object("flow", required=True)
        form.object("metadata", required=True)
        form.boolean("as_marketplace")
        source: Mapping[str, Any] = {}
        if exported is not None:
            inner = Form(exported, prefix="flow.")
            source = inner.object("flow", required=True) or {}
            named = Form(source, prefix="flow.flow.")
            named.string("name", required=True, max_length=255)
            form.errors.update(inner.errors)
            form.errors.update(named.errors)
        if form.errors:
            return form.reply()
        assert exported is not None
        versions = exported.get("versions")
        count = len(versions) if isinstance(versions, list) else 1
        flow = self._create_flow(str(source["name"]).strip(), source, count)
        return Reply(201, {"data": dict(flow)})

    def duplicate_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/{flow}/duplicate`` with one of its versions: "<name> (copy)"."""
        flow = self._find(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        form = Form(request.body)
        form.integer("flow_version_id", required=True)
        if "flow_version_id" in form.valid:
            version = self.versions.get(form.valid["flow_version_id"] or -1)
            if version is None or version["flow_id"] != flow["id"]:
                form.errors["flow_version_id"] = ["The selected flow version id is invalid."]
        if form.errors:
            return form.reply()
        copy = self._create_flow(f"{flow['name']} (copy)", flow)
        return Reply(201, {"data": dict(copy)})

    def toggle_layout_direction(self, request: CoreRequest) -> Reply:
        """``PATCH /flows/{flow}/layout-direction``: horizontal <-> vertical, 204 no content."""
        flow = self._find(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        current = flow.get("layout_direction", "horizontal")
        flow["layout_direction"] = _LAYOUTS[1] if current == _LAYOUTS[0] else _LAYOUTS[0]
        flow["updated_at"] = iso_timestamp(self._wall())
        return Reply(204, None)
