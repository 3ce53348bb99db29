"""Stop means stop: ``start_many`` at every edge a batch job meets, in a controlled order.

Every test here drives the order of events: a limiter whose slots the test hands out
(``ControlledLimiter``) and a fake server that holds replies until the test lets them go
(``FakePatchworks.hold``). Nothing sleeps, so nothing races.

The picture at the moment of the stop is always the same: item 0 has started and the
caller has its result, ``GRANTED`` items have been granted a slot and are on the wire (the
server processed them; their replies are held), and ``WAITING`` items wait for a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from patchworks_async import (
    BulkStart,
    ConfigurationError,
    PatchworksClient,
    RateLimits,
    StartResult,
    StartStatus,
)
from patchworks_async.testing import FakePatchworks, ReplyHold

from ..support.clients import client_for
from ..support.controlled_limiter import ControlledLimiter

GRANTED = 2
WAITING = 3
CONCURRENCY = 1 + GRANTED + WAITING
PAYLOADS = [f"item {i}" for i in range(20)]
FAST = RateLimits(requests=100_000, per=1.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakePatchworks]:
    async with FakePatchworks(requests_per_window=100_000) as server:
        yield server


def batch_tasks() -> list[asyncio.Task[object]]:
    """The tasks of bulk starts still alive: the engine's and its requests'."""
    names = {"send_start", "_Engine._run"}
    return [task for task in asyncio.all_tasks() if task.get_coro().__qualname__ in names]  # type: ignore[union-attr]


def journal_states(path: Path) -> Counter[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return Counter(state for (state,) in db.execute("SELECT state FROM items"))


class Scene:
    """A batch brought to the moment of the stop (see the module docstring)."""

    def __init__(self, pw: PatchworksClient, fake: FakePatchworks, limiter: ControlledLimiter):
        self.pw = pw
        self.fake = fake
        self.limiter = limiter
        self.hold: ReplyHold = fake.hold(route="start", when="after")
        self.seen: list[StartResult] = []
        self.first_seen = asyncio.Event()
        self.go_on = asyncio.Event()

    async def set_up(self) -> None:
        """Item 0 started and seen; GRANTED items on the wire; WAITING items waiting."""
        await self.limiter.until(waiting=CONCURRENCY)
        self.limiter.grant(1)
        await self.hold.arrived(1)
        self.hold.release(1)
        await self.first_seen.wait()
        await self.limiter.until(waiting=CONCURRENCY)  # a new item took item 0's place
        self.limiter.grant(GRANTED)
        await self.hold.arrived(1 + GRANTED)

    async def finish_drain(self) -> None:
        """Once the waiting items have given their slots back, let the held replies go."""
        await self.limiter.until(given_back=WAITING + 1)
        self.hold.release()

    def saw(self, result: StartResult) -> None:
        self.seen.append(result)
        self.first_seen.set()


def start(pw: PatchworksClient, journal: Path | None = None, **kwargs: object) -> BulkStart:
    return pw.flows.start_many(
        101,
        9001,
        PAYLOADS,
        concurrency=CONCURRENCY,
        journal=journal,
        **kwargs,  # type: ignore[arg-type]
    )


async def consume_then_wait(scene: Scene, results: BulkStart) -> None:
    """Read results; after the first, wait in the loop body until told to go on."""
    async with results:
        async for result in results:
            scene.saw(result)
            await scene.go_on.wait()
            break


async def consume_then_raise(scene: Scene, results: BulkStart) -> None:
    async with results:
        async for result in results:
            scene.saw(result)
            await scene.go_on.wait()
            raise LookupError("the caller's own bug")


async def consume_all(scene: Scene, results: BulkStart) -> None:
    async for result in results:
        scene.saw(result)


Stop = Callable[[Scene, BulkStart, "asyncio.Task[None]"], Awaitable[None]]


async def by_break(scene: Scene, results: BulkStart, consumer: asyncio.Task[None]) -> None:
    scene.go_on.set()
    await asyncio.gather(scene.finish_drain(), consumer)


async def by_exception(scene: Scene, results: BulkStart, consumer: asyncio.Task[None]) -> None:
    scene.go_on.set()
    await scene.finish_drain()
    with pytest.raises(LookupError):
        await consumer


async def by_cancelling_the_loop_body(
    scene: Scene, results: BulkStart, consumer: asyncio.Task[None]
) -> None:
    consumer.cancel()
    await scene.finish_drain()
    with pytest.raises(asyncio.CancelledError):
        await consumer


async def by_client_aclose(scene: Scene, results: BulkStart, consumer: asyncio.Task[None]) -> None:
    await asyncio.gather(scene.pw.aclose(), scene.finish_drain())
    await consumer  # it read the last results, then the iteration ended


STOPS: dict[str, tuple[Callable[[Scene, BulkStart], Awaitable[None]], Stop]] = {
    "break": (consume_then_wait, by_break),
    "exception": (consume_then_raise, by_exception),
    "cancel-in-loop-body": (consume_then_wait, by_cancelling_the_loop_body),
    "client-aclose": (consume_all, by_client_aclose),
}


class TestStopMeansStop:
    @pytest.mark.parametrize("how", list(STOPS))
    async def test_nothing_is_sent_whose_slot_was_not_granted_at_the_stop(
        self, fake: FakePatchworks, tmp_path: Path, how: str
    ) -> None:
        """The waiting items give their slots back; the granted ones finish and are journaled."""
        consume, stop = STOPS[how]
        limiter = ControlledLimiter()
        journal = tmp_path / "run.sqlite"
        async with client_for(fake, limiter=limiter) as pw:
            scene = Scene(pw, fake, limiter)
            results = start(pw, journal)
            consumer = asyncio.create_task(consume(scene, results))
            await scene.set_up()
            await stop(scene, results, consumer)
            await pw.aclose()
            assert batch_tasks() == []
        assert limiter.used == 1 + GRANTED
        assert limiter.given_back == WAITING + 1
        assert len(fake.starts) == 1 + GRANTED
        assert journal_states(journal) == {"started": 1 + GRANTED, "not_sent": WAITING + 1}

    async def test_stop_keeps_reporting_the_last_results(self, fake: FakePatchworks) -> None:
        """``stop()``: the caller goes on reading: the drained starts, then ``not_sent``."""
        limiter = ControlledLimiter()
        async with client_for(fake, limiter=limiter) as pw:
            scene = Scene(pw, fake, limiter)
            results = start(pw)
            consumer = asyncio.create_task(consume_all(scene, results))
            await scene.set_up()
            results.stop()
            await scene.finish_drain()
            await consumer
        statuses = Counter(result.status for result in scene.seen)
        assert statuses == {StartStatus.STARTED: 1 + GRANTED, StartStatus.NOT_SENT: WAITING + 1}
        assert sorted(r.index for r in scene.seen) == list(range(CONCURRENCY + 1))
        assert len(fake.starts) == 1 + GRANTED

    async def test_a_cancelled_consumer_waiting_for_a_result_stops_the_batch(
        self, fake: FakePatchworks, tmp_path: Path
    ) -> None:
        limiter = ControlledLimiter()
        journal = tmp_path / "run.sqlite"
        async with client_for(fake, limiter=limiter) as pw:
            scene = Scene(pw, fake, limiter)
            consumer = asyncio.create_task(consume_all(scene, start(pw, journal)))
            await scene.set_up()
            consumer.cancel()  # it waits inside the iterator for the next result
            await scene.finish_drain()
            with pytest.raises(asyncio.CancelledError):
                await consumer
        # Leaving ``async with`` closed the client, which waited for the batch to settle.
        assert limiter.used == 1 + GRANTED
        assert len(fake.starts) == 1 + GRANTED
        assert journal_states(journal) == {"started": 1 + GRANTED, "not_sent": WAITING + 1}

    async def test_a_break_without_async_with_stops_the_batch(
        self, fake: FakePatchworks, tmp_path: Path
    ) -> None:
        """The dropped iterator stops the batch; closing the client drains it."""
        limiter = ControlledLimiter()
        journal = tmp_path / "run.sqlite"
        async with client_for(fake, limiter=limiter) as pw:
            scene = Scene(pw, fake, limiter)

            async def consume() -> None:
                async for result in start(pw, journal):
                    scene.saw(result)
                    await scene.go_on.wait()
                    break

            consumer = asyncio.create_task(consume())
            await scene.set_up()
            scene.go_on.set()
            await consumer
            await scene.finish_drain()
        assert limiter.used == 1 + GRANTED
        assert len(fake.starts) == 1 + GRANTED
        assert journal_states(journal) == {"started": 1 + GRANTED, "not_sent": WAITING + 1}

    async def test_replies_late_past_drain_timeout_are_unknown_and_did_reach_the_server(
        self, fake: FakePatchworks, tmp_path: Path
    ) -> None:
        """``unknown`` means exactly: the request may have reached the server."""
        limiter = ControlledLimiter()
        journal = tmp_path / "run.sqlite"
        async with client_for(fake, limiter=limiter) as pw:
            scene = Scene(pw, fake, limiter)
            results = start(pw, journal, drain_timeout=0)
            consumer = asyncio.create_task(consume_all(scene, results))
            await scene.set_up()
            await results.aclose()
            await consumer
            scene.hold.release()
        assert limiter.used == 1 + GRANTED
        assert len(fake.starts) == 1 + GRANTED  # the unknown ones did reach it
        assert journal_states(journal) == {
            "started": 1,
            "unknown": GRANTED,
            "not_sent": WAITING + 1,
        }

    async def test_a_rerun_sends_what_was_never_sent_and_nothing_twice(
        self, fake: FakePatchworks, tmp_path: Path
    ) -> None:
        limiter = ControlledLimiter()
        journal = tmp_path / "run.sqlite"
        async with client_for(fake, limiter=limiter) as pw:
            scene = Scene(pw, fake, limiter)
            results = start(pw, journal)
            consumer = asyncio.create_task(consume_then_wait(scene, results))
            await scene.set_up()
            await by_break(scene, results, consumer)
        async with client_for(fake, rate_limits=FAST) as pw:
            again = [result async for result in start(pw, journal)]
        statuses = Counter(result.status for result in again)
        assert statuses == {
            StartStatus.SKIPPED: 1 + GRANTED,
            StartStatus.STARTED: len(PAYLOADS) - 1 - GRANTED,
        }
        assert Counter(run.payload for run in fake.starts) == Counter(PAYLOADS)


class TestDurableOutcomes:
    async def test_every_result_is_in_the_journal_before_the_caller_sees_it(
        self, fake: FakePatchworks, tmp_path: Path
    ) -> None:
        journal = tmp_path / "run.sqlite"
        async with client_for(fake, rate_limits=FAST) as pw, start(pw, journal) as results:
            async for result in results:
                with contextlib.closing(sqlite3.connect(journal)) as db:
                    row = db.execute(
                        "SELECT state, run_id FROM items WHERE idx = ?", (result.index,)
                    ).fetchone()
                assert row == ("started", str(result.run_id))


class TestRefusedBeforeSending:
    @pytest.mark.parametrize(
        "payloads",
        ["abc", b"abc", bytearray(b"abc"), {"order": 1}, None, 42],
        ids=["str", "bytes", "bytearray", "mapping", "None", "int"],
    )
    async def test_payloads_that_are_not_a_collection_of_payloads(
        self, fake: FakePatchworks, payloads: object
    ) -> None:
        async with client_for(fake) as pw:
            with pytest.raises(ConfigurationError, match="payloads must be"):
                pw.flows.start_many(101, 9001, payloads)  # type: ignore[arg-type]
        assert fake.received == []

    @pytest.mark.parametrize(
        ("argument", "value"),
        [
            ("concurrency", 0),
            ("drain_timeout", -1),
            ("drain_timeout", float("nan")),
            ("resend_unknown", "yes"),
            ("manual", "no"),
            ("journal", 123),
        ],
    )
    async def test_unusable_arguments(
        self, fake: FakePatchworks, argument: str, value: object
    ) -> None:
        async with client_for(fake) as pw:
            with pytest.raises(ConfigurationError, match=argument):
                pw.flows.start_many(101, 9001, ["a"], **{argument: value})  # type: ignore[arg-type]
        assert fake.received == []
