"""``flows.start_many`` and its journal, end to end against FakePatchworks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from patchworks_async import (
    ConfigurationError,
    JournalMismatchError,
    PatchworksClient,
    PayloadError,
    PayloadTooLargeError,
    RateLimits,
    RetryPolicy,
    StartResult,
    StartStatus,
)
from patchworks_async.testing import FakePatchworks, Fault, fake_patchworks_process

from ..support.clients import client_for

FAST = RateLimits(requests=100_000, per=1.0)


async def run_all(pw: PatchworksClient, payloads: object, **kwargs: object) -> list[StartResult]:
    async with contextlib.aclosing(
        pw.flows.start_many(101, 9001, payloads, **kwargs)  # type: ignore[arg-type]
    ) as results:
        return [result async for result in results]


def by_status(results: list[StartResult]) -> dict[StartStatus, list[int]]:
    grouped: dict[StartStatus, list[int]] = {status: [] for status in StartStatus}
    for result in results:
        grouped[result.status].append(result.index)
    return {status: sorted(indexes) for status, indexes in grouped.items()}


@pytest.fixture
async def fast_fake() -> AsyncIterator[FakePatchworks]:
    async with FakePatchworks(requests_per_window=100_000, latency=(0.0, 0.01), seed=3) as fake:
        yield fake


class TestStartMany:
    async def test_every_item_yields_exactly_one_result(self, fast_fake: FakePatchworks) -> None:
        async with client_for(fast_fake, rate_limits=FAST) as pw:
            results = await run_all(pw, (f"order {i}" for i in range(60)), concurrency=8)
        assert sorted(r.index for r in results) == list(range(60))
        assert {r.status for r in results} == {StartStatus.STARTED}
        run_ids = {run.payload: run.run_id for run in fast_fake.starts}
        assert {r.run_id for r in results} == set(run_ids.values())
        assert sorted(run_ids) == sorted(f"order {i}" for i in range(60))

    async def test_payloads_are_read_lazily_and_concurrency_is_bounded(
        self, fast_fake: FakePatchworks
    ) -> None:
        yielded = 0
        ahead: list[int] = []

        def payloads() -> Iterator[str]:
            for i in range(100):
                ahead.append(i - yielded)  # how far reading runs ahead of the results
                yield f"#{i}"

        async with (
            client_for(fast_fake, rate_limits=FAST) as pw,
            contextlib.aclosing(
                pw.flows.start_many(101, 9001, payloads(), concurrency=5)
            ) as results,
        ):
            async for _ in results:
                yielded += 1
        assert yielded == 100
        assert max(ahead) <= 5

    async def test_an_async_iterable_works_too(self, fast_fake: FakePatchworks) -> None:
        async def payloads() -> AsyncIterator[dict[str, int]]:
            for i in range(10):
                await asyncio.sleep(0)
                yield {"order": i}

        async with client_for(fast_fake, rate_limits=FAST) as pw:
            results = await run_all(pw, payloads())
        assert by_status(results)[StartStatus.STARTED] == list(range(10))

    async def test_a_stalled_source_holds_back_neither_sends_nor_results(
        self, fast_fake: FakePatchworks
    ) -> None:
        """Like a pipe: three payloads, then nothing until their three results are out."""
        results_out = asyncio.Event()

        async def payloads() -> AsyncIterator[str]:
            for i in range(3):
                yield f"early {i}"
            await results_out.wait()
            yield "late"

        seen: list[StartResult] = []
        async with (
            client_for(fast_fake, rate_limits=FAST) as pw,
            contextlib.aclosing(
                pw.flows.start_many(101, 9001, payloads(), concurrency=8)
            ) as results,
        ):
            async for result in results:
                seen.append(result)
                if len(seen) == 3:
                    results_out.set()
        assert sorted(r.index for r in seen) == [0, 1, 2, 3]

    async def test_a_bad_item_fails_alone_and_the_batch_goes_on(
        self, fast_fake: FakePatchworks
    ) -> None:
        payloads = ["ok 0", None, "  ", "x" * 2000, "ok 4"]
        async with client_for(fast_fake, rate_limits=FAST, max_body_bytes=1000) as pw:
            results = await run_all(pw, payloads)
        statuses = {r.index: r for r in results}
        assert [statuses[i].status for i in range(5)] == [
            StartStatus.STARTED,
            StartStatus.FAILED,
            StartStatus.FAILED,
            StartStatus.FAILED,
            StartStatus.STARTED,
        ]
        assert isinstance(statuses[1].error, PayloadError)
        assert isinstance(statuses[3].error, PayloadTooLargeError)
        assert sorted(run.payload for run in fast_fake.starts) == ["ok 0", "ok 4"]

    async def test_statuses_match_what_the_server_did(self, fast_fake: FakePatchworks) -> None:
        """started: exactly once on the server; failed: not at all; unknown: maybe."""
        fast_fake.inject(Fault.DROP_AFTER, times=2, route="start")
        fast_fake.inject(Fault.SERVER_ERROR_AFTER, times=1, route="start")
        fast_fake.inject(Fault.UNAVAILABLE_BEFORE, times=2, route="start")
        async with client_for(fast_fake, rate_limits=FAST, max_body_bytes=10_000) as pw:
            payloads = [f"item {i}" for i in range(30)] + ["y" * 20_000]
            results = await run_all(pw, payloads, concurrency=4)
        on_server = Counter(run.payload for run in fast_fake.starts)
        grouped = by_status(results)
        assert len(grouped[StartStatus.UNKNOWN]) == 5
        for index in grouped[StartStatus.STARTED]:
            assert on_server[payloads[index]] == 1
        for index in grouped[StartStatus.FAILED]:
            assert on_server[payloads[index]] == 0
        assert grouped[StartStatus.FAILED] == [30]
        assert max(on_server.values()) == 1  # nothing started twice

    async def test_a_server_refusal_is_a_failure(self) -> None:
        async with (
            FakePatchworks(max_body_bytes=200) as fake,
            client_for(fake, rate_limits=FAST) as pw,
        ):
            results = await run_all(pw, ["small", "z" * 500])
        grouped = by_status(results)
        assert (grouped[StartStatus.STARTED], grouped[StartStatus.FAILED]) == ([0], [1])

    async def test_leaving_early_sends_nothing_new_and_lets_flights_land(self) -> None:
        pulled = 0

        def payloads() -> Iterator[str]:
            nonlocal pulled
            for i in range(1000):
                pulled += 1
                yield f"#{i}"

        async with (
            FakePatchworks(requests_per_window=100_000, latency=0.05) as fake,
            client_for(fake, rate_limits=FAST) as pw,
        ):
            seen = 0
            async with contextlib.aclosing(
                pw.flows.start_many(101, 9001, payloads(), concurrency=8)
            ) as results:
                async for _ in results:
                    seen += 1
                    if seen == 3:
                        break
            # aclosing has drained what was in flight: those starts landed, and no request
            # of the batch is left to send anything more.
            landed = len(fake.starts)
            assert [t for t in asyncio.all_tasks() if t.get_name() == "patchworks-start-many"] == []
        assert pulled <= 3 + 8 + 1
        assert landed <= pulled

    async def test_a_body_of_several_mib_is_sent_without_warnings(
        self, fast_fake: FakePatchworks
    ) -> None:
        """Under ``-W error`` (the suite's setting) too: aiohttp is handed a stream."""
        payloads = ["x" * (3 * 1024 * 1024), "y" * (1024 * 1024 + 1)]
        async with client_for(fast_fake, rate_limits=FAST) as pw:
            results = await run_all(pw, payloads)
        assert {r.status for r in results} == {StartStatus.STARTED}
        assert sorted(len(run.payload) for run in fast_fake.starts) == sorted(map(len, payloads))

    async def test_a_2xx_that_is_not_json_is_unknown_never_started(self) -> None:
        """A wrong start URL whose server answers 200 with a page proves nothing."""

        async def page(request: web.Request) -> web.Response:
            return web.Response(
                text="<html><h1>Welcome to nginx!</h1></html>", content_type="text/html"
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", page)
        async with TestServer(app) as portal, FakePatchworks() as fake:
            urls = {**fake.urls, "start_url": str(portal.make_url("/api/v1"))}
            async with PatchworksClient(api_key=fake.api_key, rate_limits=FAST, **urls) as pw:
                results = await run_all(pw, ["a", "b", "c"])
        assert by_status(results)[StartStatus.UNKNOWN] == [0, 1, 2]

    async def test_a_start_resent_after_an_ambiguous_failure_is_never_failed(
        self, fast_fake: FakePatchworks
    ) -> None:
        """retry_ambiguous_starts: a 503 may come after the work was done, so a refusal of
        the resend proves nothing about the first send."""
        retry = RetryPolicy(backoff_base=0, retry_ambiguous_starts=True)
        fast_fake.inject(Fault.UNAVAILABLE_BEFORE, times=1, route="start")
        fast_fake.max_body_bytes = 1  # then every send is refused with a 413
        async with client_for(fast_fake, rate_limits=FAST, retry=retry) as pw:
            results = await run_all(pw, ["only"])
        assert [r.status for r in results] == [StartStatus.UNKNOWN]
        assert [r.status for r in fast_fake.received] == [503, 413]

    async def test_manual_uses_the_manual_route(self, fast_fake: FakePatchworks) -> None:
        async with client_for(fast_fake, rate_limits=RateLimits(manual_starts=100)) as pw:
            await run_all(pw, ["a", "b"], manual=True)
        assert all(run.manual for run in fast_fake.starts)

    async def test_bad_concurrency_is_refused(self, fast_fake: FakePatchworks) -> None:
        async with client_for(fast_fake) as pw:
            with pytest.raises(ConfigurationError):
                await run_all(pw, ["a"], concurrency=0)


class TestJournal:
    async def test_a_rerun_skips_what_started(
        self, fast_fake: FakePatchworks, tmp_path: Path
    ) -> None:
        journal = tmp_path / "run.sqlite"
        payloads = [f"order {i}" for i in range(20)]
        async with client_for(fast_fake, rate_limits=FAST) as pw:
            first = await run_all(pw, payloads, journal=journal)
            second = await run_all(pw, payloads, journal=journal)
        assert by_status(first)[StartStatus.STARTED] == list(range(20))
        assert by_status(second)[StartStatus.SKIPPED] == list(range(20))
        assert {r.index: r.run_id for r in first} == {r.index: r.run_id for r in second}
        assert len(fast_fake.starts) == 20

    async def test_unknown_items_are_not_resent_unless_asked(
        self, fast_fake: FakePatchworks, tmp_path: Path
    ) -> None:
        journal = tmp_path / "run.sqlite"
        payloads = [f"order {i}" for i in range(6)]
        fast_fake.inject(Fault.DROP_AFTER, times=1, route="start")
        async with client_for(fast_fake, rate_limits=FAST) as pw:
            first = await run_all(pw, payloads, journal=journal, concurrency=1)
            (doubtful,) = by_status(first)[StartStatus.UNKNOWN]
            second = await run_all(pw, payloads, journal=journal)
            assert by_status(second)[StartStatus.UNKNOWN] == [doubtful]
            assert len(fast_fake.starts) == 6  # the dropped one did start, once
            third = await run_all(pw, payloads, journal=journal, resend_unknown=True)
        assert by_status(third)[StartStatus.STARTED] == [doubtful]
        assert Counter(run.payload for run in fast_fake.starts)[payloads[doubtful]] == 2

    async def test_failed_items_are_sent_again(
        self, fast_fake: FakePatchworks, tmp_path: Path
    ) -> None:
        journal = tmp_path / "run.sqlite"
        payloads = ["small", "c" * 500]
        fast_fake.max_body_bytes = 300  # the server refuses the second one with a 413
        async with client_for(fast_fake, rate_limits=FAST) as pw:
            first = await run_all(pw, payloads, journal=journal)
            assert by_status(first)[StartStatus.FAILED] == [1]
            fast_fake.max_body_bytes = 8 * 1024 * 1024
            again = await run_all(pw, payloads, journal=journal)
        assert by_status(again)[StartStatus.SKIPPED] == [0]
        assert by_status(again)[StartStatus.STARTED] == [1]
        assert [run.payload for run in fast_fake.starts] == payloads

    async def test_changed_input_is_refused(
        self, fast_fake: FakePatchworks, tmp_path: Path
    ) -> None:
        journal = tmp_path / "run.sqlite"
        async with client_for(fast_fake, rate_limits=FAST) as pw:
            await run_all(pw, ["a", "b", "c"], journal=journal)
            fast_fake.reset_records()
            with pytest.raises(JournalMismatchError, match="item 1"):
                await run_all(pw, ["a", "B", "c"], journal=journal)
        assert fast_fake.starts == []

    async def test_another_flow_is_refused_before_anything_is_sent(
        self, fast_fake: FakePatchworks, tmp_path: Path
    ) -> None:
        journal = tmp_path / "run.sqlite"
        async with client_for(fast_fake, rate_limits=FAST) as pw:
            await run_all(pw, ["a"], journal=journal)
            with pytest.raises(JournalMismatchError, match="version_id"):
                async for _ in pw.flows.start_many(101, 9002, ["a"], journal=journal):
                    pass
        assert len(fast_fake.starts) == 1

    async def test_a_file_that_is_not_a_journal_is_refused(
        self, fast_fake: FakePatchworks, tmp_path: Path
    ) -> None:
        bogus = tmp_path / "notes.sqlite"
        bogus.write_text("these are not the rows you are looking for " * 100)
        async with client_for(fast_fake) as pw:
            with pytest.raises(ConfigurationError, match="not a usable journal"):
                await run_all(pw, ["a"], journal=bogus)


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from patchworks_async import PatchworksClient, RateLimits

    async def main() -> None:
        urls = json.loads(sys.argv[1])
        api_key = urls.pop("api_key")
        async with PatchworksClient(
            api_key=api_key, **urls, rate_limits=RateLimits(requests=100_000, per=1.0)
        ) as pw:
            payloads = (f"order {i}" for i in range(int(sys.argv[3])))
            async for result in pw.flows.start_many(
                101, 9001, payloads, journal=sys.argv[2], concurrency=4
            ):
                print(result.index, result.status, flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["crash", "ctrl-c"])
async def test_an_interrupted_run_resumes_without_starting_anything_twice(
    tmp_path: Path, how: signal.Signals
) -> None:
    """Kill a real run midway (a crash, or Ctrl-C), resume it: every item started once at most."""
    journal = tmp_path / "run.sqlite"
    total = 300
    async with fake_patchworks_process("--requests", "100000", "--latency", "0.01") as fake:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            json.dumps({**fake.urls, "api_key": fake.api_key}),
            str(journal),
            str(total),
            stdout=asyncio.subprocess.PIPE,
        )
        assert worker.stdout is not None
        for _ in range(40):  # let it get well under way
            await asyncio.wait_for(worker.stdout.readline(), 30)
        worker.send_signal(how)
        await asyncio.wait_for(worker.wait(), 30)

        async with PatchworksClient(api_key=fake.api_key, **fake.urls, rate_limits=FAST) as pw:
            resumed = await run_all(pw, (f"order {i}" for i in range(total)), journal=journal)
        state = await fake.state()

    starts = Counter(run["payload"] for run in state["starts"])
    assert max(starts.values()) == 1  # nothing started twice
    grouped = by_status(resumed)
    assert sorted(r.index for r in resumed) == list(range(total))
    # The worker printed 40 results, each committed to the journal before it was handed
    # over: even a crash leaves all of them recorded as started.
    assert len(grouped[StartStatus.SKIPPED]) >= 40
    for index in grouped[StartStatus.SKIPPED] + grouped[StartStatus.STARTED]:
        assert starts[f"order {index}"] == 1
    # Every item that is not on the server was sent on resume: nothing is lost.
    assert set(range(total)) - {int(p.split()[1]) for p in starts} <= set(
        grouped[StartStatus.UNKNOWN]
    )
    if how == signal.SIGINT:
        # Ctrl-C let the requests in flight finish and journaled them: no doubt is left.
        assert grouped[StartStatus.UNKNOWN] == []
    else:
        # Unknown at most what was on the wire at the kill (concurrency 4).
        assert len(grouped[StartStatus.UNKNOWN]) <= 4
    with contextlib.closing(sqlite3.connect(journal)) as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())
    assert states.get("sending", 0) + states.get("unknown", 0) == len(grouped[StartStatus.UNKNOWN])
