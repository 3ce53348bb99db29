"""The Start service: starting a flow and initialising one manually, standard and raw.

``POST /start/api/v1/flows/{flow}/start[/{version}]`` and ``.../manual[/{version}]`` (the
standard variant) take ``{"payload": "<string>", "flow_variables"?,
"virtual_environment_id"?, "version_id"?}``; ``.../start/raw[/{version}]`` and
``.../manual/raw[/{version}]`` take the JSON document itself as the body, with
``flow_variables`` and ``virtual_environment_id`` as query parameters. Both accept a start
with no payload at all ("this triggers the flow with an empty payload"), but a payload
that is there and blank is refused as a probable mistake (422), as is a standard payload
that is not a string.

These are the routes a client must never call twice by mistake, so the fake validates
them as Laravel does (every failing field in one 422), records each accepted start in
``starts``, and hands it to the store: ``/start`` queues, ``/manual`` runs at once. The
reply carries the id of the run the start becomes under ``run_id_key`` (the real key is
undocumented, so a client must cope with each one seen, and with none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from ._checks import as_id
from ._http import Call, json_response, message_response, parse_object, validation_response
from ._lifecycle import StartOrder
from ._records import Records, StartedRun
from ._store import Store
from ._switches import start_reply

__all__ = ["StartRoutes"]

_NOT_JSON: Final = "The payload field must be a valid JSON string."
_ABSENT: Final = object()


def _payload_error(payload: Any) -> str | None:
    """``sometimes|required|string``, after TrimStrings and ConvertEmptyStringsToNull.

    An absent payload passes (an empty start); a null or blank one is "required", a
    non-string one "must be a string".
    """
    if payload is _ABSENT:
        return None
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return "The payload field is required."
    if not isinstance(payload, str):
        return "The payload field must be a string."
    return None


def _virtual_environment(value: Any) -> tuple[int | None, str | None]:
    """Laravel's ``nullable|integer`` rule: ints and digit strings pass."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, str) and as_id(value.strip()) is not None:
        return int(value), None
    return None, "The virtual environment id field must be an integer."


def _flow_variables(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON-encoded object (as documented), or an object (tolerated); else a 422.

    The reference types ``flow_variables`` as a string and the vendor's MCP sends
    ``json.dumps({...})``; an object is accepted too. The decoded object is returned.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, dict):
        return value, None
    if not isinstance(value, str):
        return None, "The flow variables field must be a string."
    try:
        decoded = json.loads(value)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        return None, "The flow variables field must be a valid JSON string."
    return decoded, None


class StartRoutes:
    """The start and manual-initialise routes (standard and raw) of one fake."""

    def __init__(self, store: Store, records: Records) -> None:
        """Start flows of ``store``, recording each accepted start in ``records``.

        Args:
            store: The Core API data: the flows and versions to start, and their runs;
                its switches say where replies put the run id.
            records: Where each accepted start is appended to ``starts``.
        """
        self._store = store
        self._records = records

    def start_flow(self, call: Call, params: Mapping[str, str]) -> web.Response:
        """The standard variant: the payload is the ``payload`` string of a JSON object."""
        flow = self._flow(params)
        if flow is None:
            return message_response(404, f"No query results for model [Flow] {params['flow_id']}")
        fields = parse_object(call.body)
        if fields is None:
            return message_response(400, "Malformed JSON.")
        payload = fields.get("payload", _ABSENT)
        errors: dict[str, list[str]] = {}
        payload_error = _payload_error(payload)
        if payload_error is not None:
            errors["payload"] = [payload_error]
        raw_version = params.get("version_id")
        if raw_version is None and fields.get("version_id") is not None:
            raw_version = str(fields["version_id"])  # the body may name the version instead
        text = payload if isinstance(payload, str) else ""
        return self._accept(call, flow, raw_version, fields, errors, raw=False, text=text)

    def start_raw_flow(self, call: Call, params: Mapping[str, str]) -> web.Response:
        """The raw variant: the body is the JSON document itself, stored byte for byte."""
        flow = self._flow(params)
        if flow is None:
            return message_response(404, f"No query results for model [Flow] {params['flow_id']}")
        errors: dict[str, list[str]] = {}
        if call.body:
            try:
                json.loads(call.body)
            except ValueError:  # UnicodeDecodeError included
                errors["payload"] = [_NOT_JSON]
        query = dict(call.request.query)
        text = call.body.decode("utf-8", "replace")
        return self._accept(
            call, flow, params.get("version_id"), query, errors, raw=True, text=text
        )

    def _flow(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        """The flow the path names, if it exists."""
        flow_id = as_id(params["flow_id"])
        return None if flow_id is None else self._store.flows.get(flow_id)

    def _accept(
        self,
        call: Call,
        flow: Mapping[str, Any],
        raw_version: str | None,
        options: Mapping[str, Any],
        errors: dict[str, list[str]],
        *,
        raw: bool,
        text: str,
    ) -> web.Response:
        """Check the version and options, then record the start and hand it to the store.

        Args:
            call: The request.
            flow: The flow to start.
            raw_version: The version named by the path (or the body), if any.
            options: Where ``flow_variables`` and ``virtual_environment_id`` come from:
                the body (standard) or the query (raw).
            errors: The payload's failures so far; every other failure is added.
            raw: True for the raw variant: the body itself is the payload.
            text: The payload as text (``payload``, or the raw body; "" for an empty start).
        """
        version_id, version_error = self._resolve_version(flow, raw_version)
        if version_error is not None:
            errors["version_id"] = [version_error]
        variables, variables_error = _flow_variables(options.get("flow_variables"))
        if variables_error is not None:
            errors["flow_variables"] = [variables_error]
        environment, environment_error = _virtual_environment(options.get("virtual_environment_id"))
        if environment_error is not None:
            errors["virtual_environment_id"] = [environment_error]
        if errors or version_id is None:
            return validation_response(errors)
        data = call.body if raw else text.encode("utf-8")
        manual = call.kind == "manual"
        started = self._store.start(
            StartOrder(
                flow_id=int(flow["id"]),
                version_id=version_id,
                payload=data,
                raw=raw,
                manual=manual,
                at=call.at,
                virtual_environment_id=environment,
            )
        )
        self._records.starts.append(
            StartedRun(
                run_id=started.run_id,
                flow_id=int(flow["id"]),
                version_id=version_id,
                payload=text,
                manual=manual,
                flow_variables=variables,
                virtual_environment_id=environment,
                received_at=call.at,
                raw=raw,
                payload_bytes=data,
                payload_metadata_id=started.payload_metadata_id,
                scheduled_flow_id=started.scheduled_flow_id,
            )
        )
        return json_response(200, start_reply(started.run_id, self._store.switches.run_id_key))

    def _resolve_version(
        self, flow: Mapping[str, Any], raw_version: str | None
    ) -> tuple[int | None, str | None]:
        """The version to run: the one named if it belongs to the flow, else the deployed one."""
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
