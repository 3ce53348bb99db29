"""Streaming the API's paginated lists. The query encoding and page parsing are pure.

A list call returns an :class:`AsyncPaginator`: an async iterator of items that also offers
:meth:`AsyncPaginator.pages`. Pages are fetched one at a time as the caller reaches them,
so memory holds a page (two with ``prefetch``), never the list. Leaving the loop early sends
no further request: an unfinished prefetch is cancelled when the iterator is closed, which
happens when it is garbage-collected after ``break``, or at once inside ``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import difflib
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypedDict, TypeVar

from attrs import frozen

from ._errors import ConfigurationError, UnexpectedResponseError
from ._models import structure

__all__ = [
    "AsyncPaginator",
    "ListOptions",
    "Page",
    "include_param",
    "list_params",
    "paginate",
    "parse_page",
]

T = TypeVar("T")

MAX_PER_PAGE = 100

Params = list[tuple[str, str]]
FetchPage = Callable[[Params], Awaitable[Any]]


class ListOptions(TypedDict, total=False):
    """The keyword arguments every ``list(...)`` takes.

    Attributes:
        filter: ``filter[key]=value`` per entry: a list becomes ``a,b`` (IN), booleans
            ``true``/``false``, datetimes Unix milliseconds; ``None`` values are left out.
        include: Relations to include, a name or a list (``include=a,b``).
        fields: Per resource, the fields to return (``fields[flows]=id,name``).
        sort: A field or a list of fields; ``-name`` sorts descending.
        per_page: Items per page, 1 to 100 (default 100), checked before sending.
        max_items: Stop after this many items (default: all).
        prefetch: Fetch the next page while the caller works on the current one
            (default False); still through the rate limiter.
    """

    filter: Mapping[str, object] | None
    include: str | Iterable[str] | None
    fields: Mapping[str, str | Iterable[str]] | None
    sort: str | Iterable[str] | None
    per_page: int
    max_items: int | None
    prefetch: bool


def _filter_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return str(int(value.timestamp() * 1000))  # the API's time filters are Unix ms
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(f"filter[{key}] must be a finite number, not {value!r}")
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        return ",".join(_filter_value(key, item) for item in value)
    raise ConfigurationError(f"filter[{key}] cannot be {type(value).__name__}: {value!r}")


def _names(what: str, value: object) -> str:
    if isinstance(value, str):
        names = [value]
    elif isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        names = list(value)
    else:
        names = []
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ConfigurationError(
            f"{what} must be a non-empty string or list of strings, not {value!r}"
        )
    return ",".join(names)


def _mapping_of_names(what: str, value: object) -> Mapping[str, object]:
    """A mapping whose keys are non-empty strings (``filter``, ``fields``)."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{what} must be a mapping such as {{'enabled': True}}, not {value!r}"
        )
    for key in value:
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"{what} keys must be non-empty strings, not {key!r}")
    return value


def include_param(include: str | Iterable[str] | None) -> Params:
    """``include=a,b`` from a relation name or a list of them; nothing for ``None``.

    The one encoder of ``include``, for lists and single resources alike.

    Raises:
        ConfigurationError: ``include`` is empty or holds something that is not a name.
    """
    if include is None:
        return []
    return [("include", _names("include", include))]


def list_params(
    *,
    filter: Mapping[str, object] | None = None,
    include: str | Iterable[str] | None = None,
    fields: Mapping[str, str | Iterable[str]] | None = None,
    sort: str | Iterable[str] | None = None,
    per_page: int = MAX_PER_PAGE,
) -> Params:
    """The query parameters of a list request, checked before anything is sent.

    Args:
        filter: ``filter[key]=value`` for each entry; a list becomes ``a,b`` (IN), booleans
            ``true``/``false``, datetimes Unix milliseconds. ``None`` values are left out.
        include: Relations to include: ``include=a,b``.
        fields: Per resource, the fields to return: ``fields[flows]=id,name``.
        sort: A field or a list of fields; ``-name`` sorts descending.
        per_page: Items per page, 1 to 100.

    Raises:
        ConfigurationError: an argument the API could not accept.
    """
    if isinstance(per_page, bool) or not isinstance(per_page, int):
        raise ConfigurationError(f"per_page must be an int from 1 to 100, not {per_page!r}")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ConfigurationError(f"per_page must be from 1 to {MAX_PER_PAGE}, not {per_page}")
    params: Params = []
    for key, value in (_mapping_of_names("filter", filter) if filter is not None else {}).items():
        if value is not None:
            params.append((f"filter[{key}]", _filter_value(key, value)))
    params += include_param(include)
    for resource, names in (
        _mapping_of_names("fields", fields) if fields is not None else {}
    ).items():
        params.append((f"fields[{resource}]", _names(f"fields[{resource}]", names)))
    if sort is not None:
        params.append(("sort", _names("sort", sort)))
    params.append(("per_page", str(per_page)))
    return params


