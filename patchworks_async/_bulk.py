"""``flows.start_many``: many starts, streamed, each with exactly one honest outcome.

Payloads are read lazily from any iterable or async iterable, at most ``concurrency``
requests are in flight, and every item yields one :class:`StartResult` whose status says
what the server did: ``started`` (exactly once), ``failed`` (surely not started),
``unknown`` (it may have started) or ``skipped`` (a journal says it already started).

When the caller stops early (``break``, an exception, cancellation), nothing new is sent and
the requests already on the wire get ``drain_timeout`` seconds to finish, so that their true
outcome is known and journaled rather than left in doubt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any, Final

from attrs import frozen

from ._errors import (
    ConfigurationError,
    OutcomeUnknownError,
    PatchworksError,
    PayloadError,
    UnexpectedResponseError,
)
from ._journal import ItemState, Journal, JournalMismatchError, body_digest
from ._ratelimit import RequestKind

if TYPE_CHECKING:
    from .resources.flows import Flows

__all__ = ["StartResult", "StartStatus", "start_many"]


class StartStatus(enum.StrEnum):
    """What the server did with one item of a bulk start."""

    STARTED = "started"
    """Started, exactly once."""
    FAILED = "failed"
    """Surely not started: refused by the client (bad payload) or by the server (4xx)."""
    UNKNOWN = "unknown"
    """May have started: the request left but no trustworthy answer came back."""
    SKIPPED = "skipped"
    """Not sent: the journal records that an earlier run started it."""


@frozen
class StartResult:
    """The outcome of one item of :meth:`Flows.start_many`.

    Attributes:
        index: The item's position in ``payloads``, from 0.
        status: What the server did.
        run_id: The flow run id, when it started (now or, for ``skipped``, earlier).
        error: Why it failed or is unknown; ``None`` otherwise.
    """

    index: int
    status: StartStatus
    run_id: int | str | None = None
    error: PatchworksError | None = None


class _End(enum.Enum):
    END = "end"


_END: Final = _End.END
"""What :meth:`_Source.poll` returns once the payloads are exhausted."""


class _Source:
    """Numbers the payloads and reads them one at a time, whatever kind of iterable.

    A sync iterable is read directly. An async one is read through a task, so that
    ``start_many`` can wait for the next payload and for requests in flight at once: a
    source that stalls (a pipe, a queue) never holds back work already read or results
    already in.
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
            await close()


def _outcome(index: int, task: asyncio.Task[Any]) -> StartResult:
    """Classify a finished start by what it proves about the server."""
    if task.cancelled():
        error = OutcomeUnknownError(
            "the start was abandoned while in flight", method="POST", url=""
        )
        return StartResult(index, StartStatus.UNKNOWN, error=error)
    exc = task.exception()
    if exc is None:
        return StartResult(index, StartStatus.STARTED, task.result().id)
    if isinstance(exc, UnexpectedResponseError):
        # A 2xx whose body we could not read: the server did start it.
        return StartResult(index, StartStatus.STARTED, error=exc)
    if isinstance(exc, OutcomeUnknownError):
        return StartResult(index, StartStatus.UNKNOWN, error=exc)
    if isinstance(exc, PatchworksError):
        # Everything else the client raises for a start proves it was not processed:
        # a 4xx, a 429 waited out too often, a connection that was never made.
        return StartResult(index, StartStatus.FAILED, error=exc)
    raise exc  # a bug, not an outcome: let it surface


