"""The fake's flows: seeding, labels, the ``/flows`` routes, and export and import bundles.

A flow is what a client starts, lists, exports and copies; a version (``_versions``) is
what actually runs, so each flow owns its versions and names the deployed one. Flows
carry their labels (``labels: [{"id", "name"}]``) and ``filter[labelled]`` takes a label
id. The state is plain dicts keyed by id (``flows``, ``versions``) that tests may read and
edit directly.

The list accepts every documented filter and include (api-reference, flows): the ones the
fake has data for are modelled, the rest (``webhooks``, ``callbacks``: the fake has none)
answer empty; ``*Count``/``*_count`` and ``*Exists`` forms of the to-many relations give
``<relation>_count`` and ``<relation>_exists``. Export answers the bundle itself, in the
shape the vendor's MCP builds for import (``_bundles``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ._bundles import export_bundle, read_bundle
from ._checks import as_id
from ._filters import boolean_filter, int_filter, partial_filter
from ._form import Form
from ._laravel_query import ListSpec, validation_body
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
from ._switches import Switches, write_body
from ._versions import FlowVersions, version_record

__all__ = ["FLOW_INCLUDES", "Flows"]

_FLOW_ID_FLOOR: Final = 100
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

_TO_MANY: Final = ("versions", "labels", "webhooks", "callbacks")
"""The flow's to-many relations: each also has a count and an exists include."""
_AGGREGATES: Final = {
    f"{relation}{suffix}": (relation, kind)
    for relation in _TO_MANY
    for suffix, kind in (("Count", "count"), ("_count", "count"), ("Exists", "exists"))
}
"""``versionsCount`` / ``versions_count`` -> ``versions_count``; ``versionsExists`` ->
``versions_exists``: spatie's aggregate includes, and the form the reference names."""
FLOW_INCLUDES: Final = (
    "latestVersion",
    "deployedVersion",
    "currentVersion",
    *_TO_MANY,
    *_AGGREGATES,
)
"""Every include ``GET /flows`` and ``GET /flows/{flow}`` accept."""


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
        "blueprint_id": None,
        "blueprint_version_number": None,
        "labels": [],
    }