@frozen
class Page(Generic[T]):
    """One page of a list.

    Attributes:
        items: The page's items, as models.
        current_page: This page's number, from 1.
        last_page: The number of the last page (from ``meta``, else inferred).
        total: How many items the whole list has, when the server says.
        per_page: Items per page.
        has_next: Whether a further page exists.
    """

    items: tuple[T, ...]
    current_page: int
    last_page: int
    total: int | None
    per_page: int
    has_next: bool


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _meta_int(meta: Mapping[str, Any], key: str) -> int | None:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_page(reply: Any, item_type: type[T], *, page_number: int, per_page: int) -> Page[T]:
    """Read a Laravel paginator reply (``data``, ``links``, ``meta``) into a :class:`Page`.

    The last page is the one whose number reaches ``meta.last_page``, or whose
    ``links.next`` is null when there is no ``meta``; an empty page is always the last.

    Raises:
        UnexpectedResponseError: the reply is not a page, or an item is not an ``item_type``.
    """
    if not isinstance(reply, Mapping) or not isinstance(reply.get("data"), list):
        raise UnexpectedResponseError("a list reply needs a 'data' array", field="data", body=reply)
    items = tuple(
        structure(item, item_type, body=reply, path=f"data[{index}]")
        for index, item in enumerate(reply["data"])
    )
    meta = _mapping(reply.get("meta"))
    links = _mapping(reply.get("links"))
    current = _meta_int(meta, "current_page") or page_number
    last = _meta_int(meta, "last_page")
    if last is not None:
        has_next = current < last
    else:
        has_next = bool(links.get("next"))
        last = current + 1 if has_next else current
    return Page(
        items=items,
        current_page=current,
        last_page=last,
        total=_meta_int(meta, "total"),
        per_page=_meta_int(meta, "per_page") or per_page,
        has_next=has_next and bool(items),
    )


class AsyncPaginator(Generic[T]):
    """What every ``list(...)`` returns: an async iterator of items, and of pages.

    ``async for item in paginator`` streams items; ``async for page in paginator.pages()``
    streams :class:`Page` objects. Nothing is requested until iteration starts. Use it as
    ``async with`` to have an early exit release everything at once.

    Args:
        fetch: Sends one list request with the given query parameters.
        item_type: The model each item becomes.
        params: The query parameters, without ``page``.
        per_page: Items per page.
        max_items: Stop after this many items (``None``: all of them).
        prefetch: Fetch the next page while the caller works on the current one. The
            request still goes through the rate limiter.
    """

    def __init__(
        self,
        fetch: FetchPage,
        item_type: type[T],
        params: Params,
        *,
        per_page: int,
        max_items: int | None = None,
        prefetch: bool = False,
    ) -> None:
        if max_items is not None and (
            isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0
        ):
            raise ConfigurationError(f"max_items must be None or an int >= 0, not {max_items!r}")
        self._fetch = fetch
        self._item_type = item_type
        self._params = params
        self._per_page = per_page
        self._max_items = max_items
        self._prefetch = prefetch
        self._items: AsyncGenerator[T, None] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._items is None:
            self._items = self._iterate_items()
        return await self._items.__anext__()

    async def _iterate_items(self) -> AsyncGenerator[T, None]:
        pages = self.pages()
        try:
            async for page in pages:
                for item in page.items:
                    yield item
        finally:
            await pages.aclose()

    async def aclose(self) -> None:
        """Stop iterating: cancel a prefetch in flight; no further request is sent."""
        if self._items is not None:
            await self._items.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _get_page(self, number: int) -> Page[T]:
        params = [*self._params, ("page", str(number))]
        reply = await self._fetch(params)
        return parse_page(reply, self._item_type, page_number=number, per_page=self._per_page)

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        """Stream the pages, fetched as they are reached (one ahead with ``prefetch``)."""
        remaining = self._max_items
        if remaining == 0:
            return
        number = 1
        ahead: asyncio.Task[Page[T]] | None = None
        try:
            page = await self._get_page(number)
            while True:
                if remaining is not None:
                    page = _truncated(page, remaining)
                    remaining -= len(page.items)
                more = page.has_next and remaining != 0
                if more and self._prefetch:
                    ahead = asyncio.create_task(self._get_page(number + 1))
                    # Let the request leave now: a caller whose work on this page never
                    # awaits would otherwise hold it back until the next page is asked for.
                    await asyncio.sleep(0)
                yield page
                if not more:
                    return
                number += 1
                if ahead is not None:
                    page, ahead = await ahead, None
                else:
                    page = await self._get_page(number)
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead


def _truncated(page: Page[T], limit: int) -> Page[T]:
    if len(page.items) <= limit:
        return page
    return Page(
        items=page.items[:limit],
        current_page=page.current_page,
        last_page=page.last_page,
        total=page.total,
        per_page=page.per_page,
        has_next=False,
    )


def paginate(fetch: FetchPage, item_type: type[T], options: ListOptions) -> AsyncPaginator[T]:
    """An :class:`AsyncPaginator` for a list; every option is checked now, not at the first
    page, so a mistake raises where it was made.

    Args:
        fetch: Sends one list request with the given query parameters.
        item_type: The model each item becomes.
        options: What the caller passed to ``list(...)``.
    """
    unknown = options.keys() - ListOptions.__annotations__.keys()
    if unknown:
        # What Python says of a typo in a signature with named parameters.
        name = sorted(unknown)[0]
        hint = difflib.get_close_matches(name, ListOptions.__annotations__, n=1)
        raise TypeError(
            f"list() got an unexpected keyword argument {name!r}"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
        )
    per_page = options.get("per_page", MAX_PER_PAGE)
    max_items = options.get("max_items")
    prefetch = options.get("prefetch", False)
    if not isinstance(prefetch, bool):
        raise ConfigurationError(f"prefetch must be True or False, not {prefetch!r}")
    params = list_params(
        filter=options.get("filter"),
        include=options.get("include"),
        fields=options.get("fields"),
        sort=options.get("sort"),
        per_page=per_page,
    )
    if type(max_items) is int and 0 < max_items < per_page:
        per_page = max_items  # one short page rather than a full one cut down
        params[-1] = ("per_page", str(per_page))
    return AsyncPaginator(
        fetch,
        item_type,
        params,
        per_page=per_page,
        max_items=max_items,
        prefetch=prefetch,
    )