async def start_many(
    flows: Flows,
    flow_id: int | str,
    version_id: int | str | None,
    payloads: Iterable[object] | AsyncIterable[object],
    *,
    concurrency: int = 16,
    manual: bool = False,
    journal: str | os.PathLike[str] | None = None,
    flow_variables: Mapping[str, Any] | list[Any] | None = None,
    virtual_environment_id: int | str | None = None,
    resend_unknown: bool = False,
    drain_timeout: float = 5.0,
) -> AsyncGenerator[StartResult, None]:
    """The engine behind :meth:`Flows.start_many`; see there for the arguments."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be an int >= 1, not {concurrency!r}")
    route, kind = ("manual", RequestKind.MANUAL) if manual else ("start", RequestKind.START)
    client = flows._client
    path = flows._start_path(flow_id, version_id, route)
    book = (
        await Journal.open(
            journal,
            {
                "start_url": client.start_url,
                "flow_id": str(flow_id),
                "version_id": str(version_id),
                "route": route,
            },
        )
        if journal is not None
        else None
    )
    source = _Source(payloads)
    in_flight: dict[asyncio.Task[Any], int] = {}
    ready: collections.deque[StartResult] = collections.deque()
    exhausted = False
    try:
        while True:
            batch: list[tuple[int, bytes, str]] = []
            while (
                not exhausted
                and len(in_flight) + len(batch) < concurrency
                and len(ready) < concurrency
            ):
                item = source.poll()
                if item is None:  # the source has nothing yet
                    if batch or ready or in_flight:
                        break  # send and report what is at hand meanwhile
                    assert source.pending is not None
                    await asyncio.wait({source.pending})
                    continue
                if item is _END:
                    exhausted = True
                    break
                index, payload = item
                try:
                    body = flows._encode(
                        flow_id, version_id, payload, flow_variables, virtual_environment_id
                    )
                except PayloadError as exc:
                    ready.append(StartResult(index, StartStatus.FAILED, error=exc))
                    continue
                digest = body_digest(body) if book is not None else ""
                settled = _settled_earlier(book, index, digest, resend_unknown)
                if settled is not None:
                    ready.append(settled)
                    continue
                batch.append((index, body, digest))
            if batch:
                if book is not None:
                    try:
                        await book.sending((index, digest) for index, _, digest in batch)
                    except asyncio.CancelledError:
                        # Interrupted while writing them down: none of them was sent.
                        for index, _, _ in batch:
                            book.outcome(
                                index, ItemState.FAILED, None, "interrupted before sending"
                            )
                        raise
                for index, body, _ in batch:
                    task = asyncio.create_task(flows._post_start(path, body, kind))
                    in_flight[task] = index
            while ready:
                yield ready.popleft()
            waiting: set[asyncio.Future[Any]] = set(in_flight)
            if source.pending is not None and len(in_flight) < concurrency:
                waiting.add(source.pending)  # the next payload may come first
            if not waiting:
                if exhausted:
                    return
                continue
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for finished in [task for task in in_flight if task in done]:
                result = _outcome(in_flight.pop(finished), finished)
                _journal_outcome(book, result)
                yield result
    finally:
        try:
            await _drain(in_flight, book, drain_timeout)
        finally:
            if book is not None:
                await book.close()
            await source.aclose()


def _settled_earlier(
    book: Journal | None, index: int, digest: str, resend_unknown: bool
) -> StartResult | None:
    """The result for an item an earlier run settled, or ``None`` when it must be sent."""
    entry = book.entry(index) if book is not None else None
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
    if state is ItemState.FAILED or resend_unknown:
        return None  # surely not started (or the caller accepts the risk): send it
    error = OutcomeUnknownError(
        f"item {index} was in flight when an earlier run stopped; it may have started, so "
        "it is not resent (pass resend_unknown=True to resend it)",
        method="POST",
        url="",
    )
    return StartResult(index, StartStatus.UNKNOWN, error=error)


def _journal_outcome(book: Journal | None, result: StartResult) -> None:
    if book is None:
        return
    state = {
        StartStatus.STARTED: ItemState.STARTED,
        StartStatus.FAILED: ItemState.FAILED,
    }.get(result.status, ItemState.UNKNOWN)
    error = None if result.error is None else str(result.error)
    book.outcome(result.index, state, result.run_id, error)


async def _drain(
    in_flight: dict[asyncio.Task[Any], int], book: Journal | None, grace: float
) -> None:
    """Let the requests already sent finish (briefly) and journal what they proved."""
    if not in_flight:
        return
    try:
        await asyncio.wait(in_flight, timeout=grace)
    finally:
        for task in in_flight:
            task.cancel()  # no-op for the finished ones
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*in_flight, return_exceptions=True)
    for task, index in in_flight.items():
        _journal_outcome(book, _outcome(index, task))  # an abandoned one is unknown
