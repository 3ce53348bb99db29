"""Pure helpers for the fake's Laravel-style lists: query parsing, sorting, fields, pages.

The Core API is a Laravel application whose list routes combine three pieces of the
framework's ecosystem, and a client has to cope with each one's exact behaviour:

* ``spatie/laravel-query-builder`` reads ``filter[key]=a,b``, ``include=a,b``,
  ``fields[table]=f1,f2`` and ``sort=-name,id``, and answers **400** naming the parameters it
  does not allow (a client bug must fail loudly, not return an unfiltered list);
* a form request validates ``per_page`` (**422** in Laravel's validation format);
* Laravel's ``LengthAwarePaginator`` (with ``withQueryString()``) builds ``links`` and
  ``meta``: out-of-range pages are empty rather than errors, ``last_page`` is at least 1,
  and every link keeps the request's other query parameters.

The filters themselves live in ``_filters``. Everything here is a plain function of its
arguments (no aiohttp, no clock, no event loop),
so the rules can be unit-tested exhaustively, and each request does O(n) work over the
stored items plus an O(n log n) sort, copying only the page it returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Final, TypeAlias
from urllib.parse import quote

import attrs

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "PER_PAGE_MESSAGE",
    "FilterFactory",
    "Item",
    "ListQuery",
    "ListSpec",
    "Predicate",
    "QueryError",
    "laravel_integer",
    "page_url",
    "paginate",
    "paginator_body",
    "parse_fields",
    "parse_filters",
    "parse_includes",
    "parse_list_query",
    "parse_page",
    "parse_per_page",
    "parse_sorts",
    "php_query",
    "select_fields",
    "sort_items",
    "sort_key",
    "validation_body",
]

Item: TypeAlias = Mapping[str, Any]
"""A stored record as lists see it."""
Predicate: TypeAlias = Callable[[Item], bool]
FilterFactory: TypeAlias = Callable[[str, str], Predicate]
"""Builds the predicate of one filter from its name and raw value; raises QueryError (422)
when the value cannot mean anything (``filter[enabled]=maybe``)."""

DEFAULT_PER_PAGE: Final = 15
MAX_PER_PAGE: Final = 100
PER_PAGE_MESSAGE: Final = "The per page field must be at least 1."


class QueryError(Exception):
    """A request the list route refuses: the status and JSON body to answer with."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        """Refuse with ``status`` and ``body``; the message is the body's ``message``."""
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def validation_body(errors: Mapping[str, list[str]]) -> dict[str, Any]:
    """Laravel's 422 body: the first message, "(and N more errors)", and every field's list."""
    messages = [message for field_messages in errors.values() for message in field_messages]
    message = messages[0]
    if len(messages) > 1:
        more = len(messages) - 1
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return {"message": message, "errors": {key: list(value) for key, value in errors.items()}}


def _invalid(field: str, message: str) -> QueryError:
    """A 422 naming one field and its one message."""
    return QueryError(422, validation_body({field: [message]}))


def _not_allowed(
    what: str, verb: str, unknown: Iterable[str], allowed: Iterable[str]
) -> QueryError:
    """spatie's InvalidFilterQuery / InvalidIncludeQuery / InvalidSortQuery, all 400s."""
    return QueryError(
        400,
        {
            "message": f"Requested {what}(s) `{', '.join(unknown)}` {verb} not allowed. "
            f"Allowed {what}(s) are `{', '.join(allowed)}`."
        },
    )


# --------------------------------------------------------------------------- query string


def _base_name(key: str) -> str:
    """The PHP array a query key belongs to: ``filter`` for ``filter[name]``."""
    return key.split("[", 1)[0]


def php_query(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query as Laravel sees it: last value wins, values trimmed, PHP's array grouping.

    PHP's ``parse_str`` folds ``filter[a]`` and ``filter[b]`` into one ``filter`` array at
    the position of the first, so ``http_build_query`` writes them back side by side; this
    keeps that order so pagination links come out as Laravel would write them. A value
    left blank is kept as ``""``, which Laravel's ConvertEmptyStringsToNull makes null:
    the parsers treat it as absent and ``page_url`` leaves it out.
    """
    flat: dict[str, str] = {}
    for key, value in pairs:
        flat[key] = value.strip()
    order: dict[str, int] = {}
    for key in flat:
        order.setdefault(_base_name(key), len(order))
    keys = sorted(flat, key=lambda key: order[_base_name(key)])  # stable: keeps sub-key order
    return {key: flat[key] for key in keys}


def laravel_integer(raw: str) -> int | None:
    """PHP's ``FILTER_VALIDATE_INT`` (Laravel's ``integer`` rule): optional sign, digits only."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        return None
    return int(text)


