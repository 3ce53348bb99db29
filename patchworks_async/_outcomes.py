"""What a bulk start reports for each item, and how an item's fate is read. Pure.

Every item of ``start_many`` gets one :class:`StartResult`, whose status says what the
server did with it. :func:`classify` turns what became of an item's request into that
status, and :func:`earlier_result` reads what a journal of an earlier run says of an item.
"""

from __future__ import annotations

import enum
from typing import Final

from attrs import frozen

from ._errors import (
    BatchStoppedError,
    JournalMismatchError,
    OutcomeUnknownError,
    PatchworksError,
)
from ._journal import ItemState, JournalEntry

__all__ = ["JOURNAL_STATE", "StartResult", "StartStatus", "classify", "earlier_result"]


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


JOURNAL_STATE: Final = {
    StartStatus.STARTED: ItemState.STARTED,
    StartStatus.FAILED: ItemState.FAILED,
    StartStatus.UNKNOWN: ItemState.UNKNOWN,
    StartStatus.NOT_SENT: ItemState.NOT_SENT,
}
"""How each outcome of a request is written in the journal."""


def classify(
    index: int,
    *,
    run_id: int | str | None = None,
    error: BaseException | None = None,
    stopped: bool = False,
    may_have_reached_server: bool = False,
    doubt: bool = False,
) -> StartResult:
    """What an item's request proves about the server.

    Args:
        index: The item.
        run_id: The run id of a start that succeeded (``error`` is ``None``).
        error: What the request raised, if it did.
        stopped: The batch stopped the request (cancelled, or refused it a new wait).
        may_have_reached_server: Its bytes had begun to leave when it was stopped.
        doubt: An earlier send of it may have been processed (a resend after an
            ambiguous failure, which ``retry_ambiguous_starts`` allows).

    Raises:
        Exception: ``error`` itself when it is not a :class:`PatchworksError`: a bug, not
            an outcome.
    """
    if stopped:
        if may_have_reached_server or doubt:
            unknown = OutcomeUnknownError(
                f"item {index} was on the wire when the batch stopped and did not finish "
                "within drain_timeout; it may have started",
                method="POST",
                url="",
            )
            return StartResult(index, StartStatus.UNKNOWN, error=unknown)
        not_sent = BatchStoppedError(f"item {index} was not sent: the batch was stopped")
        return StartResult(index, StartStatus.NOT_SENT, error=not_sent)
    if error is None:
        return StartResult(index, StartStatus.STARTED, run_id)
    if isinstance(error, OutcomeUnknownError):
        return StartResult(index, StartStatus.UNKNOWN, error=error)
    if isinstance(error, PatchworksError):
        # Everything else the client raises for a start proves this send was not processed:
        # a 4xx, a 429 waited out too often, a connection that was never made. An earlier,
        # ambiguous send of the same item may still have been.
        status = StartStatus.UNKNOWN if doubt else StartStatus.FAILED
        return StartResult(index, status, error=error)
    raise error


def earlier_result(
    index: int, digest: str, entry: JournalEntry, *, resend_unknown: bool
) -> StartResult | None:
    """The result for an item an earlier run settled, or ``None`` when it must be sent.

    Raises:
        JournalMismatchError: the item is not the payload the journal recorded for it.
    """
    state, recorded, run_id = entry
    if recorded != digest:
        raise JournalMismatchError(
            f"item {index} is not the payload the journal recorded for it; the input "
            "changed since the earlier run: use a new journal file for new input"
        )
    if state is ItemState.STARTED:
        return StartResult(index, StartStatus.SKIPPED, run_id)
    if state in (ItemState.FAILED, ItemState.NOT_SENT) or resend_unknown:
        return None  # surely not started (or the caller accepts the risk): send it
    error = OutcomeUnknownError(
        f"item {index} may have reached the server when an earlier run stopped, so it "
        "is not resent (pass resend_unknown=True to resend it)",
        method="POST",
        url="",
    )
    return StartResult(index, StartStatus.UNKNOWN, error=error)
