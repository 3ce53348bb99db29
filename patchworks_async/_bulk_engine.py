"""The engine of a bulk start: one task that reads, sends, journals and reports.

See ``_bulk`` for what a bulk start promises. The engine keeps those promises:

* it reads payloads lazily and keeps at most ``concurrency`` items read ahead of the
  caller, in flight or waiting to be read as results;
* each item's request reports its progress through a :class:`_Flight` (the transport's
  ``SendObserver``): waiting for a slot, granted (its journal row is committed now, at the
  moment of truth), on the wire, surely unprocessed;
* every outcome is committed to the journal before the caller can see it;
* when the batch stops, the items waiting for a slot are cancelled at once (they give the
  slot back), the ones granted or on the wire get ``drain_timeout`` to finish, and what is
  known is journaled even if the engine's own task is cancelled meanwhile.

Running in a task of its own is what lets a batch finish cleanly when nobody iterates it
any more: after a ``break`` without ``aclose()``, when the client closes, when asyncio
tears the loop down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from attrs import frozen

from ._cancellation import run_to_completion
from ._errors import ConfigurationError, PayloadError
from ._journal import ItemState, Journal, body_digest
from ._outcomes import JOURNAL_STATE, StartResult, StartStatus, classify, earlier_result
from ._starts import FlowRunStarted, StartTarget, send_start

if TYPE_CHECKING:
    from ._api import Api

__all__ = ["Engine", "Settings", "check_settings"]


class _Stopped(Exception):
    """Raised into a request that was about to wait for a slot after the batch stopped."""


class _Phase(enum.Enum):
    WAITING = "waiting"
    """For its credential or a rate-limit slot (or a backoff): nothing of it has left."""
    GRANTED = "granted"
    """Its slot is granted; its journal row is being committed. Nothing has left yet."""
    ON_WIRE = "on_wire"
    """Its bytes are leaving or have left: the server may have it."""


class _Flight:
    """One item's request, as the transport reports its progress (a ``SendObserver``)."""

    __slots__ = ("digest", "doubt", "engine", "index", "phase", "task")

    def __init__(self, engine: Engine, index: int, digest: str) -> None:
        self.engine = engine
        self.index = index
        self.digest = digest
        self.phase = _Phase.WAITING
        self.doubt = False
        """An earlier send of this item may have been processed (an ambiguous failure that
        ``retry_ambiguous_starts`` resent)."""
        self.task: asyncio.Task[FlowRunStarted] | None = None

    def waiting(self) -> None:
        if self.phase is _Phase.ON_WIRE:
            self.doubt = True  # resent after an ambiguous failure
        self.phase = _Phase.WAITING
        if self.engine.stopping:
            raise _Stopped

    async def sending(self) -> None:
        if self.engine.stopping:
            raise _Stopped  # granted, but only after the stop: it does not leave
        self.phase = _Phase.GRANTED
        journal = self.engine.journal
        if journal is not None:
            journal.write(self.index, self.digest, ItemState.SENDING)
            await journal.commit()
        self.phase = _Phase.ON_WIRE

    def outcome(self) -> StartResult:
        """What the finished request proves about the server (see :func:`classify`)."""
        task = self.task
        assert task is not None
        assert task.done()
        error = None if task.cancelled() else task.exception()
        if task.cancelled() or isinstance(error, _Stopped):
            return classify(
                self.index,
                stopped=True,
                may_have_reached_server=self.phase is _Phase.ON_WIRE,
                doubt=self.doubt,
            )
        if error is not None:
            return classify(self.index, error=error, doubt=self.doubt)
        return classify(self.index, run_id=task.result().id)

    def not_processed(self) -> None:
        self.phase = _Phase.WAITING
        journal = self.engine.journal
        if journal is not None:  # rides with the next commit; "sending" stays safe meanwhile
            journal.write(self.index, self.digest, ItemState.NOT_SENT)
        if self.engine.stopping and self.task is not None:
            self.task.cancel()  # it would only wait for a slot or a backoff now


class _End(enum.Enum):
    END = "end"


_END: Final = _End.END


class _Source:
    """Numbers the payloads and reads them one at a time, whatever kind of iterable.

    A sync iterable is read directly. An async one is read through a task, so that the
    engine can wait for the next payload and for requests in flight at once: a source that
    stalls (a pipe, a queue) never holds back work already read or results already in.
    """

    def __init__(self, payloads: Iterable[object] | AsyncIterable[object]) -> None:
        self._index = 0
        self._sync: Iterator[object] | None = None
        self._async: AsyncIterator[object] | None = None
        if isinstance(payloads, AsyncIterable):
            self._async = aiter(payloads)
        else:
            self._sync = iter(payloads)
        self.pending: asyncio.Future[object] | None = None

    def poll(self) -> tuple[int, object] | _End | None:
        """The next ``(index, payload)`` if at hand, ``None`` if not yet, or ``_END``."""
        if self._sync is not None:
            payload = next(self._sync, _END)
        else:
            assert self._async is not None
            if self.pending is None:
                self.pending = asyncio.ensure_future(anext(self._async, _END))
            if not self.pending.done():
                return None
            future, self.pending = self.pending, None
            payload = future.result()
        if payload is _END:
            return _END
        self._index += 1
        return self._index - 1, payload

    async def aclose(self) -> None:
        """Stop reading: cancel a read in progress and close an async generator source."""
        if self.pending is not None:
            self.pending.cancel()
            with contextlib.suppress(BaseException):
                await self.pending
        close = getattr(self._async, "aclose", None)
        if close is not None:
            with contextlib.suppress(RuntimeError):  # already running or closed
                await close()