def parse_page(query: Mapping[str, str]) -> int:
    """``page``: an integer >= 1; anything else means page 1, as Laravel's paginator resolves it."""
    page = laravel_integer(query.get("page", ""))
    return page if page is not None and page >= 1 else 1


def parse_per_page(query: Mapping[str, str]) -> int:
    """``per_page``: 15 when absent or blank; an integer >= 1, capped at 100; else a 422.

    Larger values are capped, not refused: the vendor's own clients ask for 200 and 250.

    Raises:
        QueryError: 422 ``{"errors": {"per_page": [...]}}``.
    """
    raw = query.get("per_page", "")
    if raw == "":
        return DEFAULT_PER_PAGE
    per_page = laravel_integer(raw)
    if per_page is None or per_page < 1:
        raise _invalid("per_page", PER_PAGE_MESSAGE)
    return min(per_page, MAX_PER_PAGE)


def _bracketed(query: Mapping[str, str], name: str) -> dict[str, str]:
    """``name[key]=value`` parameters as ``{key: value}`` (nested brackets kept whole)."""
    prefix = f"{name}["
    return {
        key[len(prefix) : -1]: value
        for key, value in query.items()
        if key.startswith(prefix) and key.endswith("]")
    }


def _names(raw: str) -> list[str]:
    """A comma-separated list of names, blanks dropped (``"a, ,b"`` is ``["a", "b"]``)."""
    return [part.strip() for part in raw.split(",") if part.strip()]


def parse_filters(
    query: Mapping[str, str], allowed: Mapping[str, FilterFactory]
) -> tuple[Predicate, ...]:
    """``filter[key]=value`` to predicates, ANDed; blank values are no filter at all.

    Raises:
        QueryError: 400 for a filter not in ``allowed`` (even with a blank value: spatie
            checks the names first); 422 for a value the filter cannot use.
    """
    requested = _bracketed(query, "filter")
    unknown = [key for key in requested if key not in allowed]
    if unknown:
        raise _not_allowed("filter", "are", unknown, allowed)
    return tuple(allowed[key](key, value) for key, value in requested.items() if value != "")


def parse_includes(
    query: Mapping[str, str], allowed: Sequence[str], silent: Sequence[str] = ()
) -> frozenset[str]:
    """``include=a,b``; ``silent`` names are allowed but add nothing (relations the fake lacks).

    Raises:
        QueryError: 400 naming every include that is not allowed.
    """
    requested = _names(query.get("include", ""))
    unknown = [name for name in requested if name not in allowed and name not in silent]
    if unknown:
        raise _not_allowed("include", "are", unknown, [*allowed, *silent])
    return frozenset(name for name in requested if name in allowed)


def parse_sorts(query: Mapping[str, str], allowed: Sequence[str]) -> tuple[tuple[str, bool], ...]:
    """``sort=-name,id`` to ``(("name", True), ("id", False))``: (field, descending).

    Raises:
        QueryError: 400 naming every sort that is not allowed.
    """
    sorts = tuple(
        (name.lstrip("-"), name.startswith("-")) for name in _names(query.get("sort", ""))
    )
    unknown = [name for name, _ in sorts if name not in allowed]
    if unknown:
        raise _not_allowed("sort", "is", unknown, allowed)
    return sorts


def parse_fields(query: Mapping[str, str], resource: str) -> frozenset[str] | None:
    """``fields[resource]=f1,f2``: the keys to keep (``id`` always), or None for all.

    The resource is named as its table (``flow_runs``) or in camel case (``flowRuns``).
    Field names the resource lacks are ignored rather than refused: which fields the real
    API allows is not documented, and a fake stricter than the service would fail clients
    that work.
    """
    head, *rest = resource.split("_")
    camel = head + "".join(part.title() for part in rest)
    raw = query.get(f"fields[{resource}]", "") or query.get(f"fields[{camel}]", "")
    names = _names(raw)
    return frozenset({"id", *names}) if names else None


@attrs.frozen
class ListSpec:
    """What one list route allows, as its controller would configure spatie's builder.

    Attributes:
        resource: Table name used by ``fields[...]``.
        filters: Allowed filter names and how each turns its value into a predicate.
        sorts: Allowed sort fields.
        includes: Allowed includes the route fills in.
        silent_includes: Documented includes the fake accepts but has no data for.
    """

    resource: str
    filters: Mapping[str, FilterFactory] = attrs.field(factory=dict)
    sorts: tuple[str, ...] = ("id",)
    includes: tuple[str, ...] = ()
    silent_includes: tuple[str, ...] = ()


@attrs.frozen
class ListQuery:
    """A list request, parsed and checked."""

    page: int
    per_page: int
    predicates: tuple[Predicate, ...]
    sorts: tuple[tuple[str, bool], ...]
    includes: frozenset[str]
    fields: frozenset[str] | None


