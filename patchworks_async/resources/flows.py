"""Process flows: starting them, and reading them."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Unpack

from .._bulk import StartResult, start_many
from .._errors import ConfigurationError, UnexpectedResponseError
from .._models import Flow, FlowRunStarted, structure
from .._pagination import AsyncPaginator, ListOptions
from .._payload import encode_start_body
from .._ratelimit import RequestKind

if TYPE_CHECKING:
    from .._client import PatchworksClient

__all__ = ["Flows", "data_of", "include_param"]

UPDATE_TOP_LEVEL_FIELDS = frozenset({"labels", "notification_groups"})
"""``update()`` fields the API takes beside the ``flow`` object rather than inside it."""


def include_param(include: str | Iterable[str] | None) -> list[tuple[str, str]]:
    """``include=a,b`` from a string or a list of relation names; nothing for ``None``."""
    if include is None:
        return []
    names = [include] if isinstance(include, str) else list(include)
    return [("include", ",".join(names))] if names else []


def data_of(reply: Any) -> Any:
    """The ``data`` member of a single-resource reply."""
    if not isinstance(reply, Mapping) or "data" not in reply:
        raise UnexpectedResponseError("the reply has no 'data' member", field="data", body=reply)
    return reply["data"]


class Flows:
    """``client.flows``: process flows."""

    def __init__(self, client: PatchworksClient) -> None:
        self._client = client

    async def start(
        self,
        flow_id: int | str,
        version_id: int | str | None,
        payload: object,
        *,
        flow_variables: Mapping[str, Any] | list[Any] | None = None,
        virtual_environment_id: int | str | None = None,
    ) -> FlowRunStarted:
        """Start a flow run (queued until the flow has concurrency free).

        The payload is stringified and the whole body measured before anything else
        happens: a bad or oversized payload raises without taking a rate-limit token or
        touching the network.

        Args:
            flow_id: The flow to start.
            version_id: The version to run, or ``None`` for the deployed version.
            payload: ``str`` (sent as is), ``bytes`` (UTF-8), or anything JSON-serialisable
                (dicts, lists, numbers, attrs and dataclass instances).
            flow_variables: Optional flow variables.
            virtual_environment_id: Optional virtual environment to run in.

        Returns:
            The run's id, the server's message and the raw reply.

        Raises:
            PayloadError: the payload is blank, None or unserialisable.
            PayloadTooLargeError: the body is over ``max_body_bytes``.
            OutcomeUnknownError: the server may or may not have started the run.
        """
        return await self._start(
            "start",
            RequestKind.START,
            flow_id,
            version_id,
            payload,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
        )

    async def initialise(
        self,
        flow_id: int | str,
        version_id: int | str | None,
        payload: object,
        *,
        flow_variables: Mapping[str, Any] | list[Any] | None = None,
        virtual_environment_id: int | str | None = None,
    ) -> FlowRunStarted:
        """Initialise a flow manually: runs at once, limited to 10 a minute by the server.

        Takes the same arguments as :meth:`start`. The client holds a manual-initialise
        token before it queues for a global one, ahead of ordinary requests.
        """
        return await self._start(
            "manual",
            RequestKind.MANUAL,
            flow_id,
            version_id,
            payload,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
        )

    async def _start(
        self,
        route: str,
        kind: RequestKind,
        flow_id: int | str,
        version_id: int | str | None,
        payload: object,
        *,
        flow_variables: Mapping[str, Any] | list[Any] | None,
        virtual_environment_id: int | str | None,
    ) -> FlowRunStarted:
        body = self._encode(flow_id, version_id, payload, flow_variables, virtual_environment_id)
        return await self._post_start(self._start_path(flow_id, version_id, route), body, kind)

    def _encode(
        self,
        flow_id: int | str,
        version_id: int | str | None,
        payload: object,
        flow_variables: Mapping[str, Any] | list[Any] | None,
        virtual_environment_id: int | str | None,
    ) -> bytes:
        """The exact body of one start, checked against the client's ``max_body_bytes``."""
        return encode_start_body(
            flow_id,
            version_id,
            payload,
            max_body_bytes=self._client.max_body_bytes,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
        )

    @staticmethod
    def _start_path(
        flow_id: int | str, version_id: int | str | None, route: str
    ) -> list[str | int]:
        """``flows/{id}/{start|manual}[/{version}]``: no version runs the deployed one."""
        path: list[str | int] = ["flows", flow_id, route]
        if version_id is not None:
            path.append(version_id)
        return path

    async def _post_start(
        self, path: list[str | int], body: bytes, kind: RequestKind
    ) -> FlowRunStarted:
        reply = await self._client._call("start", "POST", path, body=body, kind=kind)
        return FlowRunStarted.from_reply(reply)

    def start_many(
        self,
        flow_id: int | str,
        version_id: int | str | None,
        payloads: Iterable[object] | AsyncIterable[object],
        *,
        concurrency: int = 16,
        manual: bool = False,
        journal: str | os.PathLike[str] | None = None,
        flow_variables: Mapping[str, Any] | list[Any] | None = None,
        virtual_environment_id: int | str | None = None,
        resend_unknown: bool = False,
        drain_timeout: float = 5.0,
    ) -> AsyncGenerator[StartResult, None]:
        """Start a flow once per payload; yields one :class:`StartResult` per item.

        Payloads are read lazily (a generator of a million items is never held in memory)
        and results come in completion order, each naming its ``index``. A bad item (blank,
        too large) is a ``failed`` result, never the end of the batch. Leaving the loop
        early sends nothing new and gives the requests in flight ``drain_timeout`` seconds
        to finish, so their outcome is known and journaled. Use ``async with
        contextlib.aclosing(pw.flows.start_many(...)) as results:`` to have that happen at
        once rather than when the iterator is garbage-collected.

        Args:
            flow_id: The flow to start.
            version_id: The version, or ``None`` for the deployed one.
            payloads: Any iterable or async iterable of payloads (see :meth:`start`).
            concurrency: Requests in flight at most.
            manual: Use manual initialise (10 a minute) instead of queued starts.
            journal: A SQLite file recording every item before it is sent and its outcome
                after. Re-running with the same journal and input skips what started
                (``skipped``), reports what may have started as ``unknown`` without
                resending it, resends what failed, and raises
                :class:`JournalMismatchError` if the input changed.
            flow_variables: Flow variables for every start.
            virtual_environment_id: Virtual environment for every start.
            resend_unknown: With a journal, resend items whose outcome is unknown (they may
                start twice).
            drain_timeout: Seconds the requests in flight may take to finish after the
                caller stops early.
        """
        return start_many(
            self,
            flow_id,
            version_id,
            payloads,
            concurrency=concurrency,
            manual=manual,
            journal=journal,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
            resend_unknown=resend_unknown,
            drain_timeout=drain_timeout,
        )

    def list(self, **options: Unpack[ListOptions]) -> AsyncPaginator[Flow]:
        """Stream the account's flows, a page at a time.

        Filters include ``name``, ``enabled``, ``deployed``, ``id`` and ``marketplace_app_id``;
        includes ``versions``, ``latestVersion``, ``deployedVersion``; sorts ``name``,
        ``enabled_at``, ``created_at``, ``id``. See :class:`ListOptions` for the arguments.
        """
        return self._client._list(["flows"], Flow, options)

    async def get(self, flow_id: int | str, *, include: str | Iterable[str] | None = None) -> Flow:
        """One flow, with the relations named in ``include`` (``versions``, ``latestVersion``)."""
        reply = await self._client._call(
            "core", "GET", ["flows", flow_id], params=include_param(include)
        )
        return structure(data_of(reply), Flow, body=reply)

    async def create(
        self, name: str, *, description: str | None = None, prod_flag: bool | None = None
    ) -> Flow:
        """Create a flow. Not retried after an ambiguous failure (it could create two)."""
        fields: dict[str, Any] = {"name": name}
        if description is not None:
            fields["description"] = description
        if prod_flag is not None:
            fields["prod_flag"] = prod_flag
        reply = await self._client._call("core", "POST", ["flows"], json={"flow": fields})
        return structure(data_of(reply), Flow, body=reply)

    async def update(self, flow_id: int | str, **fields: Any) -> Flow:
        """Change only the fields given (``name``, ``description``, ``enabled_at``, ...).

        Flow fields are sent inside ``flow``; ``labels`` and ``notification_groups`` beside it,
        as the API reference lays out the body.
        """
        if not fields:
            raise ConfigurationError("update() needs at least one field to change")
        body: dict[str, Any] = {
            key: fields.pop(key) for key in list(fields) if key in UPDATE_TOP_LEVEL_FIELDS
        }
        if fields:
            body["flow"] = fields
        reply = await self._client._call("core", "PUT", ["flows", flow_id], json=body)
        return structure(data_of(reply), Flow, body=reply)

    async def delete(self, flow_id: int | str) -> None:
        """Delete a flow."""
        await self._client._call("core", "DELETE", ["flows", flow_id])

    async def export(self, flow_id: int | str) -> Mapping[str, Any]:
        """Export a flow; the document (whose shape the API does not fix) is returned as is.

        Safe to retry: exporting changes nothing.
        """
        reply = await self._client._call(
            "core", "POST", ["flows", "export"], json={"flow_id": flow_id}, idempotent=True
        )
        data = data_of(reply)
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError("an export should be an object", field="data", body=reply)
        return data

    async def import_(
        self, data: Mapping[str, Any], *, metadata: Mapping[str, Any], as_marketplace: bool = False
    ) -> Flow:
        """Import a flow from an :meth:`export` document; returns the new flow."""
        body = {"flow": data, "metadata": metadata, "as_marketplace": as_marketplace}
        reply = await self._client._call("core", "POST", ["flows", "import"], json=body)
        return structure(data_of(reply), Flow, body=reply)

    async def duplicate(self, flow_id: int | str, flow_version_id: int | str) -> Flow:
        """Copy a flow from one of its versions; returns the new flow."""
        reply = await self._client._call(
            "core",
            "POST",
            ["flows", flow_id, "duplicate"],
            json={"flow_version_id": flow_version_id},
        )
        return structure(data_of(reply), Flow, body=reply)

    async def toggle_layout_direction(self, flow_id: int | str) -> None:
        """Flip the flow's canvas between horizontal and vertical (no content comes back).

        A toggle is not idempotent: an ambiguous failure raises
        :class:`OutcomeUnknownError` instead of flipping it twice.
        """
        await self._client._call(
            "core", "PATCH", ["flows", flow_id, "layout-direction"], idempotent=False
        )
