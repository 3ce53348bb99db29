"""Cross-reference lookups and their rows.

The lookup endpoints are documented; the row endpoints are inferred from the documented
``{id}`` / ``{valueID}`` names: ``/cross-reference-lookups/{id}/values[/{valueID}]``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Unpack

from attrs import frozen

from .._api import data_of
from .._config import check_id
from .._errors import ConfigurationError
from .._models import structure, structure_written
from .._pagination import AsyncPaginator, ListOptions

if TYPE_CHECKING:
    from .._api import Api

__all__ = ["CrossReferenceLookup", "CrossReferenceLookups", "LookupValue"]

ROOT = "cross-reference-lookups"


@frozen
class CrossReferenceLookup:
    """A cross-reference lookup table (created with no rows)."""

    id: int
    name: str | None = None
    description: str | None = None
    default_value: str | None = None
    cross_reference_lookup_template_id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@frozen
class LookupValue:
    """One row of a cross-reference lookup: a left value and the right value it maps to."""

    id: int
    left_value: str | None = None
    right_value: str | None = None
    cross_reference_lookup_id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


def _given(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class CrossReferenceLookups:
    """``client.cross_reference_lookups``: mapping tables used by flows.

    The row methods (``values``, ``add_value``, ``update_value``, ``delete_value``) use
    paths inferred from the API reference (``/cross-reference-lookups/{id}/values``); the
    lookup methods use documented ones.
    """

    def __init__(self, api: Api) -> None:
        self._api = api

    def list(self, **options: Unpack[ListOptions]) -> AsyncPaginator[CrossReferenceLookup]:
        """Stream the lookups, a page at a time (filter ``name``; sort ``name``, ``id``)."""
        return self._api.paginate([ROOT], CrossReferenceLookup, options)

    async def get(self, lookup_id: int | str) -> CrossReferenceLookup:
        """One lookup."""
        check_id("lookup_id", lookup_id)
        reply = await self._api.request("core", "GET", [ROOT, lookup_id])
        return structure(data_of(reply), CrossReferenceLookup, body=reply)

    async def create(
        self, name: str, *, description: str | None = None, default_value: str | None = None
    ) -> CrossReferenceLookup:
        """Create a lookup, with no rows."""
        body = _given(name=name, description=description, default_value=default_value)
        reply = await self._api.request("core", "POST", [ROOT], json=body)
        return structure_written(data_of(reply), CrossReferenceLookup, request=f"POST {ROOT}")

    async def update(self, lookup_id: int | str, **fields: Any) -> CrossReferenceLookup:
        """Change only the fields given (``name``, ``description``, ``default_value``)."""
        check_id("lookup_id", lookup_id)
        if not fields:
            raise ConfigurationError("update() needs at least one field to change")
        reply = await self._api.request("core", "PUT", [ROOT, lookup_id], json=fields)
        return structure(data_of(reply), CrossReferenceLookup, body=reply)

    async def delete(self, lookup_id: int | str) -> None:
        """Delete a lookup and its rows."""
        check_id("lookup_id", lookup_id)
        await self._api.request("core", "DELETE", [ROOT, lookup_id])

    def values(
        self, lookup_id: int | str, **options: Unpack[ListOptions]
    ) -> AsyncPaginator[LookupValue]:
        """Stream a lookup's rows, a page at a time (inferred path)."""
        check_id("lookup_id", lookup_id)
        return self._api.paginate([ROOT, lookup_id, "values"], LookupValue, options)

    async def add_value(
        self, lookup_id: int | str, left_value: str, right_value: str
    ) -> LookupValue:
        """Add a row mapping ``left_value`` to ``right_value`` (inferred path)."""
        check_id("lookup_id", lookup_id)
        body = {"left_value": left_value, "right_value": right_value}
        reply = await self._api.request("core", "POST", [ROOT, lookup_id, "values"], json=body)
        return structure_written(
            data_of(reply), LookupValue, request=f"POST {ROOT}/{lookup_id}/values"
        )

    async def update_value(
        self, lookup_id: int | str, value_id: int | str, **fields: Any
    ) -> LookupValue:
        """Change only the given fields of a row (``left_value``, ``right_value``)."""
        check_id("lookup_id", lookup_id)
        check_id("value_id", value_id)
        if not fields:
            raise ConfigurationError("update_value() needs at least one field to change")
        reply = await self._api.request(
            "core", "PUT", [ROOT, lookup_id, "values", value_id], json=fields
        )
        return structure(data_of(reply), LookupValue, body=reply)

    async def delete_value(self, lookup_id: int | str, value_id: int | str) -> None:
        """Delete one row (inferred path)."""
        check_id("lookup_id", lookup_id)
        check_id("value_id", value_id)
        await self._api.request("core", "DELETE", [ROOT, lookup_id, "values", value_id])
