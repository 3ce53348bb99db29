"""The fake's Core API resources: flows, versions, flow runs, lookups and their rows.

``FakePatchworks`` owns the sockets, auth and throttle; this module owns the data and what
each Core API route does with it. It knows nothing of aiohttp: a route is a method taking
a ``CoreRequest`` (path parameters, query, decoded body, URL) and returning a ``Reply``, so
the behaviour can be unit-tested synchronously and the server stays a thin adapter.

The state is plain dicts keyed by id (``flows``, ``versions``, ``lookups``,
``lookup_values``, and the runs), so tests can read and edit it directly. Lists never copy
the store: they filter and sort references and copy only the page they return (see
``_pages``). Flow runs finish lazily: a run remembers when it is due to finish on the
monotonic clock, and is brought up to date whenever runs are read, so no timers outlive a
test.

Validation follows Laravel: strings are trimmed and blank ones become null (its
TrimStrings and ConvertEmptyStringsToNull middleware), nested fields are named with dots
(``flow.name``), and a failure is a 422 in the framework's format.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from ._pages import (
    ListQuery,
    ListSpec,
    QueryError,
    boolean_filter,
    exact_filter,
    filter_items,
    int_filter,
    int_range_filter,
    laravel_integer,
    paginate,
    paginator_body,
    parse_fields,
    parse_includes,
    parse_list_query,
    partial_filter,
    select_fields,
    sort_items,
    validation_body,
)

__all__ = ["SEED_TIMESTAMP", "CoreRequest", "Reply", "Store", "iso_timestamp"]

SEED_TIMESTAMP: Final = "2026-01-01T00:00:00.000000Z"
RUN_STARTED: Final = 1
_FIRST_RUN_ID: Final = 500001
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

_MISSING: Final = object()

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
_LOOKUP_SPEC: Final = ListSpec(
    resource="cross_reference_lookups",
    filters={"name": partial_filter("name")},
    sorts=("name", "id"),
)
_VALUE_SPEC: Final = ListSpec(
    resource="cross_reference_lookup_values",
    filters={
        "left_value": exact_filter("left_value"),
        "right_value": exact_filter("right_value"),
    },
    sorts=("id", "left_value", "right_value"),
)


def iso_timestamp(seconds: float) -> str:
    """Laravel's JSON date format: UTC, microseconds and ``Z`` (``...T12:00:00.000000Z``)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@attrs.frozen
class CoreRequest:
    """What a Core API route needs from the HTTP request.

    Attributes:
        params: Path parameters, raw (``{"flow_id": "101"}``).
        query: The query as ``_pages.php_query`` reads it.
        body: The decoded JSON object body (empty when there was none).
        url: Scheme, host and path without the query: Laravel's paginator ``path``.
    """

    params: Mapping[str, str] = attrs.field(factory=dict)
    query: Mapping[str, str] = attrs.field(factory=dict)
    body: Mapping[str, Any] = attrs.field(factory=dict)
    url: str = "http://127.0.0.1/core/api/v1"


@attrs.frozen
class Reply:
    """A route's answer: status and JSON body, or no body at all (None, for a 204)."""

    status: int
    body: dict[str, Any] | None


def _not_found(model: str, raw_id: str) -> Reply:
    return Reply(404, {"message": f"No query results for model [{model}] {raw_id}"})


def _as_id(raw: str | None) -> int | None:
    """A path segment as an id; anything but digits names nothing."""
    if raw is None or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


