"""Query encoding and page parsing (pure), and the paginator's streaming against a page source."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
from typing import Any

import pytest

from patchworks_async import AsyncPaginator, ConfigurationError, Flow, UnexpectedResponseError
from patchworks_async._pagination import list_params, parse_page

from ..support.virtual_time import run_in_virtual_time


class TestListParams:
    def test_filters_lists_booleans_and_datetimes(self) -> None:
        when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        assert list_params(
            filter={"id": [1, 2, 3], "enabled": True, "deployed": False, "started_after": when},
            per_page=50,
        ) == [
            ("filter[id]", "1,2,3"),
            ("filter[enabled]", "true"),
            ("filter[deployed]", "false"),
            ("filter[started_after]", "1767225600000"),
            ("per_page", "50"),
        ]

    def test_none_filters_are_left_out(self) -> None:
        assert list_params(filter={"name": None}) == [("per_page", "100")]

    def test_include_fields_and_sort(self) -> None:
        assert list_params(
            include=["versions", "latestVersion"],
            fields={"flows": ["id", "name"]},
            sort=["-created_at", "name"],
        ) == [
            ("include", "versions,latestVersion"),
            ("fields[flows]", "id,name"),
            ("sort", "-created_at,name"),
            ("per_page", "100"),
        ]

    def test_a_single_string_is_one_name(self) -> None:
        assert list_params(include="versions", sort="-name")[:2] == [
            ("include", "versions"),
            ("sort", "-name"),
        ]

    @pytest.mark.parametrize("per_page", [0, 101, -1, 1.5, True, "10"])
    def test_per_page_is_checked_before_sending(self, per_page: object) -> None:
        with pytest.raises(ConfigurationError, match="per_page"):
            list_params(per_page=per_page)  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", [{"name": object()}, {"name": {"nested": 1}}])
    def test_unencodable_filters_are_refused(self, bad: dict[str, object]) -> None:
        with pytest.raises(ConfigurationError):
            list_params(filter=bad)

    def test_empty_include_is_refused(self) -> None:
        with pytest.raises(ConfigurationError):
            list_params(include=[])


def _reply(items: list[dict[str, Any]], page: int, last: int, total: int) -> dict[str, Any]:
    return {
        "data": items,
        "links": {"next": f"?page={page + 1}" if page < last else None},
        "meta": {"current_page": page, "last_page": last, "per_page": 2, "total": total},
    }


class TestParsePage:
    def test_reads_items_and_meta(self) -> None:
        page = parse_page(
            _reply([{"id": 1, "name": "a"}], 1, 3, 5), Flow, page_number=1, per_page=2
        )
        assert [f.id for f in page.items] == [1]
        assert (page.current_page, page.last_page, page.total, page.has_next) == (1, 3, 5, True)

    def test_without_meta_links_next_decides(self) -> None:
        page = parse_page(
            {"data": [{"id": 1, "name": "a"}], "links": {"next": None}},
            Flow,
            page_number=4,
            per_page=2,
        )
        assert (page.current_page, page.last_page, page.has_next) == (4, 4, False)

    def test_an_empty_page_is_the_last(self) -> None:
        page = parse_page(_reply([], 2, 5, 4), Flow, page_number=2, per_page=2)
        assert not page.has_next

    def test_a_bad_item_names_its_index_and_field(self) -> None:
        with pytest.raises(UnexpectedResponseError) as caught:
            parse_page(
                _reply([{"id": 1, "name": "a"}, {"id": "x", "name": "b"}], 1, 1, 2),
                Flow,
                page_number=1,
                per_page=2,
            )
        assert caught.value.field == "data[1].id"

    @pytest.mark.parametrize("reply", [None, [], {"data": {}}, "<html>"])
    def test_a_reply_that_is_not_a_page_is_refused(self, reply: object) -> None:
        with pytest.raises(UnexpectedResponseError):
            parse_page(reply, Flow, page_number=1, per_page=2)


class PageSource:
    """An in-memory list served as Laravel pages, counting requests; optionally slow."""

    def __init__(self, total: int, *, per_page: int = 2, delay: float = 0.0) -> None:
        self.total = total
        self.per_page = per_page
        self.delay = delay
        self.requested: list[int] = []
        self.in_flight = 0

    async def fetch(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        page = int(dict(params)["page"])
        self.requested.append(page)
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        last = max(1, -(-self.total // self.per_page))
        first = (page - 1) * self.per_page
        ids = range(first, min(first + self.per_page, self.total))
        return _reply([{"id": i, "name": f"flow {i}"} for i in ids], page, last, self.total)

    def paginator(self, **kwargs: Any) -> AsyncPaginator[Flow]:
        params = [("per_page", str(self.per_page))]
        return AsyncPaginator(self.fetch, Flow, params, per_page=self.per_page, **kwargs)


async def _ids(paginator: AsyncPaginator[Flow]) -> list[int]:
    return [flow.id async for flow in paginator]


@pytest.mark.parametrize("prefetch", [False, True])
class TestStreaming:
    async def test_an_empty_list_is_one_request_and_no_items(self, prefetch: bool) -> None:
        source = PageSource(0)
        assert await _ids(source.paginator(prefetch=prefetch)) == []
        assert source.requested == [1]

    async def test_exactly_one_page(self, prefetch: bool) -> None:
        source = PageSource(2)
        assert await _ids(source.paginator(prefetch=prefetch)) == [0, 1]
        assert source.requested == [1]

    async def test_an_exact_multiple_of_per_page_stops_at_the_last_page(
        self, prefetch: bool
    ) -> None:
        source = PageSource(6)
        assert await _ids(source.paginator(prefetch=prefetch)) == list(range(6))
        assert source.requested == [1, 2, 3]

    async def test_max_items_inside_a_page_stops_without_another_request(
        self, prefetch: bool
    ) -> None:
        source = PageSource(10)
        assert await _ids(source.paginator(max_items=3, prefetch=prefetch)) == [0, 1, 2]
        assert source.requested == [1, 2]

    async def test_pages_report_their_numbers(self, prefetch: bool) -> None:
        source = PageSource(5)
        pages = [page async for page in source.paginator(prefetch=prefetch).pages()]
        assert [(p.current_page, p.last_page, len(p.items)) for p in pages] == [
            (1, 3, 2),
            (2, 3, 2),
            (3, 3, 1),
        ]

    def test_breaking_early_sends_no_further_request_and_leaves_no_task(
        self, prefetch: bool
    ) -> None:
        async def scenario() -> None:
            source = PageSource(100, delay=0.01)
            async for flow in source.paginator(prefetch=prefetch):
                if flow.id == 2:  # on page 2
                    break
            gc.collect()
            await asyncio.sleep(0.05)  # let the loop finalise the abandoned generator
            assert source.requested == ([1, 2, 3] if prefetch else [1, 2])
            assert source.in_flight == 0
            assert asyncio.all_tasks() == {asyncio.current_task()}

        run_in_virtual_time(scenario())

    async def test_async_with_closes_at_once(self, prefetch: bool) -> None:
        source = PageSource(100, delay=0.01)
        async with source.paginator(prefetch=prefetch) as flows:
            async for _ in flows:
                break
        assert source.in_flight == 0
        assert asyncio.all_tasks() == {asyncio.current_task()}

    def test_cancelling_the_consumer_mid_page_leaves_nothing_running(self, prefetch: bool) -> None:
        source = PageSource(100, delay=0.01)
        seen: list[int] = []

        async def consume() -> None:
            async with source.paginator(prefetch=prefetch) as flows:
                async for flow in flows:
                    seen.append(flow.id)
                    await asyncio.sleep(0.005)  # working on each item

        async def scenario() -> None:
            task = asyncio.create_task(consume())
            await asyncio.sleep(0.035)  # mid-page: pages of 2 items take 0.02 s each
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            requested = len(source.requested)
            await asyncio.sleep(0.05)
            assert len(source.requested) == requested
            assert source.in_flight == 0
            assert asyncio.all_tasks() == {asyncio.current_task()}

        run_in_virtual_time(scenario())
        assert seen == list(range(len(seen)))

    async def test_max_items_zero_sends_nothing(self, prefetch: bool) -> None:
        source = PageSource(10)
        assert await _ids(source.paginator(max_items=0, prefetch=prefetch)) == []
        assert source.requested == []


def test_prefetch_overlaps_the_next_request_with_the_callers_work() -> None:
    async def scenario() -> int:
        source = PageSource(6, delay=0.01)
        overlapped = 0
        async for _page in source.paginator(prefetch=True).pages():
            await asyncio.sleep(0.005)  # work, during which the next page is on its way
            overlapped += source.in_flight
        return overlapped

    # Pages 2 and 3 were in flight while pages 1 and 2 were handled.
    assert run_in_virtual_time(scenario()) == 2


def test_max_items_must_be_a_non_negative_int() -> None:
    with pytest.raises(ConfigurationError):
        PageSource(1).paginator(max_items=-1)
