"""The API's resources as attrs classes, built by one cattrs converter.

Fields are named as the wire names them. Replies carry more than the models keep: unknown
fields are ignored and optional ones default to ``None``, so a new server field never breaks
a client. Timestamps arrive as ISO 8601 strings or Unix milliseconds; both become aware
``datetime`` objects.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
from attrs import field, frozen

from ._errors import UnexpectedResponseError

__all__ = [
    "CrossReferenceLookup",
    "Flow",
    "FlowRun",
    "FlowRunStarted",
    "FlowRunStatus",
    "FlowVersion",
    "LookupValue",
    "converter",
    "structure",
]

T = TypeVar("T")


@frozen
class FlowVersion:
    """One version of a process flow."""

    id: int
    flow_id: int | None = None
    version: int | None = None
    name: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@frozen
class Flow:
    """A process flow. Relations are ``None`` unless asked for with ``include=``."""

    id: int
    name: str
    description: str | None = None
    enabled_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    deployed_version_id: int | None = None
    versions: tuple[FlowVersion, ...] | None = None
    latest_version: FlowVersion | None = None
    deployed_version: FlowVersion | None = None


class FlowRunStatus(enum.IntEnum):
    """A flow run's status code."""

    STARTED = 1
    SUCCESS = 2
    FAILURE = 3
    STOPPED = 4
    PARTIAL_SUCCESS = 5


@frozen
class FlowRun:
    """One run of a process flow.

    ``status`` is a :class:`FlowRunStatus`, or the raw ``int`` when the server sends a code
    this library does not know yet: a new code never breaks a client.
    """

    id: int
    status: FlowRunStatus | int
    flow_id: int | None = None
    flow_version_id: int | None = None
    trigger: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether the run has left STARTED (an unknown code counts as finished)."""
        return self.status != FlowRunStatus.STARTED


@frozen
class CrossReferenceLookup:
    """A cross-reference lookup table (created with no rows)."""

    id: int
    name: str
    description: str | None = None
    default_value: str | None = None
    cross_reference_lookup_template_id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@frozen
class LookupValue:
    """One row of a cross-reference lookup: a left value and the right value it maps to."""

    id: int
    left_value: str
    right_value: str
    cross_reference_lookup_id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@frozen
class FlowRunStarted:
    """The reply to a start or manual initialise.

    Attributes:
        id: The flow run id, or ``None`` when the reply held none where one is looked for
            (``flow_run_id``, ``run_id``, ``flowRunId``, ``id``, and the same inside
            ``data``). A start with no id in its reply still started.
        message: The server's message ("flow initialised").
        raw: The whole decoded reply, since the id's key is not documented.
    """

    id: int | str | None
    message: str | None
    raw: Any = field(repr=False)

    @classmethod
    def from_reply(cls, reply: Any) -> FlowRunStarted:
        """Read a start reply (decoded JSON); the run id's key is undocumented, so several
        are tried, and a reply without one (or that is not an object) has ``id=None``."""
        if not isinstance(reply, Mapping):
            return cls(id=None, message=None, raw=reply)
        message = reply.get("message")
        return cls(
            id=_find_run_id(reply),
            message=message if isinstance(message, str) else None,
            raw=reply,
        )


_RUN_ID_KEYS = ("flow_run_id", "run_id", "flowRunId", "id")


def _find_run_id(reply: Mapping[str, Any]) -> int | str | None:
    data = reply.get("data")
    for scope in (reply, data if isinstance(data, Mapping) else {}):
        for key in _RUN_ID_KEYS:
            value = scope.get(key)
            if isinstance(value, int | str) and not isinstance(value, bool) and value != "":
                return value
    return None


def _structure_datetime(value: Any, _: type) -> dt.datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ValueError(f"not a timestamp: {value!r}")


def _structure_run_status(value: Any, _: Any) -> FlowRunStatus | int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not a status code: {value!r}")
    code = int(value)
    try:
        return FlowRunStatus(code)
    except ValueError:
        return code  # a code this version does not know: keep it rather than fail


def _make_converter() -> cattrs.Converter:
    """The one converter: tolerant of extra keys, strict about the types it keeps."""
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    conv.register_structure_hook_func(lambda t: t == (FlowRunStatus | int), _structure_run_status)
    return conv


converter = _make_converter()


def structure(data: Any, cls: type[T], *, body: Any = None, path: str = "data") -> T:
    """Build ``cls`` from decoded JSON; a mismatch raises :class:`UnexpectedResponseError`.

    Args:
        data: The decoded JSON of one resource.
        cls: The model to build.
        body: The whole reply, kept on the error.
        path: Where ``data`` sits in the reply, to name the offending field
            (``data[3].status``).
    """
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        details = (
            cattrs.transform_error(exc, path=path)
            if isinstance(exc, cattrs.BaseValidationError)
            else [f"{exc} @ {path}"]
        )
        first = details[0] if details else str(exc)
        field_path = first.rpartition(" @ ")[2] if " @ " in first else path
        raise UnexpectedResponseError(
            f"unexpected {cls.__name__} in the reply: {'; '.join(details)}",
            field=field_path,
            body=data if body is None else body,
        ) from exc
