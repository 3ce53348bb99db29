"""Turning user data into the exact bytes of a start request. Pure: no I/O, no loop.

The start endpoints take a JSON object whose ``payload`` is a *string* (text, XML, or JSON
already stringified). The server refuses bodies over 8 MiB, so the client measures the very
bytes it will send, escaping and UTF-8 included, and refuses before taking a rate-limit token
or opening a connection. The body is encoded once and that buffer is what goes on the wire.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import json.encoder
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._errors import ConfigurationError, PayloadError, PayloadTooLargeError

__all__ = [
    "RecordEncoder",
    "dumps_compact",
    "encode_start_body",
    "record_encoder",
    "stringify_payload",
]


def _to_json_compatible(value: Any) -> Any:
    """``json.dumps``'s ``default``: the types users reasonably expect to serialise."""
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"objects of type {type(value).__qualname__} are not JSON serialisable")


_escape_string = json.encoder.encode_basestring  # what JSONEncoder uses with ensure_ascii=False

_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_to_json_compatible
)


def dumps_compact(value: Any) -> str:
    """Serialise ``value`` compactly, as every payload and request body is serialised.

    Raises:
        PayloadError: ``value`` (or something inside it) cannot be serialised, or holds
            NaN or infinity, which JSON cannot express.
    """
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"payload cannot be serialised to JSON: {exc}") from None


def stringify_payload(payload: object) -> str:
    """The ``payload`` string for a start: ``str`` as is, bytes as UTF-8, the rest as JSON.

    Args:
        payload: A ``str`` (sent verbatim: text, XML or JSON you serialised yourself),
            ``bytes`` (decoded as UTF-8), or anything JSON-serialisable: dicts, lists,
            numbers, attrs and dataclass instances, dates and UUIDs inside them.

    Raises:
        PayloadError: the payload is ``None``, blank, bytes that are not UTF-8, or cannot be
            serialised.
    """
    if payload is None:
        raise PayloadError("payload is None; the server requires a non-blank payload")
    if isinstance(payload, bytes | bytearray | memoryview):
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"payload bytes are not valid UTF-8: {exc}") from None
    elif isinstance(payload, str):
        text = payload
    else:
        text = dumps_compact(payload)
    if not text.strip():
        raise PayloadError("payload is blank; the server requires a non-blank payload")
    return text


def _id_json(value: int | str) -> str:
    """An id as JSON, without building an encoder for one scalar (a checked int or str)."""
    return str(value) if isinstance(value, int) else _escape_string(value)


def _check_id(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ConfigurationError(f"{name} must be an int or a non-empty str, not {value!r}")


def encode_start_body(
    flow_id: int | str,
    version_id: int | str | None,
    payload: object,
    *,
    max_body_bytes: int,
    flow_variables: Mapping[str, Any] | list[Any] | None = None,
    virtual_environment_id: int | str | None = None,
) -> bytes:
    """The exact request body of a start or manual initialise, checked against the limit.

    Args:
        flow_id: The flow to start.
        version_id: The flow version, or ``None`` for the deployed version.
        payload: See :func:`stringify_payload`.
        max_body_bytes: The largest body allowed, in bytes.
        flow_variables: Optional flow variables, sent as given.
        virtual_environment_id: Optional virtual environment to run in.

    Raises:
        PayloadError: the payload is blank or unserialisable.
        PayloadTooLargeError: the encoded body is larger than ``max_body_bytes``.
        ConfigurationError: an id is not an int or a non-empty string.
    """
    _check_id("flow_id", flow_id)
    if version_id is not None:
        _check_id("version_id", version_id)
    if virtual_environment_id is not None:
        _check_id("virtual_environment_id", virtual_environment_id)
    # Assembled by hand, byte for byte what dumps_compact() makes of the same dict: the
    # payload string, usually the bulk of the body, is escaped once and never re-walked.
    parts = ['{"payload":', _escape_string(stringify_payload(payload)), ',"flow_id":']
    parts.append(_id_json(flow_id))
    if version_id is not None:
        parts += [',"version_id":', _id_json(version_id)]
    if flow_variables is not None:
        parts += [',"flow_variables":', dumps_compact(flow_variables)]
    if virtual_environment_id is not None:
        parts += [',"virtual_environment_id":', _id_json(virtual_environment_id)]
    parts.append("}")
    try:
        encoded = "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(f"payload is not valid Unicode (lone surrogate?): {exc}") from None
    if len(encoded) > max_body_bytes:
        raise PayloadTooLargeError(len(encoded), max_body_bytes)
    return encoded


RecordEncoder = Callable[[Any, int], Sequence[str]]
"""Serialises one record (at an indent level, unused) into pieces to concatenate."""


def record_encoder() -> RecordEncoder:
    """A serialiser of one record into pieces whose concatenation is ``dumps_compact(record)``.

    ``dumps_compact`` goes through ``JSONEncoder.encode``, which builds a fresh C encoder on
    every call: nothing for one payload, a quarter of the time for a small record among
    thousands. Build one per batch of records (``chunk_records`` does) with the very settings of the
    shared encoder, and a fresh circular-reference memo each time (the C encoder leaves it
    dirty after a failure, and a call stops at the first failure).
    """
    make: Callable[..., RecordEncoder] | None = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another Python implementation): the slow path
        return lambda record, _level: (_ENCODER.encode(record),)
    return make(
        {} if _ENCODER.check_circular else None,
        _ENCODER.default,
        (
            json.encoder.encode_basestring_ascii
            if _ENCODER.ensure_ascii
            else json.encoder.encode_basestring
        ),
        None,
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        _ENCODER.sort_keys,
        _ENCODER.skipkeys,
        _ENCODER.allow_nan,
    )
