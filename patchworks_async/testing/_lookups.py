"""The fake's cross-reference lookups and their rows: seeding, and their routes.

A lookup is a two-column table a flow uses to translate values between systems (an SKU
here, an item code there); a row maps one ``left_value`` to one ``right_value``, and left
values are unique within a lookup (a second one is a 409). The state is two plain dicts
keyed by id (``lookups``, ``values``) that tests may read and edit directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from ._checks import as_id
from ._filters import exact_filter, partial_filter
from ._form import Form
from ._laravel_query import ListSpec
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

__all__ = ["Lookups"]

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
_LOOKUP_MODEL: Final = "CrossReferenceLookup"
_DUPLICATE_LEFT: Final = {"message": "A row with this left value already exists."}


def _lookup_record(lookup_id: int, name: str, timestamp: str) -> dict[str, Any]:
    """A lookup with every field the routes read or write, at its defaults."""
    return {
        "id": lookup_id,
        "cross_reference_lookup_template_id": None,
        "name": name,
        "description": None,
        "default_value": None,
        "created_at": timestamp,
        "updated_at": timestamp,
    }


def _value_record(
    value_id: int, lookup_id: int, left: str, right: str, timestamp: str
) -> dict[str, Any]:
    """One row of a lookup."""
    return {
        "id": value_id,
        "cross_reference_lookup_id": lookup_id,
        "left_value": left,
        "right_value": right,
        "created_at": timestamp,
        "updated_at": timestamp,
    }


def _lookup_form(request: CoreRequest, *, partial: bool) -> Form:
    """The fields of a lookup, validated for a create or (``partial``) an update."""
    form = Form(request.body, partial=partial)
    form.string("name", required=True, max_length=255)
    form.string("description")
    form.string("default_value")
    return form


class Lookups:
    """Every cross-reference lookup and row of one fake, and their routes.

    Attributes:
        lookups: Lookups by id.
        values: Rows by id (each names its ``cross_reference_lookup_id``).
    """

    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        """No lookups yet.

        Args:
            wall: Clock for timestamps (Unix seconds); injectable for tests.
        """
        self._wall = wall
        self.lookups: dict[int, dict[str, Any]] = {}
        self.values: dict[int, dict[str, Any]] = {}
        self._lookup_ids = IdSequence()
        self._value_ids = IdSequence()

    def add_lookup(
        self, name: str, *, rows: Iterable[tuple[str, str]] = (), **fields: Any
    ) -> dict[str, Any]:
        """Seed a lookup and its rows; see ``FakePatchworks.add_lookup``."""
        raw_id = fields.pop("id", None)
        lookup_id = self._lookup_ids.allocate(self.lookups) if raw_id is None else int(raw_id)
        if lookup_id in self.lookups:
            raise ValueError(f"lookup id {lookup_id} is already used")
        pairs = [(str(left), str(right)) for left, right in rows]
        lefts = [left for left, _ in pairs]
        if len(set(lefts)) != len(lefts):
            raise ValueError(f"left values must be distinct, got {lefts}")
        self._lookup_ids.claim(lookup_id)
        lookup = _lookup_record(lookup_id, name, SEED_TIMESTAMP)
        lookup.update(fields)
        self.lookups[lookup_id] = lookup
        for left, right in pairs:
            value_id = self._value_ids.allocate(self.values)
            self.values[value_id] = _value_record(value_id, lookup_id, left, right, SEED_TIMESTAMP)
        return lookup

    def _find(self, request: CoreRequest) -> dict[str, Any] | None:
        """The lookup named by the ``lookup_id`` path parameter, if it exists."""
        lookup_id = as_id(request.params.get("lookup_id"))
        return None if lookup_id is None else self.lookups.get(lookup_id)

    def _rows(self, lookup_id: int) -> list[dict[str, Any]]:
        """The rows of one lookup, in id order."""
        return [
            row for row in self.values.values() if row["cross_reference_lookup_id"] == lookup_id
        ]

    def _left_value_taken(self, lookup_id: int, left: str, *, besides: int | None = None) -> bool:
        """True if another row of the lookup (not ``besides``) has this left value."""
        return any(
            row["left_value"] == left and row["id"] != besides for row in self._rows(lookup_id)
        )

    def _find_row(self, request: CoreRequest) -> tuple[dict[str, Any] | None, Reply | None]:
        """The lookup's row named by ``value_id``; a row of another lookup is a 404 too."""
        lookup = self._find(request)
        if lookup is None:
            return None, not_found(_LOOKUP_MODEL, request.params["lookup_id"])
        value_id = as_id(request.params.get("value_id"))
        row = self.values.get(value_id) if value_id is not None else None
        if row is None or row["cross_reference_lookup_id"] != lookup["id"]:
            return None, not_found("CrossReferenceLookupValue", request.params["value_id"])
        return row, None

    # ------------------------------------------------------------------ lookup routes

    def list_lookups(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups``."""
        return list_reply(request, _LOOKUP_SPEC, self.lookups.values())

    def get_lookup(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups/{id}``."""
        lookup = self._find(request)
        if lookup is None:
            return not_found(_LOOKUP_MODEL, request.params["lookup_id"])
        return show_reply(request, lookup, _LOOKUP_SPEC)

    def create_lookup(self, request: CoreRequest) -> Reply:
        """``POST /cross-reference-lookups``: created with no rows."""
        form = _lookup_form(request, partial=False)
        if form.errors:
            return form.reply()
        now = iso_timestamp(self._wall())
        lookup = _lookup_record(self._lookup_ids.allocate(self.lookups), form.valid["name"], now)
        lookup.update(form.valid)
        self.lookups[lookup["id"]] = lookup
        return Reply(201, {"data": dict(lookup)})

    def update_lookup(self, request: CoreRequest) -> Reply:
        """``PUT /cross-reference-lookups/{id}``: only the given keys change."""
        lookup = self._find(request)
        if lookup is None:
            return not_found(_LOOKUP_MODEL, request.params["lookup_id"])
        form = _lookup_form(request, partial=True)
        if form.errors:
            return form.reply()
        if form.valid:
            lookup.update(form.valid)
            lookup["updated_at"] = iso_timestamp(self._wall())
        return Reply(200, {"data": dict(lookup)})

    def delete_lookup(self, request: CoreRequest) -> Reply:
        """``DELETE /cross-reference-lookups/{id}``, with its rows."""
        lookup = self._find(request)
        if lookup is None:
            return not_found(_LOOKUP_MODEL, request.params["lookup_id"])
        del self.lookups[lookup["id"]]
        for row in self._rows(lookup["id"]):
            del self.values[row["id"]]
        return Reply(200, {"message": "Lookup deleted."})

    # ------------------------------------------------------------------ row routes

    def list_lookup_values(self, request: CoreRequest) -> Reply:
        """``GET /cross-reference-lookups/{id}/values``."""
        lookup = self._find(request)
        if lookup is None:
            return not_found(_LOOKUP_MODEL, request.params["lookup_id"])
        return list_reply(request, _VALUE_SPEC, self._rows(lookup["id"]))

    def create_lookup_value(self, request: CoreRequest) -> Reply:
        """``POST /cross-reference-lookups/{id}/values``; 409 when the left value exists."""
        lookup = self._find(request)
        if lookup is None:
            return not_found(_LOOKUP_MODEL, request.params["lookup_id"])
        form = Form(request.body)
        form.string("left_value", required=True)
        form.string("right_value", required=True)
        if form.errors:
            return form.reply()
        left, right = form.valid["left_value"], form.valid["right_value"]
        if self._left_value_taken(lookup["id"], left):
            return Reply(409, dict(_DUPLICATE_LEFT))
        now = iso_timestamp(self._wall())
        row = _value_record(self._value_ids.allocate(self.values), lookup["id"], left, right, now)
        self.values[row["id"]] = row
        return Reply(201, {"data": dict(row)})

    def update_lookup_value(self, request: CoreRequest) -> Reply:
        """``PUT /cross-reference-lookups/{id}/values/{valueID}``: only the given keys."""
        row, missing = self._find_row(request)
        if row is None:
            assert missing is not None
            return missing
        form = Form(request.body, partial=True)
        form.string("left_value", required=True)
        form.string("right_value", required=True)
        if form.errors:
            return form.reply()
        left = form.valid.get("left_value")
        if left is not None and self._left_value_taken(
            row["cross_reference_lookup_id"], left, besides=row["id"]
        ):
            return Reply(409, dict(_DUPLICATE_LEFT))
        if form.valid:
            row.update(form.valid)
            row["updated_at"] = iso_timestamp(self._wall())
        return Reply(200, {"data": dict(row)})

    def delete_lookup_value(self, request: CoreRequest) -> Reply:
        """``DELETE /cross-reference-lookups/{id}/values/{valueID}``."""
        row, missing = self._find_row(request)
        if row is None:
            assert missing is not None
            return missing
        del self.values[row["id"]]
        return Reply(200, {"message": "Value deleted."})
