"""The Start service: starting a flow and initialising one manually.

``POST /start/api/v1/flows/{flow}/start[/{version}]`` and ``.../manual[/{version}]`` are the
routes a client must never call twice by mistake, so the fake validates them as Laravel
does (every failing field in one 422), records each accepted start in ``starts`` and
creates its flow run, and replies with the run id under the key configured in
``run_id_key``: the real key is undocumented, so a client must cope with each one seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from ._checks import as_id
from ._http import Call, json_response, message_response, parse_object, validation_response
from ._records import Records, StartedRun
from ._store import Store

__all__ = ["RUN_ID_KEYS", "StartRoutes", "check_run_id_key"]

RUN_ID_KEYS: Final = ("flow_run_id", "run_id", "id", "data.id", "data.flow_run_id")
"""Where a start reply may put the run id; ``data.`` keys nest it in a ``data`` object."""


def check_run_id_key(value: str) -> str:
    """Refuse a run id location the real API has not been seen to use.

    Raises:
        ValueError: If ``value`` is not one of ``RUN_ID_KEYS``.
    """
    if value not in RUN_ID_KEYS:
        raise ValueError(f"run_id_key must be one of {RUN_ID_KEYS}, got {value!r}")
    return value


def _payload_error(payload: Any) -> str | None:
    """Laravel's ``required|string`` rule, after TrimStrings and ConvertEmptyStringsToNull."""
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return "The payload field is required."
    if not isinstance(payload, str):
        return "The payload field must be a string."
    return None


def _virtual_environment(value: Any) -> tuple[int | None, str | None]:
    """Laravel's ``nullable|integer`` rule: ints and digit strings pass."""
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, str) and as_id(value.strip()) is not None:
        return int(value), None
    return None, "The virtual environment id field must be an integer."


def _flow_variables(value: Any) -> tuple[dict[str, Any] | list[Any] | None, str | None]:
    """Laravel's ``nullable|array`` rule: a JSON object or list."""
    if value is None or isinstance(value, dict | list):
        return value, None
    return None, "The flow variables field must be an array."


class StartRoutes:
    """The start and manual-initialise routes of one fake.

    Attributes:
        run_id_key: Where replies put the run id (one of ``RUN_ID_KEYS``; the caller
            checks it with ``check_run_id_key``).
    """

    def __init__(self, store: Store, records: Records, run_id_key: str) -> None:
        """Start flows of ``store``, recording each accepted start in ``records``.

        Args:
            store: The Core API data: the flows and versions to start, and their runs.
            records: Where each accepted start is appended to ``starts``.
            run_id_key: Where replies put the run id.
        """
        self._store = store
        self._records = records
        self.run_id_key = run_id_key

    def start_flow(self, call: Call, params: Mapping[str, str]) -> web.Response:
        """Start or manual initialise: validate like Laravel, record the start and its run."""
        flow_id = as_id(params["flow_id"])
        flow = None if flow_id is None else self._store.flows.get(flow_id)
        if flow is None:
            return message_response(404, f"No query results for model [Flow] {params['flow_id']}")
        fields = parse_object(call.body)
        if fields is None:
            return message_response(400, "Malformed JSON.")
        errors: dict[str, list[str]] = {}
        payload_error = _payload_error(fields.get("payload"))
        if payload_error is not None:
            errors["payload"] = [payload_error]
        version_id, version_error = self._resolve_version(flow, params.get("version_id"))
        if version_error is not None:
            errors["version_id"] = [version_error]
        variables, variables_error = _flow_variables(fields.get("flow_variables"))
        if variables_error is not None:
            errors["flow_variables"] = [variables_error]
        environment, environment_error = _virtual_environment(fields.get("virtual_environment_id"))
        if environment_error is not None:
            errors["virtual_environment_id"] = [environment_error]
        if errors or version_id is None:
            return validation_response(errors)
        run_id = self._store.new_run_id()
        self._store.record_start(
            run_id,
            int(flow["id"]),
            version_id,
            manual=call.kind == "manual",
            payload_size=len(fields["payload"].encode("utf-8")),
            at=call.at,
        )
        self._records.starts.append(
            StartedRun(
                run_id=run_id,
                flow_id=int(flow["id"]),
                version_id=version_id,
                payload=fields["payload"],
                manual=call.kind == "manual",
                flow_variables=variables,
                virtual_environment_id=environment,
                received_at=call.at,
            )
        )
        return json_response(200, self._start_reply(run_id))

    def _resolve_version(
        self, flow: Mapping[str, Any], raw_version: str | None
    ) -> tuple[int | None, str | None]:
        """The version to run: the URL's if it belongs to the flow, else the deployed one."""
        if raw_version is None:
            deployed = flow.get("deployed_version_id")
            if deployed is None:
                return None, "The flow has no deployed version."
            return int(deployed), None
        version_id = as_id(raw_version)
        version = self._store.versions.get(version_id) if version_id is not None else None
        if version is None or version["flow_id"] != flow["id"]:
            return None, "The selected version id is invalid."
        return version_id, None

    def _start_reply(self, run_id: int) -> dict[str, Any]:
        """The success body, with the run id under the configured key."""
        reply: dict[str, Any] = {"message": "flow initialised"}
        if self.run_id_key.startswith("data."):
            reply["data"] = {self.run_id_key.removeprefix("data."): run_id}
        else:
            reply[self.run_id_key] = run_id
        return reply
