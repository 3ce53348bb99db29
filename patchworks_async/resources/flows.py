"""Process flows: starting them, and reading them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._errors import UnexpectedResponseError
from .._models import Flow, FlowRunStarted, structure
from .._payload import encode_start_body
from .._ratelimit import RequestKind

if TYPE_CHECKING:
    from .._client import PatchworksClient

__all__ = ["Flows", "include_param"]


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
        body = encode_start_body(
            flow_id,
            version_id,
            payload,
            max_body_bytes=self._client.max_body_bytes,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
        )
        path: list[str | int] = ["flows", flow_id, route]
        if version_id is not None:
            path.append(version_id)
        reply = await self._client._call("start", "POST", path, body=body, kind=kind)
        return FlowRunStarted.from_reply(reply)

    async def get(self, flow_id: int | str, *, include: str | Iterable[str] | None = None) -> Flow:
        """One flow, with the relations named in ``include`` (``versions``, ``latestVersion``)."""
        reply = await self._client._call(
            "core", "GET", ["flows", flow_id], params=include_param(include)
        )
        return structure(data_of(reply), Flow, body=reply)
