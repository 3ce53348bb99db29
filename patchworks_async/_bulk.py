"""``flows.start_many``: many starts, streamed, each with exactly one honest outcome.

Payloads are read lazily from any iterable or async iterable, at most ``concurrency``
requests are in flight, and every item yields one :class:`StartResult` whose status says
what the server did: ``started`` (exactly once), ``failed`` (surely not started),
``unknown`` (the request may have reached the server), ``skipped`` (a journal says it
already started) or, when the batch is stopped while the caller still reads, ``not_sent``.

Stop means stop. Whatever stops a batch (``stop()``, leaving the loop, an exception, a
cancelled consumer, ``client.aclose()``), nothing is sent whose rate-limit slot was not
granted at that moment: the items still waiting for a slot are cancelled and give their
slot back. The requests already granted or on the wire get ``drain_timeout`` seconds to
finish, so that their true outcome is known and journaled rather than left in doubt.

The batch runs in a task of its own (the *engine*) that hands results to the caller through
a small bounded queue. That is what lets a batch finish cleanly when nobody is iterating it
any more: after a ``break`` without ``aclose()``, when the client closes, when asyncio tears
the loop down. Each item's request reports its progress (waiting for a slot, leaving, surely
unprocessed) through a :class:`_Flight`, the transport's ``SendObserver``; the journal row is
written from there, at the moment of truth.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import os
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from attrs import frozen

from ._cancellation import run_to_completion
from ._errors import (
    BatchStoppedError,
    ConfigurationError,
    JournalMismatchError,
    OutcomeUnknownError,
    PatchworksError,
    PayloadError,
)
from ._journal import ItemState, Journal, body_digest
from ._models import FlowRunStarted
from ._starts import StartTarget, send_start

if TYPE_CHECKING:
    from ._api import Api

__all__ = ["BulkStart", "StartResult", "StartStatus", "check_settings", "start_many"]


class StartStatus(enum.StrEnum):
    """What the server did with one item of a bulk start."""

    STARTED = "started"
    """Started, exactly once."""
    FAILED = "failed"
    """Surely not started: refused by the client (bad payload) or by the server (4xx)."""
    UNKNOWN = "unknown"
    """May have started: the request may have reached the server, and no trustworthy
    answer came back."""
    SKIPPED = "skipped"
    """Not sent: the journal records that an earlier run started it."""
    NOT_SENT = "not_sent"
    """Not sent: the batch was stopped before this item's request left. Reported only to a
    caller still reading after :meth:`BulkStart.stop` (or ``client.aclose()``); a journal
    records it, and a re-run sends it."""


@frozen
class StartResult:
    """The outcome of one item of :meth:`Flows.start_many`.

    Attributes:
        index: The item's position in ``payloads``, from 0.
        status: What the server did.
        run_id: The flow run id, when it started (now or, for ``skipped``, earlier) and the
            reply named one.
        error: Why it failed, is unknown or was not sent; ``None`` otherwise.
    """

    index: int
    status: StartStatus
    run_id: int | str | None = None
    error: PatchworksError | None = None


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

    def __init__(self, engine: _Engine, index: int, digest: str) -> None:
        self.engine = engine
        self.index = index
        self.digest = digest
        self.phase = _Phase.WAITING
        self.doubt = False
        """An earlier send of this item may have been processed (an ambiguous failure that
        ``retry_ambiguous_starts`` resent)."""
        self.task: asyncio.Task[FlowRunStarted] | None = None

    @property
    def may_have_reached_server(self) -> bool:
        return self.doubt or self.phase is _Phase.ON_WIRE

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
class _Settings:
    """What ``start_many`` was asked to do, checked."""

    target: StartTarget
    concurrency: int
    journal: str | None
    flow_variables: Mapping[str, Any] | list[Any] | None
    virtual_environment_id: int | str | None
    resend_unknown: bool
    drain_timeout: float


def check_settings(
    target: StartTarget,
    payloads: object,
    *,
    manual: object,
    concurrency: object,
    journal: object,
    flow_variables: Mapping[str, Any] | list[Any] | None,
    virtual_environment_id: int | str | None,
    resend_unknown: object,
    drain_timeout: object,
) -> _Settings:
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
    return _Settings(
        target=target,
        concurrency=concurrency,
        journal=None if journal is None else os.fspath(journal),
        flow_variables=flow_variables,
        virtual_environment_id=virtual_environment_id,
        resend_unknown=resend_unknown,
        drain_timeout=float(drain_timeout),
    )


class BulkStart:
    """A bulk start in progress, as ``flows.start_many`` returns it.

    An async iterator of :class:`StartResult`, one per item, in completion order. Nothing
    happens until it is first iterated. Use it as ``async with`` (or call :meth:`aclose`)
    so that leaving the loop early drains the requests in flight at once::

        async with pw.flows.start_many(101, 9001, payloads) as results:
            async for result in results:
                ...

    A plain ``break`` without ``async with`` stops the batch too (when the iterator is
    dropped), and ``client.aclose()`` drains every batch still running on the client.
    """

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self._finalizer = weakref.finalize(self, engine.stop_from_anywhere)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StartResult:
        try:
            return await self._engine.next_result()
        except asyncio.CancelledError:
            self._engine.stop()  # the consumer was cancelled: stop sending now
            raise

    def stop(self) -> None:
        """Stop the batch, and keep reading its last results.

        Nothing new is sent; items waiting for a rate-limit slot are reported ``not_sent``;
        the requests in flight get ``drain_timeout`` seconds to finish and are reported as
        they end. Then the iteration ends. Safe to call from a signal handler set with
        ``loop.add_signal_handler``, and more than once.
        """
        self._engine.stop()

    async def aclose(self) -> None:
        """Stop the batch and wait until it has settled: in-flight requests drained, every
        known outcome journaled, the journal closed. Results not read yet are dropped."""
        self._engine.stop()
        await self._engine.settled()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Engine:
    """Runs one bulk start in its own task; see the module docstring."""

    def __init__(
        self,
        api: Api,
        settings: _Settings,
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
                flow_variables=settings.flow_variables,
                virtual_environment_id=settings.virtual_environment_id,
            )
        except PayloadError as exc:
            return StartResult(index, StartStatus.FAILED, error=exc)
        digest = body_digest(body) if self.journal is not None else ""
        earlier = self._settled_earlier(index, digest)
        if earlier is not None:
            return earlier
        flight = _Flight(self, index, digest)
        task = asyncio.ensure_future(
            send_start(self._api, settings.target, body, observer=flight)
        )
        flight.task = task
        self._flights[task] = flight
        return None

    def _settled_earlier(self, index: int, digest: str) -> StartResult | None:
        """The result for an item an earlier run settled, or ``None`` when it must be sent."""
        entry = self.journal.entry(index) if self.journal is not None else None
        if entry is None:
            return None
        state, recorded, run_id = entry
        if recorded != digest:
            raise JournalMismatchError(
                f"item {index} is not the payload the journal recorded for it; the input "
                "changed since the earlier run: use a new journal file for new input"
            )
        if state is ItemState.STARTED:
            return StartResult(index, StartStatus.SKIPPED, run_id)
        if state in (ItemState.FAILED, ItemState.NOT_SENT) or self._settings.resend_unknown:
            return None  # surely not started (or the caller accepts the risk): send it
        error = OutcomeUnknownError(
            f"item {index} may have reached the server when an earlier run stopped, so it "
            "is not resent (pass resend_unknown=True to resend it)",
            method="POST",
            url="",
        )
        return StartResult(index, StartStatus.UNKNOWN, error=error)

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
                result = _outcome(flight, task)
            except Exception as exc:  # a bug, not an outcome: surface it after the rest
                bug = bug or exc
                continue
            if self.journal is not None:
                self.journal.write(
                    result.index,
                    flight.digest,
                    _JOURNAL_STATE[result.status],
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


_JOURNAL_STATE: Final = {
    StartStatus.STARTED: ItemState.STARTED,
    StartStatus.FAILED: ItemState.FAILED,
    StartStatus.UNKNOWN: ItemState.UNKNOWN,
    StartStatus.NOT_SENT: ItemState.NOT_SENT,
}


def _outcome(flight: _Flight, task: asyncio.Future[Any]) -> StartResult:
    """Classify a finished request by what it proves about the server."""
    index = flight.index
    stopped = task.cancelled() or isinstance(task.exception(), _Stopped)
    if stopped:
        if flight.may_have_reached_server:
            error = OutcomeUnknownError(
                f"item {index} was on the wire when the batch stopped and did not finish "
                "within drain_timeout; it may have started",
                method="POST",
                url="",
            )
            return StartResult(index, StartStatus.UNKNOWN, error=error)
        stopped_error = BatchStoppedError(f"item {index} was not sent: the batch was stopped")
        return StartResult(index, StartStatus.NOT_SENT, error=stopped_error)
    exc = task.exception()
    if exc is None:
        started: FlowRunStarted = task.result()
        return StartResult(index, StartStatus.STARTED, started.id)
    if isinstance(exc, OutcomeUnknownError):
        return StartResult(index, StartStatus.UNKNOWN, error=exc)
    if isinstance(exc, PatchworksError):
        # Everything else the client raises for a start proves this send was not processed:
        # a 4xx, a 429 waited out too often, a connection that was never made. An earlier,
        # ambiguous send of the same item may still have been.
        status = StartStatus.UNKNOWN if flight.doubt else StartStatus.FAILED
        return StartResult(index, status, error=exc)
    raise exc


def start_many(
    api: Api,
    settings: _Settings,
    payloads: Iterable[object] | AsyncIterable[object],
) -> BulkStart:
    """The engine behind :meth:`Flows.start_many`; see there for the arguments."""
    return BulkStart(_Engine(api, settings, payloads))
