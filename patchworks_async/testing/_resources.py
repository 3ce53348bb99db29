"""What every Core API resource of the fake shares: requests, replies, ids, lists and shows.

The resources (``_flows``, ``_flow_runs``, ``_lookups``) hold their data and route logic
without any HTTP: a route takes a ``CoreRequest`` (path parameters, query, decoded body,
URL) and returns a ``Reply``, so the behaviour can be unit-tested synchronously and the
server stays a thin adapter (``_http.core_handler``).

Lists never copy the store: they filter and sort references and copy only the page they
return, following the Laravel conventions in ``_laravel_query``. Ids are handed out like
auto-increment columns: above every id in use, and never reused after a delete.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias

import attrs

from ._filters import filter_items
from ._laravel_query import (
    ListQuery,
    ListSpec,
    QueryError,
    paginate,
    paginator_body,
    parse_fields,
    parse_includes,
    parse_list_query,
    select_fields,
    sort_items,
)

__all__ = [
    "SEED_TIMESTAMP",
    "CoreRequest",
    "CoreRoute",
    "Decorate",
    "IdSequence",
    "Reply",
    "iso_timestamp",
    "list_reply",
    "not_found",
    "show_reply",
]

SEED_TIMESTAMP: Final = "2026-01-01T00:00:00.000000Z"
"""``created_at`` and ``updated_at`` of seeded records, so tests can compare them exactly."""

Decorate: TypeAlias = Callable[[list[dict[str, Any]], frozenset[str]], None]
"""Adds the requested includes (related records) to the items a reply returns."""


def iso_timestamp(seconds: float) -> str:
    """Laravel's JSON date format: UTC, microseconds and ``Z`` (``...T12:00:00.000000Z``)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@attrs.frozen
class CoreRequest:
    """What a Core API route needs from the HTTP request.

    Attributes:
        params: Path parameters, raw (``{"flow_id": "101"}``).
        query: The query as ``_laravel_query.php_query`` reads it.
        body: The decoded JSON object body (empty when there was none).
        url: Scheme, host and path without the query: Laravel's paginator ``path``.
    """

    params: Mapping[str, str] = attrs.field(factory=dict)
    query: Mapping[str, str] = attrs.field(factory=dict)
    body: Mapping[str, Any] = attrs.field(factory=dict)
    url: str = "http://127.0.0.1/core/api/v1"


@attrs.frozen
class Reply:
    """A route's answer: status and JSON body, or no body at all (None, for a 204).

    Attributes:
        status: The HTTP status.
        body: The JSON body, or None for none (a 204, or a reply of bytes).
        raw: Bytes to send as they are instead of JSON (a payload download).
        content_type: The ``Content-Type`` of ``raw``.
    """

    status: int
    body: dict[str, Any] | None
    raw: bytes | None = None
    content_type: str = "application/octet-stream"


CoreRoute: TypeAlias = Callable[[CoreRequest], Reply]
"""A Core API route as the resources write it: a request in, a reply out, no HTTP."""


def not_found(model: str, raw_id: str) -> Reply:
    """Laravel's 404 for a route model binding that found nothing."""
    return Reply(404, {"message": f"No query results for model [{model}] {raw_id}"})


class IdSequence:
    """Ids as an auto-increment column hands them out.

    A new id is above every id in use, including ones a test put in the dict by hand, and
    above every id handed out before, so an id is never reused after a delete.
    """

    def __init__(self, floor: int = 0) -> None:
        """Start above ``floor``: the first id is ``floor + 1``."""
        self._floor = floor
        self._mark = floor
        self._known_size = -1  # len(taken) once the last id handed out is in it

    def peek(self, taken: Mapping[int, Any]) -> int:
        """The id ``allocate`` would hand out next, without taking it.

        ``taken`` is scanned only when its size says someone else changed it (a test
        seeding ids by hand, a delete): a long run of starts stays linear, not quadratic.
        """
        if len(taken) != self._known_size:
            self._mark = max(max(taken, default=self._floor), self._mark)
        return self._mark + 1

    def allocate(self, taken: Mapping[int, Any]) -> int:
        """Hand out a new id, above every key of ``taken`` and every id handed out so far."""
        self._mark = self.peek(taken)
        self._known_size = len(taken) + 1  # the caller stores it next
        return self._mark

    def claim(self, *ids: int) -> None:
        """Count ``ids``, chosen by the caller, as handed out."""
        self._mark = max(self._mark, *ids)


def list_reply(
    request: CoreRequest,
    spec: ListSpec,
    items: Iterable[dict[str, Any]],
    decorate: Decorate | None = None,
) -> Reply:
    """Filter, sort and paginate ``items``, copying only the returned page."""
    try:
        query: ListQuery = parse_list_query(request.query, spec)
    except QueryError as error:
        return Reply(error.status, error.body)
    found = filter_items(items, query.predicates)
    ordered = sort_items(found, query.sorts)
    start, stop, _ = paginate(len(ordered), query.page, query.per_page)
    data = [select_fields(item, query.fields) for item in itertools.islice(ordered, start, stop)]
    if decorate is not None and query.includes:
        decorate(data, query.includes)
    body = paginator_body(
        data,
        path=request.url,
        query=request.query,
        page=query.page,
        per_page=query.per_page,
        total=len(ordered),
    )
    return Reply(200, body)


def show_reply(
    request: CoreRequest,
    item: Mapping[str, Any],
    spec: ListSpec,
    decorate: Decorate | None = None,
) -> Reply:
    """One resource with its includes and fields, as a ``{"data": ...}`` reply."""
    try:
        includes = parse_includes(request.query, spec.includes, spec.silent_includes)
    except QueryError as error:
        return Reply(error.status, error.body)
    data = select_fields(item, parse_fields(request.query, spec.resource))
    if decorate is not None and includes:
        decorate([data], includes)
    return Reply(200, {"data": data})