def parse_list_query(query: Mapping[str, str], spec: ListSpec) -> ListQuery:
    """Parse every list parameter in the order Laravel checks them.

    The form request's ``per_page`` rule runs before the controller (422 first); then the
    query builder checks filter names, includes and sorts (400s); filter values last.

    Raises:
        QueryError: The 400 or 422 to answer with.
    """
    per_page = parse_per_page(query)
    requested = _bracketed(query, "filter")
    unknown = [key for key in requested if key not in spec.filters]
    if unknown:
        raise _not_allowed("filter", "are", unknown, spec.filters)
    includes = parse_includes(query, spec.includes, spec.silent_includes)
    sorts = parse_sorts(query, spec.sorts)
    return ListQuery(
        page=parse_page(query),
        per_page=per_page,
        predicates=parse_filters(query, spec.filters),
        sorts=sorts,
        includes=includes,
        fields=parse_fields(query, spec.resource),
    )


# --------------------------------------------------------------------------- sorting


def sort_key(value: Any) -> tuple[Any, ...]:
    """An ordering like MySQL's: NULL first, numbers, then strings case-insensitively.

    Mixed types never raise (a seeded test value of another type must not turn into a 500).
    """
    if value is None:
        return (0,)
    if isinstance(value, str):
        return (2, value.casefold(), value)
    if isinstance(value, bool | int | float):
        return (1, value)
    text = str(value)
    return (2, text.casefold(), text)


def sort_items(
    items: Sequence[Item], sorts: Sequence[tuple[str, bool]], *, default: str = "id"
) -> list[Item]:
    """Order by ``default`` ascending, then by each sort (the first one most significant).

    Sorting by ``default`` first makes ties deterministic. Descending sorts put NULLs last,
    as MySQL does. Python's sort is stable and O(n) on already ordered input, so the
    default order over the store (usually kept in id order) is cheap.
    """
    try:  # the common case, fast: integer ids compared natively
        ordered = sorted(items, key=itemgetter(default))
    except (KeyError, TypeError):
        ordered = sorted(items, key=_field_key(default))
    for field, descending in reversed(sorts):
        ordered.sort(key=_field_key(field), reverse=descending)
    return ordered


def _field_key(field: str) -> Callable[[Item], tuple[Any, ...]]:
    """The sort key of one field (a closure per field, so loops cannot rebind it)."""
    return lambda item: sort_key(item.get(field))


def select_fields(item: Mapping[str, Any], fields: frozenset[str] | None) -> dict[str, Any]:
    """A shallow copy of ``item`` restricted to ``fields`` (all of it when None)."""
    if fields is None:
        return dict(item)
    return {key: value for key, value in item.items() if key in fields}


# --------------------------------------------------------------------------- pages


def paginate(total: int, page: int, per_page: int) -> tuple[int, int, int]:
    """``(start, stop, last_page)`` of the slice of ``total`` items a page shows.

    ``last_page`` is at least 1 (an empty list has one empty page); a page past the end
    gives an empty slice.
    """
    last_page = max(1, math.ceil(total / per_page))
    start = min((page - 1) * per_page, total)
    return start, min(start + per_page, total), last_page


def page_url(path: str, query: Mapping[str, str], page: int) -> str:
    """Laravel's ``url($page)`` after ``withQueryString()``.

    ``page`` replaces the request's own value in place, or goes last; blank parameters are
    left out (they are null to Laravel); names and values are RFC 3986 encoded as PHP's
    ``http_build_query(..., PHP_QUERY_RFC3986)`` does (``filter%5Bname%5D=a%2Cb``).
    """
    params = {key: value for key, value in query.items() if value != ""}
    params["page"] = str(page)
    encoded = "&".join(
        f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}" for key, value in params.items()
    )
    return f"{path}?{encoded}"


def paginator_body(
    data: list[dict[str, Any]],
    *,
    path: str,
    query: Mapping[str, str],
    page: int,
    per_page: int,
    total: int,
) -> dict[str, Any]:
    """The JSON of a ``LengthAwarePaginator`` resource collection: data, links, meta.

    ``prev`` is set whenever ``page > 1``, even past the end, and ``next`` only before the
    last page, exactly as Laravel computes them.
    """
    start, _, last_page = paginate(total, page, per_page)
    return {
        "data": data,
        "links": {
            "first": page_url(path, query, 1),
            "last": page_url(path, query, last_page),
            "prev": page_url(path, query, page - 1) if page > 1 else None,
            "next": page_url(path, query, page + 1) if page < last_page else None,
        },
        "meta": {
            "current_page": page,
            "from": start + 1 if data else None,
            "last_page": last_page,
            "path": path,
            "per_page": per_page,
            "to": start + len(data) if data else None,
            "total": total,
        },
    }
