"""The API's resources as attrs classes, built by one cattrs converter.

Fields are named as the wire names them. Replies carry more than the models keep: unknown
fields are ignored and optional ones default to ``None``, so a new server field never breaks
a client. Timestamps arrive as ISO 8601 strings or Unix milliseconds; both become aware
``datetime`` objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
from attrs import field, frozen

from ._errors import UnexpectedResponseError

__all__ = ["Flow", "FlowRunStarted", "FlowVersion", "converter", "structure"]

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


@frozen
class FlowRunStarted:
    """The reply to a start or manual initialise.

    Attributes:
        id: The flow run id, or ``None`` when the reply held none where one is looked for
            (``flow_run_id``, ``run_id``, ``id``, ``data.id``, ``data.flow_run_id``).
        message: The server's message ("flow initialised").
        raw: The whole reply, since the id's key is not documented.
    """

    id: int | str | None
    message: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_reply(cls, reply: Any) -> FlowRunStarted:
        """Read a start reply; the run id's key is undocumented, so several are tried."""
        if not isinstance(reply, Mapping):
            raise UnexpectedResponseError(
                f"a start reply should be a JSON object, not {type(reply).__name__}", body=reply
            )
        message = reply.get("message")
        return cls(
            id=_find_run_id(reply),
            message=message if isinstance(message, str) else None,
            raw=reply,
        )


_RUN_ID_KEYS = ("flow_run_id", "run_id", "id")


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


def _make_converter() -> cattrs.Converter:
    """The one converter: tolerant of extra keys, strict about the types it keeps."""
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    return conv


converter = _make_converter()


def structure(data: Any, cls: type[T], *, body: Any = None) -> T:
    """Build ``cls`` from decoded JSON; a mismatch raises :class:`UnexpectedResponseError`."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        details = (
            cattrs.transform_error(exc)
            if isinstance(exc, cattrs.BaseValidationError)
            else [str(exc)]
        )
        first = details[0] if details else str(exc)
        path = first.rpartition(" @ ")[2] if " @ " in first else None
        raise UnexpectedResponseError(
            f"unexpected {cls.__name__} in the reply: {'; '.join(details)}",
            field=path,
            body=data if body is None else body,
        ) from exc
