"""The list filters of the fake's resources, as ``spatie/laravel-query-builder`` applies them.

Each factory turns one ``filter[name]=value`` into a predicate over stored records:
``partial`` (spatie's default, ``LIKE %v%``), ``exact`` and integer matches where ``a,b``
means IN, integer bounds, boolean scopes, and bounds on instants. A value the filter cannot
use is a 422 in Laravel's validation format, raised as a ``QueryError``; which filters a
route allows is its ``ListSpec``'s business (``_laravel_query``). Instants are compared in
Unix milliseconds, whatever form (ISO 8601 or Unix ms) the record and the request use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from ._laravel_query import (
    FilterFactory,
    Item,
    Predicate,
    QueryError,
    laravel_integer,
    validation_body,
)
from ._moments import moment_ms, parse_moment

__all__ = [
    "boolean_filter",
    "day_filter",
    "exact_filter",
    "filter_items",
    "int_filter",
    "int_range_filter",
    "moment_bound_filter",
    "partial_filter",
]


def _invalid(field: str, message: str) -> QueryError:
    """A 422 naming one field and its one message."""
    return QueryError(422, validation_body({field: [message]}))


def _values(raw: str) -> list[str]:
    """spatie splits a filter value on commas: ``a,b`` means IN (a, b)."""
    return [part.strip() for part in raw.split(",")]


def partial_filter(key: str) -> FilterFactory:
    """spatie's default filter: case-insensitive substring (``LIKE %v%``), any of ``a,b``."""

    def build(_name: str, raw: str) -> Predicate:
        """Items whose ``key`` contains any of the comma-separated needles."""
        needles = [value.casefold() for value in _values(raw)]
        if len(needles) == 1:  # the usual case, without a generator per item
            needle = needles[0]
            return lambda item: needle in str(item.get(key) or "").casefold()

        def matches(item: Item) -> bool:
            """True if any needle is in the item's value."""
            hay = str(item.get(key) or "").casefold()
            return any(needle in hay for needle in needles)

        return matches

    return build


def exact_filter(key: str) -> FilterFactory:
    """``AllowedFilter::exact`` on a string column: equal to one of ``a,b``."""

    def build(_name: str, raw: str) -> Predicate:
        """Items whose ``key``, as a string, is one of the listed values."""
        wanted = frozenset(_values(raw))

        def matches(item: Item) -> bool:
            """True if the item's value is one of those wanted (null never is)."""
            value = item.get(key)
            return value is not None and str(value) in wanted

        return matches

    return build


def _integers(name: str, raw: str) -> frozenset[int]:
    """The integers of a filter value ``1,2``; any other value is a 422."""
    parsed = [laravel_integer(value) for value in _values(raw)]
    if any(value is None for value in parsed):
        raise _invalid(f"filter.{name}", f"The filter.{name} field must be an integer.")
    return frozenset(value for value in parsed if value is not None)


def int_filter(key: str) -> FilterFactory:
    """``AllowedFilter::exact`` on an integer column: one of ``1,2``; other values are a 422."""

    def build(name: str, raw: str) -> Predicate:
        """Items whose integer ``key`` is one of the listed integers."""
        wanted = _integers(name, raw)

        def matches(item: Item) -> bool:
            """True if the item's value is an int among those wanted."""
            value = item.get(key)
            return isinstance(value, int) and value in wanted

        return matches

    return build


def int_range_filter(key: str, *, lower: bool) -> FilterFactory:
    """A bound on an integer column (``started_after`` is ``>=``, ``started_before`` ``<=``)."""

    def build(name: str, raw: str) -> Predicate:
        """Items whose numeric ``key`` is on the right side of the bound."""
        bound = laravel_integer(raw)
        if bound is None:
            raise _invalid(f"filter.{name}", f"The filter.{name} field must be an integer.")

        def matches(item: Item) -> bool:
            """True if the item's value is a number within the bound."""
            value = item.get(key)
            if not isinstance(value, int | float):
                return False
            return value >= bound if lower else value <= bound

        return matches

    return build


_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})


def boolean_filter(test: Callable[[Item], bool]) -> FilterFactory:
    """A scope taking ``true``/``false``/``1``/``0``: items where ``test`` agrees; else 422."""

    def build(name: str, raw: str) -> Predicate:
        """Items where ``test`` gives the flag's answer."""
        flag = raw.lower()
        if flag not in _TRUE | _FALSE:
            raise _invalid(f"filter.{name}", f"The filter.{name} field must be true or false.")
        wanted = flag in _TRUE
        return lambda item: test(item) is wanted

    return build


def filter_items(items: Iterable[Item], predicates: Sequence[Predicate]) -> list[Item]:
    """The items every predicate accepts, in their original order (references, not copies)."""
    if not predicates:
        return list(items)
    found = [item for item in items if predicates[0](item)]
    for predicate in predicates[1:]:  # one pass per filter: no generator per item
        found = [item for item in found if predicate(item)]
    return found


def _moment_bound(name: str, raw: str) -> int:
    """A filter's instant in Unix ms; a value that is no instant is a 422."""
    bound = moment_ms(raw)
    if bound is None:
        message = f"The filter.{name} field must be a valid date."
        raise _invalid(f"filter.{name}", message)
    return bound


def moment_bound_filter(key: str, *, lower: bool) -> FilterFactory:
    """A bound on an instant (``started_after`` is ``>=``, ``started_before`` ``<=``).

    The bound is Unix milliseconds as documented (an ISO string is accepted too); the
    stored value may be either form. Records without the instant never match.
    """

    def build(name: str, raw: str) -> Predicate:
        """Items whose instant ``key`` is on the right side of the bound."""
        bound = _moment_bound(name, raw)

        def matches(item: Item) -> bool:
            """True if the item's instant is within the bound."""
            value = moment_ms(item.get(key))
            if value is None:
                return False
            return value >= bound if lower else value <= bound

        return matches

    return build


def day_filter(key: str) -> FilterFactory:
    """``started_on``: items whose instant falls on the same UTC day as the given one."""

    def build(name: str, raw: str) -> Predicate:
        """Items whose instant ``key`` is on the requested day."""
        day = dt.datetime.fromtimestamp(_moment_bound(name, raw) / 1000, dt.UTC).date()

        def matches(item: Item) -> bool:
            """True if the item's instant is on that day."""
            seconds = parse_moment(item.get(key))
            return seconds is not None and dt.datetime.fromtimestamp(seconds, dt.UTC).date() == day

        return matches

    return build
