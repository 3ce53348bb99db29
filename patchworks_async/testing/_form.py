"""Laravel validation of a JSON body, as the Core API's form requests apply it.

Laravel trims every string and turns blank ones into null (its TrimStrings and
ConvertEmptyStringsToNull middleware) before any rule runs, names nested fields with dots
(``flow.name``), and answers every failure at once in a 422. A client's error handling is
tested against those exact messages, so the rules live in one place and each route only
lists its fields.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from ._laravel_query import laravel_integer, validation_body
from ._moments import parse_moment
from ._resources import Reply, iso_timestamp

__all__ = ["Form"]

_MISSING: Final = object()


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


class Form:
    """Laravel validation of one JSON object, after TrimStrings and ConvertEmptyStringsToNull.

    Each rule method checks one field and, if it passes, copies the cleaned value into
    ``valid``; failures collect in ``errors`` under the dotted field name. A field absent
    from the body is skipped unless it is required and the form is not ``partial``
    (Laravel's ``sometimes``, used by updates).
    """

    def __init__(self, data: Mapping[str, Any], *, prefix: str = "", partial: bool = False):
        """Validate ``data``, one rule method call per field.

        Args:
            data: The decoded JSON object.
            prefix: Prepended to field names in errors (``"flow."`` for a nested object).
            partial: Skip required fields that are absent (an update of some keys only).
        """
        self._data = data
        self._prefix = prefix
        self._partial = partial
        self.errors: dict[str, list[str]] = {}
        self.valid: dict[str, Any] = {}

    def _fail(self, key: str, rule: str) -> None:
        """Record that ``key`` broke ``rule``, in Laravel's words."""
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
        """``nullable|date``: an ISO 8601 string, or Unix milliseconds (as filters take
        instants); stored in Laravel's serialised form."""
        value = self._value(key, required=False)
        if value is _MISSING:
            return
        if value is None:
            self.valid[key] = None
            return
        parsed = _parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            seconds = parse_moment(value)  # Unix milliseconds, a number or digits
            parsed = None if seconds is None else iso_timestamp(seconds)
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
        """The 422 listing every failure, in Laravel's validation format."""
        return Reply(422, validation_body(self.errors))