def _integer_value(value: Any) -> int | None:
    """Laravel's ``integer`` rule on a JSON value: ints and integer strings, not bools."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return laravel_integer(value)
    return None


def _parse_date(value: str) -> str | None:
    """A date string as Laravel would store and serialise it, or None if it is not one."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Form:
    """Laravel validation of one JSON object, after TrimStrings and ConvertEmptyStringsToNull.

    Each rule method checks one field and, if it passes, copies the cleaned value into
    ``valid``; failures collect in ``errors`` under the dotted field name. A field absent
    from the body is skipped unless it is required and the form is not ``partial``
    (Laravel's ``sometimes``, used by updates).
    """

    def __init__(self, data: Mapping[str, Any], *, prefix: str = "", partial: bool = False):
        self._data = data
        self._prefix = prefix
        self._partial = partial
        self.errors: dict[str, list[str]] = {}
        self.valid: dict[str, Any] = {}

    def _fail(self, key: str, rule: str) -> None:
        attribute = f"{self._prefix}{key}"
        label = attribute.replace("_", " ")
        self.errors.setdefault(attribute, []).append(f"The {label} field {rule}.")

    def _value(self, key: str, *, required: bool) -> Any:
        """The cleaned value, or ``_MISSING`` when the rule has nothing (more) to check."""
        value = self._data.get(key, _MISSING)
        if isinstance(value, str):
            value = value.strip() or None
        if value is _MISSING:
            if required and not self._partial:
                self._fail(key, "is required")
            return _MISSING
        if value is None and required:
            self._fail(key, "is required")
            return _MISSING
        return value

    def string(self, key: str, *, required: bool = False, max_length: int | None = None) -> None:
        """``required|string`` or ``nullable|string``, with an optional ``max``."""
        value = self._value(key, required=required)
        if value is _MISSING:
            return
        if value is not None and not isinstance(value, str):
            self._fail(key, "must be a string")
        elif value is not None and max_length is not None and len(value) > max_length:
            self._fail(key, f"must not be greater than {max_length} characters")
        else:
            self.valid[key] = value

    def boolean(self, key: str) -> None:
        """``boolean``: true, false, 1, 0, "1", "0"; null is refused."""
        value = self._value(key, required=False)
        if value is _MISSING:
            return
        if value in (True, False, 1, 0, "1", "0") and not isinstance(value, float):
            self.valid[key] = value in (True, 1, "1")
        else:
            self._fail(key, "must be true or false")

    def integer(self, key: str, *, required: bool = False) -> None:
        """``required|integer`` or ``nullable|integer``."""
        value = self._value(key, required=required)
        if value is _MISSING:
            return
        if value is None:
            self.valid[key] = None
            return
        number = _integer_value(value)
        if number is None:
            self._fail(key, "must be an integer")
        else:
            self.valid[key] = number

    def date(self, key: str) -> None:
        """``nullable|date``: stored in Laravel's serialised form."""
        value = self._value(key, required=False)
        if value is _MISSING:
            return
        if value is None:
            self.valid[key] = None
            return
        parsed = _parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            self._fail(key, "must be a valid date")
        else:
            self.valid[key] = parsed

    def object(self, key: str, *, required: bool = False) -> Mapping[str, Any] | None:
        """``required|array`` (a JSON object here); returns it when it is one."""
        value = self._value(key, required=required)
        if value is _MISSING or value is None:
            return None
        if not isinstance(value, dict):
            self._fail(key, "must be an array")
            return None
        return value

    def reply(self) -> Reply:
        return Reply(422, validation_body(self.errors))


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
        self.run_duration = run_duration
        self.run_outcome = run_outcome
        self._wall = wall
        self._mono = mono
        self.flows: dict[int, dict[str, Any]] = {}
        self.versions: dict[int, dict[str, Any]] = {}
        self.lookups: dict[int, dict[str, Any]] = {}
        self.lookup_values: dict[int, dict[str, Any]] = {}
        self._runs: dict[int, dict[str, Any]] = {}
        # (due on the monotonic clock, run id, final status, finished_at in Unix ms)
        self._pending: list[tuple[float, int, int, int]] = []
        self._next_run_id = _FIRST_RUN_ID
        # High-water marks: like auto-increment columns, ids are never reused after a delete.
        self._flow_hw = _FLOW_ID_FLOOR
        self._version_hw = _VERSION_ID_FLOOR
        self._lookup_hw = 0
        self._value_hw = 0
        self._flow_spec = ListSpec(
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

    # ------------------------------------------------------------------ clocks and ids

    def now(self) -> str:
        """The current time as the API serialises it."""
        return iso_timestamp(self._wall())

    def _new_flow_id(self) -> int:
        self._flow_hw = max(max(self.flows, default=_FLOW_ID_FLOOR), self._flow_hw) + 1
        return self._flow_hw

    def _new_version_id(self) -> int:
        self._version_hw = max(max(self.versions, default=_VERSION_ID_FLOOR), self._version_hw)
        self._version_hw += 1
        return self._version_hw

    def _new_lookup_id(self) -> int:
        self._lookup_hw = max(max(self.lookups, default=0), self._lookup_hw) + 1
        return self._lookup_hw

    def _new_value_id(self) -> int:
        self._value_hw = max(max(self.lookup_values, default=0), self._value_hw) + 1
        return self._value_hw

    def new_run_id(self) -> int:
        """Allocate the next flow run id (shared by starts and seeded runs)."""
        run_id = self._next_run_id
        self._next_run_id += 1
        return run_id

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
        flow_id = self._new_flow_id() if raw_id is None else int(raw_id)
        version_ids = list(versions) or [self._new_version_id()]
        self._check_new_flow(flow_id, version_ids, deployed_version)
        self._flow_hw = max(self._flow_hw, flow_id)
        self._version_hw = max(self._version_hw, *version_ids)
        flow = self._flow_dict(flow_id, name, SEED_TIMESTAMP, enabled_at=SEED_TIMESTAMP)
        flow["deployed_version_id"] = deployed_version
        flow.update(fields)
        self.flows[flow_id] = flow
        for number, version_id in enumerate(version_ids, start=1):
            self.versions[version_id] = self._version_dict(
                version_id, flow_id, number, SEED_TIMESTAMP
            )
        return flow

    def add_flows(
        self, count: int, *, name_prefix: str = "Flow", deployed: bool = True
    ) -> list[dict[str, Any]]:
        """Seed ``count`` flows with one version each, in O(count); see ``FakePatchworks``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an int >= 0, got {count!r}")
        first_flow = max(max(self.flows, default=_FLOW_ID_FLOOR), self._flow_hw) + 1
        first_version = max(max(self.versions, default=_VERSION_ID_FLOOR), self._version_hw) + 1
        created = []
        for offset in range(count):
            flow_id, version_id = first_flow + offset, first_version + offset
            flow = self._flow_dict(
                flow_id, f"{name_prefix} {offset + 1}", SEED_TIMESTAMP, enabled_at=SEED_TIMESTAMP
            )
            flow["deployed_version_id"] = version_id if deployed else None
            self.flows[flow_id] = flow
            self.versions[version_id] = self._version_dict(version_id, flow_id, 1, SEED_TIMESTAMP)
            created.append(flow)
        if count:
            self._flow_hw = first_flow + count - 1
            self._version_hw = first_version + count - 1
        return created

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
        flow = self.flows.get(flow_id)
        if flow is None:
            raise ValueError(f"flow {flow_id} does not exist")
        if version_id is None:
            versions = self.flow_versions(flow_id)
            version_id = flow.get("deployed_version_id") or (
                versions[-1]["id"] if versions else None
            )
        elif self.versions.get(version_id, {}).get("flow_id") != flow_id:
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
        run = self._run_dict(run_id, flow_id, version_id, status, "api", started, 0)
        run["finished_at"] = finished
        run.update(fields)
        self._runs[run_id] = run
        return run

    def add_lookup(
        self, name: str, *, rows: Iterable[tuple[str, str]] = (), **fields: Any
    ) -> dict[str, Any]:
        """Seed a lookup and its rows; see ``FakePatchworks.add_lookup``."""
        raw_id = fields.pop("id", None)
        lookup_id = self._new_lookup_id() if raw_id is None else int(raw_id)
        if lookup_id in self.lookups:
            raise ValueError(f"lookup id {lookup_id} is already used")
        pairs = [(str(left), str(right)) for left, right in rows]
        lefts = [left for left, _ in pairs]
        if len(set(lefts)) != len(lefts):
            raise ValueError(f"left values must be distinct, got {lefts}")
        self._lookup_hw = max(self._lookup_hw, lookup_id)
        lookup = self._lookup_dict(lookup_id, name, SEED_TIMESTAMP)
        lookup.update(fields)
        self.lookups[lookup_id] = lookup
        for left, right in pairs:
            value_id = self._new_value_id()
            self.lookup_values[value_id] = self._value_dict(
                value_id, lookup_id, left, right, SEED_TIMESTAMP
            )
        return lookup

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

    # ------------------------------------------------------------------ record shapes

    @staticmethod
    def _flow_dict(
        flow_id: int, name: str, timestamp: str, *, enabled_at: str | None = None
    ) -> dict[str, Any]:
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

    @staticmethod
    def _version_dict(version_id: int, flow_id: int, number: int, timestamp: str) -> dict[str, Any]:
        return {
            "id": version_id,
            "flow_id": flow_id,
            "version": number,
            "created_at": timestamp,
            "updated_at": timestamp,
        }

    @staticmethod
    def _run_dict(
        run_id: int,
        flow_id: int,
        version_id: int | None,
        status: int,
        trigger: str,
        started_at_ms: int,
        payload_size: int,
    ) -> dict[str, Any]:
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

    @staticmethod
    def _lookup_dict(lookup_id: int, name: str, timestamp: str) -> dict[str, Any]:
        return {
            "id": lookup_id,
            "cross_reference_lookup_template_id": None,
            "name": name,
            "description": None,
            "default_value": None,
            "created_at": timestamp,
            "updated_at": timestamp,
        }

    @staticmethod
    def _value_dict(
        value_id: int, lookup_id: int, left: str, right: str, timestamp: str
    ) -> dict[str, Any]:
        return {
            "id": value_id,
            "cross_reference_lookup_id": lookup_id,
            "left_value": left,
            "right_value": right,
            "created_at": timestamp,
            "updated_at": timestamp,
        }

    def _create_flow(
        self, name: str, settings: Mapping[str, Any], version_count: int = 1
    ) -> dict[str, Any]:
        """A new flow (disabled, undeployed) with ``version_count`` fresh versions."""
        now = self.now()
        flow = self._flow_dict(self._new_flow_id(), name, now)
        flow.update({key: settings[key] for key in _FLOW_SETTINGS if key in settings})
        self.flows[flow["id"]] = flow
        for number in range(1, max(1, version_count) + 1):
            version_id = self._new_version_id()
            self.versions[version_id] = self._version_dict(version_id, flow["id"], number, now)
        return flow

    # ------------------------------------------------------------------ flow runs

    @property
    def flow_runs(self) -> dict[int, dict[str, Any]]:
        """Every run, brought up to date first (runs past their duration have finished)."""
        self.settle_runs()
        return self._runs

    def settle_runs(self) -> None:
        """Finish every started run whose time has come: O(runs finishing), not O(runs)."""
        now = self._mono()
        while self._pending and self._pending[0][0] <= now:
            _, run_id, outcome, finished_at = heapq.heappop(self._pending)
            run = self._runs.get(run_id)
            if run is not None and run.get("status") == RUN_STARTED:
                run["status"] = outcome
                run["finished_at"] = finished_at

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
        run = self._run_dict(
            run_id, flow_id, version_id, RUN_STARTED, trigger, started, payload_size
        )
        self._runs[run_id] = run
        finished = started + round(self.run_duration * 1000)
        heapq.heappush(self._pending, (at + self.run_duration, run_id, self.run_outcome, finished))
        return run

    # ------------------------------------------------------------------ shared route helpers

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

    def _list(
        self,
        request: CoreRequest,
        spec: ListSpec,
        items: Iterable[dict[str, Any]],
        decorate: Callable[[list[dict[str, Any]], frozenset[str]], None] | None = None,
    ) -> Reply:
        """Filter, sort and paginate ``items``, copying only the returned page."""
        try:
            query: ListQuery = parse_list_query(request.query, spec)
        except QueryError as error:
            return Reply(error.status, error.body)
        found = filter_items(items, query.predicates)
        ordered = sort_items(found, query.sorts)
        start, stop, _ = paginate(len(ordered), query.page, query.per_page)
        data = [
            select_fields(item, query.fields) for item in itertools.islice(ordered, start, stop)
        ]
        if decorate is not None and query.includes:
            decorate(data, query.includes)
        body = paginator_body(
            data,
            path=request.url,
            query=request.query,
            page=query.page,
            per_page=query.per_page,
            total=len(ordered),
        )
        return Reply(200, body)

    def _show(
        self,
        request: CoreRequest,
        item: Mapping[str, Any],
        spec: ListSpec,
        decorate: Callable[[list[dict[str, Any]], frozenset[str]], None] | None = None,
    ) -> Reply:
        """One resource with its includes and fields, as a ``{"data": ...}`` reply."""
        try:
            includes = parse_includes(request.query, spec.includes, spec.silent_includes)
        except QueryError as error:
            return Reply(error.status, error.body)
        data = select_fields(item, parse_fields(request.query, spec.resource))
        if decorate is not None and includes:
            decorate([data], includes)
        return Reply(200, {"data": data})

    # ------------------------------------------------------------------ flows

    def _find_flow(self, request: CoreRequest) -> dict[str, Any] | None:
        flow_id = _as_id(request.params.get("flow_id"))
        return None if flow_id is None else self.flows.get(flow_id)

    def _include_flow_relations(self, data: list[dict[str, Any]], includes: frozenset[str]) -> None:
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

    def list_flows(self, request: CoreRequest) -> Reply:
        """``GET /flows``."""
        return self._list(
            request, self._flow_spec, self.flows.values(), self._include_flow_relations
        )

    def get_flow(self, request: CoreRequest) -> Reply:
        """``GET /flows/{flow}``, with the same includes and fields as the list."""
        flow = self._find_flow(request)
        if flow is None:
            return _not_found("Flow", request.params["flow_id"])
        return self._show(request, flow, self._flow_spec, self._include_flow_relations)

    def create_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows`` with ``{"flow": {name, description, prod_flag}}``: one version."""
        outer = _Form(request.body)
        fields = outer.object("flow") or {}
        form = _Form(fields, prefix="flow.")
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
        flow = self._find_flow(request)
        if flow is None:
            return _not_found("Flow", request.params["flow_id"])
        outer = _Form(request.body)
        fields = outer.object("flow") or {}
        form = _Form(fields, prefix="flow.", partial=True)
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
            flow["updated_at"] = self.now()
        return Reply(200, {"data": dict(flow)})

    def delete_flow(self, request: CoreRequest) -> Reply:
        """``DELETE /flows/{flow}``: the flow and its versions (its runs stay, as history)."""
        flow = self._find_flow(request)
        if flow is None:
            return _not_found("Flow", request.params["flow_id"])
        del self.flows[flow["id"]]
        for version_id in [v["id"] for v in self.versions.values() if v["flow_id"] == flow["id"]]:
            del self.versions[version_id]
        return Reply(200, {"message": "Flow deleted."})

    def export_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/export`` with ``{"flow_id"}``: the flow and its versions."""
        form = _Form(request.body)
        form.integer("flow_id", required=True)
        if form.errors:
            return form.reply()
        flow = self.flows.get(form.valid["flow_id"])
        if flow is None:
            return _not_found("Flow", str(form.valid["flow_id"]))
        versions = [dict(version) for version in self.flow_versions(flow["id"])]
        return Reply(
            200, {"data": {"flow": dict(flow), "versions": versions, "exported_at": self.now()}}
        )

    def import_flow(self, request: CoreRequest) -> Reply:
        """``POST /flows/import`` with an export's ``data`` as ``flow``, and ``metadata``.

        The new flow takes the export's name and settings, one version per exported
        version (at least one), and starts disabled and undeployed.
        """
        form = _Form(request.body)
        exported = form.object("flow", required=True)
        form.object("metadata", required=True)
        form.boolean("as_marketplace")
        source: Mapping[str, Any] = {}
        if exported is not None:
            inner = _Form(exported, prefix="flow.")
            source = inner.object("flow", required=True) or {}
            named = _Form(source, prefix="flow.flow.")
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
        flow = self._find_flow(request)
        if flow is None:
            return _not_found("Flow", request.params["flow_id"])
        form = _Form(request.body)
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
        flow = self._find_flow(request)
        if flow is None:
            return _not_found("Flow", request.params["flow_id"])
        current = flow.get("layout_direction", "horizontal")
        flow["layout_direction"] = _LAYOUTS[1] if current == _LAYOUTS[0] else _LAYOUTS[0]
        flow["updated_at"] = self.now()
        return Reply(204, None)

    # ------------------------------------------------------------------ flow runs routes

    def _include_run_relations(self, data: list[dict[str, Any]], includes: frozenset[str]) -> None:
        """Add ``flow`` and ``flow_version`` to each run (null when since deleted)."""
        for item in data:
            stored = self._runs.get(item["id"], item)
            if "flow" in includes:
                flow = self.flows.get(stored.get("flow_id") or -1)
                item["flow"] = dict(flow) if flow is not None else None
            if "flowVersion" in includes:
                version = self.versions.get(stored.get("flow_version_id") or -1)
                item["flow_version"] = dict(version) if version is not None else None

    def list_flow_runs(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs``."""
        self.settle_runs()
        return self._list(request, _RUN_SPEC, self._runs.values(), self._include_run_relations)

    def get_flow_run(self, request: CoreRequest) -> Reply:
        """``GET /flow-runs/{run}``."""
        self.settle_runs()
        run_id = _as_id(request.params.get("run_id"))
        run = self._runs.get(run_id) if run_id is not None else None
        if run is None:
            return _not_found("FlowRun", request.params["run_id"])
        return self._show(request, run, _RUN_SPEC, self._include_run_relations)

    # ------------------------------------------------------------------ lookups routes

    def _find_lookup(self, request: CoreRequest) -> dict[str, Any] | None:
        lookup_id = _as_id(request.params.get("lookup_id"))
        return None if lookup_id is None else self.lookups.get(lookup_id)

    def _rows(self, lookup_id: int) -> list[dict[str, Any]]:
        return [
            row
            for row in self.lookup_values.values()
            if row["cross_reference_lookup_id"] == lookup_id
        ]

    def list_lookups(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups``."""
        return self._list(request, _LOOKUP_SPEC, self.lookups.values())

    def get_lookup(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups/{id}``."""
        lookup = self._find_lookup(request)
        if lookup is None:
            return _not_found("CrossReferenceLookup", request.params["lookup_id"])
        return self._show(request, lookup, _LOOKUP_SPEC)

    def _lookup_form(self, request: CoreRequest, *, partial: bool) -> _Form:
        form = _Form(request.body, partial=partial)
        form.string("name", required=True, max_length=255)
        form.string("description")
        form.string("default_value")
        return form

    def create_lookup(self, request: CoreRequest) -> Reply:
        """``POST /cross-reference-lookups``: created with no rows."""
        form = self._lookup_form(request, partial=False)
        if form.errors:
            return form.reply()
        now = self.now()
        lookup = self._lookup_dict(self._new_lookup_id(), form.valid["name"], now)
        lookup.update(form.valid)
        self.lookups[lookup["id"]] = lookup
        return Reply(201, {"data": dict(lookup)})

    def update_lookup(self, request: CoreRequest) -> Reply:
        """``PUT /cross-reference-lookups/{id}``: only the given keys change."""
        lookup = self._find_lookup(request)
        if lookup is None:
            return _not_found("CrossReferenceLookup", request.params["lookup_id"])
        form = self._lookup_form(request, partial=True)
        if form.errors:
            return form.reply()
        if form.valid:
            lookup.update(form.valid)
            lookup["updated_at"] = self.now()
        return Reply(200, {"data": dict(lookup)})

    def delete_lookup(self, request: CoreRequest) -> Reply:
        """``DELETE /cross-reference-lookups/{id}``, with its rows."""
        lookup = self._find_lookup(request)
        if lookup is None:
            return _not_found("CrossReferenceLookup", request.params["lookup_id"])
        del self.lookups[lookup["id"]]
        for row in self._rows(lookup["id"]):
            del self.lookup_values[row["id"]]
        return Reply(200, {"message": "Lookup deleted."})

    def list_lookup_values(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups/{id}/values``."""
        lookup = self._find_lookup(request)
        if lookup is None:
            return _not_found("CrossReferenceLookup", request.params["lookup_id"])
        return self._list(request, _VALUE_SPEC, self._rows(lookup["id"]))

    def _left_value_taken(self, lookup_id: int, left: str, *, besides: int | None = None) -> bool:
        return any(
            row["left_value"] == left and row["id"] != besides for row in self._rows(lookup_id)
        )

    def create_lookup_value(self, request: CoreRequest) -> Reply:
        """``POST /cross-reference-lookups/{id}/values``; 409 when the left value exists."""
        lookup = self._find_lookup(request)
        if lookup is None:
            return _not_found("CrossReferenceLookup", request.params["lookup_id"])
        form = _Form(request.body)
        form.string("left_value", required=True)
        form.string("right_value", required=True)
        if form.errors:
            return form.reply()
        left, right = form.valid["left_value"], form.valid["right_value"]
        if self._left_value_taken(lookup["id"], left):
            return Reply(409, {"message": "A row with this left value already exists."})
        row = self._value_dict(self._new_value_id(), lookup["id"], left, right, self.now())
        self.lookup_values[row["id"]] = row
        return Reply(201, {"data": dict(row)})

    def _find_row(self, request: CoreRequest) -> tuple[dict[str, Any] | None, Reply | None]:
        """The lookup's row named by ``value_id``; a row of another lookup is a 404 too."""
        lookup = self._find_lookup(request)
        if lookup is None:
            return None, _not_found("CrossReferenceLookup", request.params["lookup_id"])
        value_id = _as_id(request.params.get("value_id"))
        row = self.lookup_values.get(value_id) if value_id is not None else None
        if row is None or row["cross_reference_lookup_id"] != lookup["id"]:
            return None, _not_found("CrossReferenceLookupValue", request.params["value_id"])
        return row, None

    def update_lookup_value(self, request: CoreRequest) -> Reply:
        """``PUT /cross-reference-lookups/{id}/values/{valueID}``: only the given keys."""
        row, missing = self._find_row(request)
        if row is None:
            assert missing is not None
            return missing
        form = _Form(request.body, partial=True)
        form.string("left_value", required=True)
        form.string("right_value", required=True)
        if form.errors:
            return form.reply()
        left = form.valid.get("left_value")
        if left is not None and self._left_value_taken(
            row["cross_reference_lookup_id"], left, besides=row["id"]
        ):
            return Reply(409, {"message": "A row with this left value already exists."})
        if form.valid:
            row.update(form.valid)
            row["updated_at"] = self.now()
        return Reply(200, {"data": dict(row)})

    def delete_lookup_value(self, request: CoreRequest) -> Reply:
        """``DELETE /cross-reference-lookups/{id}/values/{valueID}``."""
        row, missing = self._find_row(request)
        if row is None:
            assert missing is not None
            return missing
        del self.lookup_values[row["id"]]
        return Reply(200, {"message": "Value deleted."})
