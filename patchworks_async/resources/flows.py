"""Process flows: starting them, and reading them."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Unpack

from attrs import frozen

from .._api import data_of
from .._bulk import BulkStart, start_many
from .._config import check_id
from .._errors import ConfigurationError, UnexpectedResponseError
from .._models import structure, structure_written
from .._pagination import AsyncPaginator, ListOptions, include_param
from .._starts import OMITTED, FlowRunStarted, StartTarget, send_start
from .flow_versions import FlowVersion

if TYPE_CHECKING:
    from .._api import Api

__all__ = ["Flow", "FlowLabel", "Flows"]

UPDATE_TOP_LEVEL_FIELDS = frozenset({"labels", "notification_groups"})
"""``update()`` fields the API takes beside the ``flow`` object rather than inside it."""


@frozen
class FlowLabel:
    """A label on a flow (filter flows by one with ``filter={"labelled": label.id}``)."""

    id: int
    name: str | None = None


@frozen
class Flow:
    """A process flow. Relations are ``None`` unless asked for with ``include=``, and every
    field but ``id`` may be absent (sparse ``fields=``)."""

    id: int
    name: str | None = None
    description: str | None = None
    status: int | str | None = None
    is_enabled: bool | None = None
    enabled_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    deployed_version_id: int | None = None
    versions: tuple[FlowVersion, ...] | None = None
    latest_version: FlowVersion | None = None
    current_version: FlowVersion | None = None
    deployed_version: FlowVersion | None = None
    labels: tuple[FlowLabel, ...] | None = None


class Flows:
    """``client.flows``: process flows."""

    def __init__(self, api: Api) -> None:
        self._api = api

    async def start(
        self,
        flow_id: int | str,
        version_id: int | str | None,
        payload: object = OMITTED,
        *,
        raw: bool = False,
        flow_variables: Mapping[str, Any] | list[Any] | str | None = None,
        virtual_environment_id: int | str | None = None,
    ) -> FlowRunStarted:
        """Start a flow run. It is *queued*: it becomes a run when the flow has concurrency
        free (within about 30 s), so ``flow_runs.get(started.id)`` may answer 404 until then
        (``flow_runs.wait`` allows for that).

        The body is built and measured before anything else happens: a bad or oversized
        payload raises without taking a rate-limit token or touching the network.

        Args:
            flow_id: The flow to start.
            version_id: The version to run, or ``None`` for the deployed version.
            payload: What to send. Standard starts take a ``str`` (sent as is), ``bytes``
                (UTF-8) or anything JSON-serialisable (dicts, lists, numbers, attrs and
                dataclass instances), sent as the string the API wants. Omit it to start
                the flow with no payload; ``None`` is refused as the mistake it usually is.
            raw: Use the raw variant (the vendor's advice for new integrations): the JSON
                document itself is the body, not a string inside one. Data is serialised;
                a ``str`` or ``bytes`` must already be JSON (checked before sending).
            flow_variables: Flow variables: a mapping, sent as the JSON string the API
                documents (or a JSON string of your own).
            virtual_environment_id: The virtual environment to run in.

        Returns:
            The run's id (``None`` when the reply names none: the start still happened),
            the server's message and the raw reply.

        Raises:
            PayloadError: the payload is None, blank, not JSON for a raw start, or
                unserialisable.
            PayloadTooLargeError: the body is over ``max_body_bytes``.
            ConfigurationError: an id or another argument the API cannot take.
            OutcomeUnknownError: the server may or may not have started the run (among
                other cases, a 2xx reply that is not JSON, which proves nothing).
        """
        target = StartTarget.build(
            flow_id,
            version_id,
            raw=raw,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
        )
        return await self._start(target, payload)

    async def initialise(
        self,
        flow_id: int | str,
        version_id: int | str | None,
        payload: object = OMITTED,
        *,
        raw: bool = False,
        flow_variables: Mapping[str, Any] | list[Any] | str | None = None,
        virtual_environment_id: int | str | None = None,
    ) -> FlowRunStarted:
        """Initialise a flow manually: it runs at once (no queue), 10 a minute at most.

        Takes the same arguments as :meth:`start`. The client holds a manual-initialise
        token before it queues for a global one, ahead of ordinary requests.
        """
        target = StartTarget.build(
            flow_id,
            version_id,
            manual=True,
            raw=raw,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
        )
        return await self._start(target, payload)

    async def _start(self, target: StartTarget, payload: object) -> FlowRunStarted:
        body = target.encode(payload, max_body_bytes=self._api.max_body_bytes)
        return await send_start(self._api, target, body)

    def start_many(
        self,
        flow_id: int | str,
        version_id: int | str | None,
        payloads: Iterable[object] | AsyncIterable[object],
        *,
        concurrency: int = 16,
        manual: bool = False,
        raw: bool = False,
        journal: str | os.PathLike[str] | None = None,
        flow_variables: Mapping[str, Any] | list[Any] | str | None = None,
        virtual_environment_id: int | str | None = None,
        resend_unknown: bool = False,
        drain_timeout: float = 5.0,
    ) -> BulkStart:
        """Start a flow once per payload; yields one :class:`StartResult` per item.

        Payloads are read lazily (a generator of a million items is never held in memory)
        and results come in completion order, each naming its ``index``. A bad item (blank,
        too large) is a ``failed`` result, never the end of the batch.

        Stopping is safe at any moment. Leaving the loop (``break``, an exception, a
        cancelled task) or closing the client sends nothing new: items waiting for a
        rate-limit slot give it back, and the requests already on the wire get
        ``drain_timeout`` seconds to finish, so that their outcome is known and journaled.
        ``async with pw.flows.start_many(...) as results:`` makes that happen at once;
        ``results.stop()`` does it while you keep reading the last results (items that
        were never sent then come back ``not_sent``).

        Args:
            flow_id: The flow to start.
            version_id: The version, or ``None`` for the deployed one.
            payloads: Any iterable or async iterable of payloads (see :meth:`start`); not a
                single ``str``, ``bytes`` or mapping.
            concurrency: Requests in flight at most.
            manual: Use manual initialise (10 a minute) instead of queued starts.
            raw: Use the raw variant for every start (see :meth:`start`).
            journal: A SQLite file recording every item at the moment its request leaves
                and its outcome before you see it. Re-running with the same journal and
                input skips what started (``skipped``), reports what may have reached the
                server as ``unknown`` without resending it, sends what failed or was never
                sent, and raises :class:`JournalMismatchError` if the input changed.
            flow_variables: Flow variables for every start.
            virtual_environment_id: Virtual environment for every start.
            resend_unknown: With a journal, resend items whose outcome is unknown (they may
                start twice).
            drain_timeout: Seconds the requests in flight may take to finish after the
                batch stops.

        Raises:
            ConfigurationError: an argument is unusable (raised here, before anything is
                read or sent).
        """
        target = StartTarget.build(
            flow_id,
            version_id,
            manual=manual is True,
            raw=raw,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
        )
        return start_many(
            self._api,
            target,
            payloads,
            concurrency=concurrency,
            manual=manual,
            journal=journal,
            resend_unknown=resend_unknown,
            drain_timeout=drain_timeout,
        )

    def list(self, **options: Unpack[ListOptions]) -> AsyncPaginator[Flow]:
        """Stream the account's flows, a page at a time.

        Filters include ``name``, ``enabled``, ``deployed``, ``id``, ``labelled`` (a label
        id), ``marketplace_app_id``, ``versions.id``; includes ``versions``,
        ``latestVersion``, ``deployedVersion``, ``currentVersion``, ``labels``; sorts
        ``name``, ``enabled_at``, ``created_at``, ``id``. See :class:`ListOptions` for the
        arguments.
        """
        return self._api.paginate(["flows"], Flow, options)

    async def get(self, flow_id: int | str, *, include: str | Iterable[str] | None = None) -> Flow:
        """One flow, with the relations named in ``include`` (``versions``, ``latestVersion``)."""
        check_id("flow_id", flow_id)
        reply = await self._api.request(
            "core", "GET", ["flows", flow_id], params=include_param(include)
        )
        return structure(data_of(reply), Flow, body=reply)

    async def create(
        self, name: str, *, description: str | None = None, prod_flag: bool | None = None
    ) -> Flow:
        """Create a flow. Not retried after an ambiguous failure (it could create two), and
        never an error after the server said yes (the README's "Writes").
        """
        fields: dict[str, Any] = {"name": name}
        if description is not None:
            fields["description"] = description
        if prod_flag is not None:
            fields["prod_flag"] = prod_flag
        reply = await self._api.request("core", "POST", ["flows"], json={"flow": fields})
        return structure_written(data_of(reply), Flow, request="POST flows")

    async def update(self, flow_id: int | str, **fields: Any) -> Flow:
        """Change only the fields given (``name``, ``description``, ``enabled_at``, ...).

        Flow fields are sent inside ``flow``; ``labels`` and ``notification_groups`` beside it,
        as the API reference lays out the body.
        """
        check_id("flow_id", flow_id)
        if not fields:
            raise ConfigurationError("update() needs at least one field to change")
        body: dict[str, Any] = {
            key: fields.pop(key) for key in list(fields) if key in UPDATE_TOP_LEVEL_FIELDS
        }
        if fields:
            body["flow"] = fields
        reply = await self._api.request("core", "PUT", ["flows", flow_id], json=body)
        return structure(data_of(reply), Flow, body=reply)

    async def delete(self, flow_id: int | str) -> None:
        """Delete a flow."""
        check_id("flow_id", flow_id)
        await self._api.request("core", "DELETE", ["flows", flow_id])

    async def export(self, flow_id: int | str) -> dict[str, Any]:
        """Export a flow: the bundle as the server sends it (``metadata``, ``flow`` with its
        versions, ``systems``), ready for :meth:`import_`.

        Safe to retry: exporting changes nothing.
        """
        check_id("flow_id", flow_id)
        reply = await self._api.request(
            "core", "POST", ["flows", "export"], json={"flow_id": flow_id}, idempotent=True
        )
        if not isinstance(reply, Mapping):
            raise UnexpectedResponseError("an export should be a JSON object", body=reply)
        if set(reply) == {"data"} and isinstance(reply["data"], Mapping):
            return dict(reply["data"])  # the bundle, wrapped
        return dict(reply)

    async def import_(
        self,
        bundle: Mapping[str, Any],
        *,
        as_marketplace: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> Flow:
        """Import a flow from a bundle as :meth:`export` returns it (the vendor's shape:
        ``{"metadata", "flow": {name, ..., versions}, "systems"}``); returns the new flow.

        Args:
            bundle: The export bundle, sent as is.
            as_marketplace: Import it as a marketplace flow.
            metadata: Replaces the bundle's ``metadata`` when given.

        Not idempotent: after an ambiguous failure it raises :class:`OutcomeUnknownError`
        rather than risk a second copy, and once the server said yes it never raises.
        """
        if not isinstance(bundle, Mapping) or not isinstance(bundle.get("flow"), Mapping):
            raise ConfigurationError(
                "bundle must be a flow export: a mapping with a 'flow' object "
                "(what flows.export() returns)"
            )
        body = {**bundle, "as_marketplace": as_marketplace}
        if metadata is not None:
            body["metadata"] = dict(metadata)
        reply = await self._api.request("core", "POST", ["flows", "import"], json=body)
        return structure_written(data_of(reply), Flow, request="POST flows/import")

    async def duplicate(self, flow_id: int | str, flow_version_id: int | str) -> Flow:
        """Copy a flow from one of its versions; returns the new flow (its name gets a
        number). Not retried after an ambiguous failure."""
        check_id("flow_id", flow_id)
        check_id("flow_version_id", flow_version_id)
        reply = await self._api.request(
            "core",
            "POST",
            ["flows", flow_id, "duplicate"],
            json={"flow_version_id": flow_version_id},
        )
        return structure_written(data_of(reply), Flow, request=f"POST flows/{flow_id}/duplicate")

    async def toggle_layout_direction(self, flow_id: int | str) -> None:
        """Flip the flow's canvas between horizontal and vertical (no content comes back).

        A toggle is not idempotent: an ambiguous failure raises
        :class:`OutcomeUnknownError` instead of flipping it twice.
        """
        check_id("flow_id", flow_id)
        await self._api.request(
            "core", "PATCH", ["flows", flow_id, "layout-direction"], idempotent=False
        )
