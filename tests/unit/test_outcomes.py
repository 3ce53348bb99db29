"""``classify()``: what an item's request proves about the server, as a table. Pure."""

from __future__ import annotations

import pytest

from patchworks_async import (
    BatchStoppedError,
    NotFoundError,
    OutcomeUnknownError,
    StartStatus,
    TransportError,
)
from patchworks_async._journal import ItemState
from patchworks_async._outcomes import classify, earlier_result

GONE = NotFoundError("no such flow", status=404)
UNKNOWN = OutcomeUnknownError("dropped after sending", method="POST", url="")
NEVER = TransportError("refused")

# (how the request ended, doubt) -> status
ROWS = [
    ({"run_id": 5}, False, StartStatus.STARTED),
    ({"error": GONE}, False, StartStatus.FAILED),
    ({"error": NEVER}, False, StartStatus.FAILED),
    ({"error": UNKNOWN}, False, StartStatus.UNKNOWN),
    ({"error": GONE}, True, StartStatus.UNKNOWN),  # an earlier, ambiguous send may have run
    ({"stopped": True}, False, StartStatus.NOT_SENT),
    ({"stopped": True}, True, StartStatus.UNKNOWN),
    ({"stopped": True, "may_have_reached_server": True}, False, StartStatus.UNKNOWN),
]


@pytest.mark.parametrize(("ended", "doubt", "status"), ROWS)
def test_the_outcome_table(ended: dict[str, object], doubt: bool, status: StartStatus) -> None:
    result = classify(3, doubt=doubt, **ended)  # type: ignore[arg-type]
    assert (result.index, result.status) == (3, status)
    if status is StartStatus.NOT_SENT:
        assert isinstance(result.error, BatchStoppedError)


def test_a_bug_is_raised_not_reported() -> None:
    with pytest.raises(KeyError):
        classify(0, error=KeyError("bug"))


@pytest.mark.parametrize(
    ("state", "resend_unknown", "status"),
    [
        (ItemState.STARTED, False, StartStatus.SKIPPED),
        (ItemState.FAILED, False, None),
        (ItemState.NOT_SENT, False, None),
        (ItemState.SENDING, False, StartStatus.UNKNOWN),
        (ItemState.UNKNOWN, False, StartStatus.UNKNOWN),
        (ItemState.SENDING, True, None),
        (ItemState.UNKNOWN, True, None),
    ],
)
def test_what_a_journal_of_an_earlier_run_means(
    state: ItemState, resend_unknown: bool, status: StartStatus | None
) -> None:
    """``None``: send it. A started item is never sent again; a doubtful one only on request."""
    result = earlier_result(2, "d", (state, "d", 9), resend_unknown=resend_unknown)
    assert (None if result is None else result.status) == status
