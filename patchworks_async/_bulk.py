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

The batch runs in a task of its own (``_bulk_engine``) that hands results to the caller
through a small bounded queue; :class:`BulkStart` is the caller's side of it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self

from ._bulk_engine import Engine, check_settings
from ._outcomes import StartResult
from ._starts import StartTarget

if TYPE_CHECKING:
    from ._api import Api

__all__ = ["BulkStart", "start_many"]


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

    def __init__(self, engine: Engine) -> None:
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


def start_many(
    api: Api,
    target: StartTarget,
    payloads: Iterable[object] | AsyncIterable[object],
    *,
    concurrency: object,
    manual: object,
    journal: object,
    resend_unknown: object,
    drain_timeout: object,
) -> BulkStart:
    """The engine behind :meth:`Flows.start_many`; see there for the arguments.

    Raises:
        ConfigurationError: an argument is unusable (before anything is read or sent).
    """
    settings = check_settings(
        target,
        payloads,
        concurrency=concurrency,
        manual=manual,
        journal=journal,
        resend_unknown=resend_unknown,
        drain_timeout=drain_timeout,
    )
    return BulkStart(Engine(api, settings, payloads))
