"""Flow versions: each flow's versions, and deploying one (the version a start without a
version id runs)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Unpack

from attrs import frozen

from .._api import data_of
from .._config import check_id
from .._errors import ConfigurationError
from .._models import structure, structure_written
from .._pagination import AsyncPaginator, ListOptions, include_param

if TYPE_CHECKING:
    from .._api import Api

__all__ = ["FlowVersion", "FlowVersions"]


@frozen
class FlowVersion:
    """One version of a process flow. Every field but ``id`` may be absent (sparse
    ``fields=``, or a reply that does not carry it)."""

    id: int
    flow_id: int | None = None
    version: int | None = None
    name: str | None = None
    status: int | str | None = None
    deployed_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class FlowVersions:
    """``client.flow_versions``: a flow's versions, and which one is deployed."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def list(
        self, flow_id: int | str, **options: Unpack[ListOptions]
    ) -> AsyncPaginator[FlowVersion]:
        """Stream a flow's versions, a page at a time."""
        check_id("flow_id", flow_id)
        return self._api.paginate(["flows", flow_id, "versions"], FlowVersion, options)

    async def get(
        self,
        flow_id: int | str,
        version_id: int | str,
        *,
        include: str | Iterable[str] | None = None,
    ) -> FlowVersion:
        """One version of a flow."""
        check_id("flow_id", flow_id)
        check_id("version_id", version_id)
        path = ["flows", flow_id, "versions", version_id]
        reply = await self._api.request("core", "GET", path, params=include_param(include))
        return structure(data_of(reply), FlowVersion, body=reply)

    async def create(self, flow_id: int | str, **fields: Any) -> FlowVersion:
        """Add a version to a flow (``name`` and the other fields the API takes).

        Not idempotent: after an ambiguous failure it raises
        :class:`OutcomeUnknownError` rather than risk a second version.
        """
        check_id("flow_id", flow_id)
        path = ["flows", flow_id, "versions"]
        reply = await self._api.request("core", "POST", path, json=fields)
        return structure_written(
            data_of(reply), FlowVersion, request=f"POST flows/{flow_id}/versions"
        )

    async def update(self, flow_id: int | str, version_id: int | str, **fields: Any) -> FlowVersion:
        """Change only the fields given; ``deployed_at`` deploys or undeploys (see
        :meth:`deploy`)."""
        check_id("flow_id", flow_id)
        check_id("version_id", version_id)
        if not fields:
            raise ConfigurationError("update() needs at least one field to change")
        if isinstance(fields.get("deployed_at"), dt.datetime):
            fields["deployed_at"] = fields["deployed_at"].isoformat()
        path = ["flows", flow_id, "versions", version_id]
        reply = await self._api.request("core", "PUT", path, json=fields)
        return structure(data_of(reply), FlowVersion, body=reply)

    async def delete(self, flow_id: int | str, version_id: int | str) -> None:
        """Delete a version of a flow."""
        check_id("flow_id", flow_id)
        check_id("version_id", version_id)
        await self._api.request("core", "DELETE", ["flows", flow_id, "versions", version_id])

    async def deploy(self, flow_id: int | str, version_id: int | str) -> FlowVersion:
        """Deploy a version: starts that name no version run it from now on.

        The API deploys through the version's ``deployed_at`` (set to now); the version
        deployed before stops being so.
        """
        check_id("flow_id", flow_id)
        check_id("version_id", version_id)
        now = dt.datetime.now(dt.UTC)
        return await self.update(flow_id, version_id, deployed_at=now)

    async def undeploy(self, flow_id: int | str, version_id: int | str) -> FlowVersion:
        """Undeploy a version (``deployed_at`` set to null): a start without a version id
        is then refused (422) until another version is deployed."""
        check_id("flow_id", flow_id)
        check_id("version_id", version_id)
        return await self.update(flow_id, version_id, deployed_at=None)
