"""The switches that pick between the API's undocumented variants, shared by the resources.

Where the vendor's documentation leaves a detail open (the key of the run id in a start
reply, whether a write reply wraps its record in ``data``) or the real value depends on
load (how long a queued start waits, how long a run takes, how it ends), the fake lets a
test pick. Several resources read the same switch, so they share one ``Switches`` object by
reference: setting ``FakePatchworks.run_id_key`` changes start replies and retry replies
alike. The checks refuse a setting that would silently test nothing.
"""

from __future__ import annotations

import math
from typing import Any, Final

import attrs

__all__ = [
    "RUN_ID_KEYS",
    "RUN_STARTED",
    "Switches",
    "check_queue_delay",
    "check_run_duration",
    "check_run_id_key",
    "check_run_outcome",
    "start_reply",
    "write_body",
]

RUN_STARTED: Final = 1
"""The status of a run that has not finished yet."""

RUN_ID_KEYS: Final = (
    "flow_run_id",
    "run_id",
    "flowRunId",
    "id",
    "data.id",
    "data.flow_run_id",
    None,
)
"""Where a start reply may put the run id; ``data.`` keys nest it in a ``data`` object, and
None sends no id at all (``{"message": "Flow initialised."}``, as the webhook trigger does)."""

START_MESSAGE: Final = "Flow initialised."

_RUN_OUTCOMES: Final = range(2, 6)


def check_run_id_key(value: str | None) -> str | None:
    """Refuse a run id location the real API has not been seen to use.

    Raises:
        ValueError: If ``value`` is not one of ``RUN_ID_KEYS``.
    """
    if value not in RUN_ID_KEYS:
        raise ValueError(f"run_id_key must be one of {RUN_ID_KEYS}, got {value!r}")
    return value


def _finite_non_negative(name: str, value: float) -> float:
    """A duration in seconds: a finite number >= 0 (0 means "on the next read")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_queue_delay(value: float) -> float:
    """Refuse queue delays that are negative or not finite (0 picks a start on the next read).

    Raises:
        ValueError: If ``value`` is not a finite number >= 0.
    """
    return _finite_non_negative("queue_delay", value)


def check_run_duration(value: float) -> float:
    """Refuse run durations that are negative or not finite (0 finishes on the next read).

    Raises:
        ValueError: If ``value`` is not a finite number >= 0.
    """
    return _finite_non_negative("run_duration", value)


def check_run_outcome(value: int) -> int:
    """Refuse a final status that is not one of the finished codes 2 to 5.

    Raises:
        ValueError: If ``value`` is not an int from 2 to 5.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value not in _RUN_OUTCOMES:
        raise ValueError(f"run_outcome must be an int from 2 to 5, got {value!r}")
    return value


@attrs.define
class Switches:
    """The variant each undocumented or load-dependent behaviour takes; checked by the caller.

    Attributes:
        run_id_key: Where start and retry replies put the run id (one of ``RUN_ID_KEYS``).
        wrap_writes_in_data: Whether write replies (create, import, duplicate, version
            create and update) come as ``{"data": {...}}`` (True) or bare (False).
        queue_delay: Seconds a ``/start`` waits in the queue before it becomes a run.
        run_duration: Seconds a run stays STARTED before it finishes.
        run_outcome: The status a run finishes with (2 to 5).
    """

    run_id_key: str | None = "flow_run_id"
    wrap_writes_in_data: bool = True
    queue_delay: float = 0.5
    run_duration: float = 0.5
    run_outcome: int = 2


def start_reply(run_id: int, key: str | None) -> dict[str, Any]:
    """The body of a successful start (or retry), with the run id under ``key``."""
    reply: dict[str, Any] = {"message": START_MESSAGE}
    if key is None:
        return reply
    if key.startswith("data."):
        reply["data"] = {key.removeprefix("data."): run_id}
    else:
        reply[key] = run_id
    return reply


def write_body(record: dict[str, Any], wrap: bool) -> dict[str, Any]:
    """A write reply's body: the record in ``data``, or the record itself."""
    return {"data": record} if wrap else record