class Flows:
    """Every flow (and, through ``version_routes``, version) of one fake; the ``/flows`` routes.

    Attributes:
        flows: Flows by id, as the API serves them.
        versions: Flow versions by id (each names its ``flow_id``).
        version_routes: The versions and their ``/flows/{flow}/versions`` routes.
    """

    def __init__(self, switches: Switches, *, wall: Callable[[], float] = time.time) -> None:
        """No flows yet.

        Args:
            switches: Whether write replies wrap their record in ``data``.
            wall: Clock for timestamps (Unix seconds); injectable for tests.
        """
        self._switches = switches
        self._wall = wall
        self.flows: dict[int, dict[str, Any]] = {}
        self.version_routes = FlowVersions(self.flows, switches, wall=wall)
        self.versions = self.version_routes.versions
        self._flow_ids = IdSequence(_FLOW_ID_FLOOR)
        self._labels: dict[str, int] = {}  # label name -> id, shared by every flow
        self._label_ids = IdSequence()
        in_versions = self._flows_with_versions
        self._spec = ListSpec(
            resource="flows",
            filters={
                "name": partial_filter("name"),
                "marketplace_app_id": int_filter("marketplace_app_id"),
                "blueprint_id": int_filter("blueprint_id"),
                "blueprint_version_number": int_filter("blueprint_version_number"),
                "labelled": self._flows_labelled,
                "enabled": boolean_filter(lambda flow: flow.get("enabled_at") is not None),
                "deployed": boolean_filter(
                    lambda flow: flow.get("deployed_version_id") is not None
                ),
                "id": int_filter("id"),
                "versions": in_versions,
                "versions.id": in_versions,
            },
            sorts=("name", "enabled_at", "created_at", "id"),
            includes=FLOW_INCLUDES,
        )

    # ------------------------------------------------------------------ seeding

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
        raw_id = fields.pop("id", None)
        flow_id = self._flow_ids.allocate(self.flows) if raw_id is None else int(raw_id)
        ids = self.version_routes.ids
        version_ids = list(versions) or [ids.allocate(self.versions)]
        self._check_new_flow(flow_id, version_ids, deployed_version)
        self._flow_ids.claim(flow_id)
        ids.claim(*version_ids)
        flow = _flow_record(flow_id, name, SEED_TIMESTAMP, enabled_at=SEED_TIMESTAMP)
        flow["deployed_version_id"] = deployed_version
        flow["labels"] = self.labels_of(labels)
        flow.update(fields)
        self.flows[flow_id] = flow
        for number, version_id in enumerate(version_ids, start=1):
            deployed_at = SEED_TIMESTAMP if version_id == deployed_version else None
            self.versions[version_id] = version_record(
                version_id, flow_id, number, SEED_TIMESTAMP, deployed_at=deployed_at
            )
        return flow

    def add_flows(
        self, count: int, *, name_prefix: str = "Flow", deployed: bool = True
    ) -> list[dict[str, Any]]:
        """Seed ``count`` flows with one version each, in O(count); see ``FakePatchworks``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an int >= 0, got {count!r}")
        ids = self.version_routes.ids
        first_flow = self._flow_ids.peek(self.flows)
        first_version = ids.peek(self.versions)
        deployed_at = SEED_TIMESTAMP if deployed else None
        created = []
        for offset in range(count):
            flow_id, version_id = first_flow + offset, first_version + offset
            flow = _flow_record(
                flow_id, f"{name_prefix} {offset + 1}", SEED_TIMESTAMP, enabled_at=SEED_TIMESTAMP
            )
            flow["deployed_version_id"] = version_id if deployed else None
            self.flows[flow_id] = flow
            self.versions[version_id] = version_record(
                version_id, flow_id, 1, SEED_TIMESTAMP, deployed_at=deployed_at
            )
            created.append(flow)
        if count:
            self._flow_ids.claim(first_flow + count - 1)
            ids.claim(first_version + count - 1)
        return created

    def labels_of(self, labels: Iterable[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Labels as flows carry them: a name gets the id every flow shares for it.

        Args:
            labels: Label names, or ``{"id", "name"}`` mappings to pick the id.

        Raises:
            ValueError: On a bare string (a common slip), or an id already naming
                another label.
        """
        if isinstance(labels, str):
            raise ValueError("labels must be an iterable of labels, not a single string")
        found = []
        for label in labels:
            if isinstance(label, str):
                name, label_id = label, self._labels.get(label)
            else:
                name, label_id = str(label["name"]), int(label["id"])
                known = self._labels.get(name)
                if known != label_id and (known is not None or label_id in self._labels.values()):
                    raise ValueError(f"label id {label_id} or name {name!r} is already used")
            if label_id is None:
                label_id = self._label_ids.allocate({})
            self._label_ids.claim(label_id)
            self._labels[name] = label_id
            found.append({"id": label_id, "name": name})
        return found

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
        self, name: str, settings: Mapping[str, Any], version_names: Iterable[str | None] = ()
    ) -> dict[str, Any]:
        """A new flow (disabled, undeployed) with one version per name (at least one)."""
        now = iso_timestamp(self._wall())
        flow = _flow_record(self._flow_ids.allocate(self.flows), name, now)
        flow.update({key: settings[key] for key in _FLOW_SETTINGS if key in settings})
        self.flows[flow["id"]] = flow
        for version_name in list(version_names) or [None]:
            self.version_routes.add(flow["id"], now, name=version_name)
        return flow

    # ------------------------------------------------------------------ reading

    def flow_versions(self, flow_id: int) -> list[dict[str, Any]]:
        """A flow's versions, oldest first."""
        return self.version_routes.of_flow(flow_id)

    def _flows_with_versions(self, name: str, raw: str) -> Callable[[Mapping[str, Any]], bool]:
        """The ``versions.id`` (and ``versions``) filter: flows owning a listed version."""
        wanted = int_filter("id")(name, raw)
        owners = {v["flow_id"] for v in self.versions.values() if wanted(v)}
        return lambda flow: flow.get("id") in owners

    def _flows_labelled(self, name: str, raw: str) -> Callable[[Mapping[str, Any]], bool]:
        """The ``labelled`` filter: flows carrying one of the listed label ids."""
        wanted = int_filter("id")(name, raw)
        return lambda flow: any(wanted(label) for label in flow.get("labels") or ())

    def _find(self, request: CoreRequest) -> dict[str, Any] | None:
        """The flow named by the ``flow_id`` path parameter, if it exists."""
        flow_id = as_id(request.params.get("flow_id"))
        return None if flow_id is None else self.flows.get(flow_id)

    def _include_relations(self, data: list[dict[str, Any]], includes: frozenset[str]) -> None:
        """Add each requested relation (and count or exists) to each flow."""
        by_flow = self.version_routes.by_flow(item["id"] for item in data)
        for item in data:
            stored = self.flows.get(item["id"], item)
            versions = by_flow.get(item["id"], [])
            related: dict[str, list[Any]] = {
                "versions": versions,
                "labels": list(stored.get("labels") or ()),
                "webhooks": [],  # the fake has no webhooks or callbacks
                "callbacks": [],
            }
            latest = dict(versions[-1]) if versions else None
            deployed = self.versions.get(stored.get("deployed_version_id") or -1)
            for include in sorted(includes):
                if include in related:
                    item[include] = [dict(record) for record in related[include]]
                elif include in _AGGREGATES:
                    relation, kind = _AGGREGATES[include]
                    size = len(related[relation])
                    item[f"{relation}_{kind}"] = size if kind == "count" else size > 0
                elif include in ("latestVersion", "currentVersion"):  # current: the newest
                    item[f"{include.removesuffix('Version')}_version"] = latest
                elif include == "deployedVersion":
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

    def _written(self, status: int, record: Mapping[str, Any]) -> Reply:
        """A write reply: the record, in ``data`` or bare as ``wrap_writes_in_data`` says."""
        return Reply(status, write_body(dict(record), self._switches.wrap_writes_in_data))

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
        return self._written(201, self._create_flow(form.valid["name"], form.valid))

    def update_flow(self, request: CoreRequest) -> Reply:
        """``PUT /flows/{flow}``: only the given keys of ``flow`` change.

        ``labels`` and ``notification_groups`` (beside ``flow``) are accepted and ignored:
        label writes are not modelled, and the fake has no notification groups.
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
        """``POST /flows/export`` with ``{"flow_id"}``: the bundle itself, never wrapped."""
        form = Form(request.body)
        form.integer("flow_id", required=True)
        if form.errors:
            return form.reply()
        flow = self.flows.get(form.valid["flow_id"])
        if flow is None:
            return not_found("Flow", str(form.valid["flow_id"]))
        versions = self.flow_versions(flow["id"])
        return Reply(200, export_bundle(flow, versions, iso_timestamp(self._wall())))

    def import_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/import`` with a bundle and ``as_marketplace``: a new flow.

        The new flow is named after ``flow.name``, takes the bundle's description and
        priority and one version per bundled version (at least one), and starts disabled
        and undeployed.
        """
        imported = read_bundle(request.body)
        if imported.errors:
            return Reply(422, validation_body(imported.errors))
        flow = self._create_flow(imported.name, imported.settings, imported.version_names)
        return self._written(201, flow)

    def _copy_name(self, name: str) -> str:
        """``<name> (n)`` with the lowest n >= 1 no flow is named yet: an incremental number."""
        taken = {str(flow.get("name")) for flow in self.flows.values()}
        return next(f"{name} ({n})" for n in itertools.count(1) if f"{name} ({n})" not in taken)

    def duplicate_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/{flow}/duplicate`` with one of its versions: ``"<name> (1)"``.

        The copy has the flow's settings and labels and one version, disabled and
        undeployed; its name gets an incremental number, as documented.
        """
        flow = self._find(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        form = Form(request.body)
        form.integer("flow_version_id", required=True)
        version: Mapping[str, Any] | None = None
        if "flow_version_id" in form.valid:
            version = self.versions.get(form.valid["flow_version_id"] or -1)
            if version is None or version["flow_id"] != flow["id"]:
                form.errors["flow_version_id"] = ["The selected flow version id is invalid."]
        if form.errors or version is None:
            return form.reply()
        copy = self._create_flow(self._copy_name(str(flow["name"])), flow, [version["name"]])
        copy["labels"] = [dict(label) for label in flow.get("labels") or ()]
        return self._written(201, copy)

    def toggle_layout_direction(self, request: CoreRequest) -> Reply:
        """``PATCH /flows/{flow}/layout-direction``: horizontal <-> vertical, 204 no content."""
        flow = self._find(request)
        if flow is None:
            return not_found("Flow", request.params["flow_id"])
        current = flow.get("layout_direction", "horizontal")
        flow["layout_direction"] = _LAYOUTS[1] if current == _LAYOUTS[0] else _LAYOUTS[0]
        flow["updated_at"] = iso_timestamp(self._wall())
        return Reply(204, None)