@frozen
class Settings:
    """What ``start_many`` was asked to do, checked."""

    target: StartTarget
    concurrency: int
    journal: str | None
    resend_unknown: bool
    drain_timeout: float


def check_settings(
    target: StartTarget,
    payloads: object,
    *,
    manual: object,
    concurrency: object,
    journal: object,
    resend_unknown: object,
    drain_timeout: object,
) -> Settings:
    """Refuse, before anything is read or sent, arguments ``start_many`` cannot work with."""
    if isinstance(payloads, str | bytes | bytearray | memoryview | Mapping):
        raise ConfigurationError(
            f"payloads must be an iterable of payloads, one per start, not a single "
            f"{type(payloads).__name__} (it would start one flow per character, byte or "
            "key): wrap one payload in a list"
        )
    if not isinstance(payloads, Iterable | AsyncIterable):
        raise ConfigurationError(
            f"payloads must be an iterable or async iterable, not {type(payloads).__name__}"
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be an int >= 1, not {concurrency!r}")
    if not isinstance(manual, bool):
        raise ConfigurationError(f"manual must be True or False, not {manual!r}")
    if journal is not None and not isinstance(journal, str | os.PathLike):
        raise ConfigurationError(f"journal must be a path or None, not {journal!r}")
    if not isinstance(resend_unknown, bool):
        raise ConfigurationError(f"resend_unknown must be True or False, not {resend_unknown!r}")
    if (
        isinstance(drain_timeout, bool)
        or not isinstance(drain_timeout, int | float)
        or not 0 <= drain_timeout < float("inf")
    ):
        raise ConfigurationError(
            f"drain_timeout must be a finite number of seconds >= 0, not {drain_timeout!r}"
        )
    return Settings(
        target=target,
        concurrency=concurrency,
        journal=None if journal is None else os.fspath(journal),
        resend_unknown=resend_unknown,
        drain_timeout=float(drain_timeout),
    )


class Engine:
    """Runs one bulk start in its own task; see the module docstring."""

    def __init__(
        self,
        api: Api,
        settings: Settings,
        payloads: Iterable[object] | AsyncIterable[object],
    ) -> None:
        self._api = api
        self._settings = settings
        self._payloads = payloads
        self.stopping = False
        self.journal: Journal | None = None
        self._flights: dict[asyncio.Task[FlowRunStarted], _Flight] = {}
        self._queue: collections.deque[StartResult | BaseException | _End] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake_engine: asyncio.Future[None] | None = None
        self._wake_consumer: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ consumer side

    async def next_result(self) -> StartResult:
        if self._task is None and not self.stopping:
            self._start()
        while not self._queue:
            if self._task is None:  # stopped before it ever started
                raise StopAsyncIteration
            assert self._loop is not None
            self._wake_consumer = self._loop.create_future()
            await self._wake_consumer
        item = self._queue[0]
        if isinstance(item, _End):
            raise StopAsyncIteration  # stays queued: every later call ends too
        self._queue.popleft()
        if self._room():
            self._wake(engine=True)  # there may be room to read and send again
        if isinstance(item, BaseException):
            self._queue.appendleft(_END)
            raise item
        return item

    def stop(self) -> None:
        """Stop sending: see :meth:`BulkStart.stop`. Synchronous, idempotent."""
        if self.stopping:
            return
        self.stopping = True
        # At once, not at the engine's next turn: a slot granted after this instant is
        # given back, never used.
        for task, flight in self._flights.items():
            if flight.phase is _Phase.WAITING:
                task.cancel()
        self._wake(engine=True)

    def stop_from_anywhere(self) -> None:
        """``stop`` for the garbage collector's finaliser, which may run on any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.stop)

    async def settled(self) -> None:
        """Return once the engine has finished (drained, journaled, journal closed)."""
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="patchworks-start-many")
        self._api.track(self)

    def _wake(self, *, engine: bool = False, consumer: bool = False) -> None:
        for wanted, waiter in ((engine, self._wake_engine), (consumer, self._wake_consumer)):
            if wanted and waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _room(self) -> bool:
        """Whether another item may be read: at most ``concurrency`` read ahead of the
        caller, in flight or waiting to be read as results (memory stays bounded)."""
        return len(self._queue) + len(self._flights) < self._settings.concurrency

    # ------------------------------------------------------------------ engine task

    async def _run(self) -> None:
        error: BaseException | None = None
        source = _Source(self._payloads)
        try:
            if self._settings.journal is not None:
                self.journal = await Journal.open(self._settings.journal, self._journal_target())
            await self._pump(source)
        except BaseException as exc:  # delivered to the consumer, or re-raised below
            error = exc
        try:
            await self._wind_down(source)
        except BaseException as exc:
            error = error or exc
        finally:
            self._api.untrack(self)
            if error is not None and not isinstance(error, asyncio.CancelledError):
                self._queue.append(error)
            self._queue.append(_END)
            self._wake(consumer=True)
        if isinstance(error, asyncio.CancelledError):
            raise error

    def _journal_target(self) -> dict[str, str]:
        target = self._settings.target
        return {
            "start_url": self._api.start_url,
            "flow_id": str(target.flow_id),
            "version_id": str(target.version_id),
            "route": target.route,
        }

    async def _pump(self, source: _Source) -> None:
        """Read, send and report until the payloads run out or the batch is stopped."""
        assert self._loop is not None
        exhausted = False
        finished: set[asyncio.Future[Any]] = set()
        while True:
            results, bug = self._settle(finished)
            await self._publish(results, durable=True)
            if bug is not None:
                raise bug
            settled_without_request: list[StartResult] = []
            while not exhausted and not self.stopping and self._room():
                item = source.poll()
                if item is None:
                    break  # an async source has nothing yet
                if item is _END:
                    exhausted = True
                    break
                result = self._launch(*item)
                if result is not None:
                    settled_without_request.append(result)
            await self._publish(settled_without_request, durable=False)
            if self.stopping or (exhausted and not self._flights):
                return
            waits: set[asyncio.Future[Any]] = set(self._flights)
            if source.pending is not None and self._room():
                waits.add(source.pending)
            self._wake_engine = self._loop.create_future()
            waits.add(self._wake_engine)
            finished, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)

    def _launch(self, index: int, payload: object) -> StartResult | None:
        """Start one item's request, or return its result when it is settled without one."""
        settings = self._settings
        try:
            body = settings.target.encode(
                payload,
                max_body_bytes=self._api.max_body_bytes,
            )
        except PayloadError as exc:
            return StartResult(index, StartStatus.FAILED, error=exc)
        digest = body_digest(body or b"") if self.journal is not None else ""
        entry = self.journal.entry(index) if self.journal is not None else None
        if entry is not None:
            earlier = earlier_result(
                index, digest, entry, resend_unknown=self._settings.resend_unknown
            )
            if earlier is not None:
                return earlier
        flight = _Flight(self, index, digest)
        task = asyncio.ensure_future(
            send_start(self._api, settings.target, body, observer=flight)
        )
        flight.task = task
        self._flights[task] = flight
        return None

    def _settle(
        self, finished: Iterable[asyncio.Future[Any]]
    ) -> tuple[list[StartResult], BaseException | None]:
        """The results of the finished requests, each journaled, and the first bug met."""
        results: list[StartResult] = []
        bug: BaseException | None = None
        for task in finished:
            flight = self._flights.pop(task, None)  # type: ignore[call-overload]
            if flight is None:
                continue  # the source's read, or a wake-up
            try:
                result = flight.outcome()
            except Exception as exc:  # a bug, not an outcome: surface it after the rest
                bug = bug or exc
                continue
            if self.journal is not None:
                self.journal.write(
                    result.index,
                    flight.digest,
                    JOURNAL_STATE[result.status],
                    result.run_id,
                    None if result.error is None else str(result.error),
                )
            results.append(result)
        return results, bug

    async def _publish(self, results: list[StartResult], *, durable: bool) -> None:
        """Hand results to the caller; with ``durable``, once their journal rows are
        committed, so that no outcome the caller has seen can be lost."""
        if not results:
            return
        if durable and self.journal is not None:
            await self.journal.commit()
        self._queue.extend(results)
        self._wake(consumer=True)

    async def _wind_down(self, source: _Source) -> None:
        """Stop: give up waiting items, drain the rest briefly, journal, close the journal.

        Runs to its end even when the engine task is cancelled (asyncio tearing the loop
        down): what is known is journaled, and the cancellation is raised afterwards.
        """
        self.stop()
        cancelled = False
        try:
            await source.aclose()
            if self._flights:
                await asyncio.wait(self._flights, timeout=self._settings.drain_timeout)
        except asyncio.CancelledError:
            cancelled = True
        flights = list(self._flights)
        for task in flights:
            task.cancel()  # a no-op for the finished ones
        if flights:
            try:
                await run_to_completion(asyncio.gather(*flights, return_exceptions=True))
            except asyncio.CancelledError:
                cancelled = True
        results, bug = self._settle(flights)
        if self.journal is not None:
            try:
                await self.journal.close()
            except asyncio.CancelledError:
                cancelled = True
        self._queue.extend(results)
        self._wake(consumer=True)
        if bug is not None:
            raise bug
        if cancelled:
            raise asyncio.CancelledError
