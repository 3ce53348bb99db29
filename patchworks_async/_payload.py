"""Turning user data into the exact bytes of a start request. Pure: no I/O, no loop.

The standard start endpoints take a JSON object whose ``payload`` is a *string* (text, XML,
or JSON already stringified); the raw ones take the JSON document itself as the body. The
server refuses bodies over 8 MiB, so the client measures the very bytes it will send,
escaping and UTF-8 included, and refuses before taking a rate-limit token or opening a
connection. The body is encoded once and that buffer is what goes on the wire.
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

from ._config import check_id
from ._errors import ConfigurationError, PayloadError, PayloadTooLargeError

__all__ = [
    "RecordEncoder",
    "dumps_compact",
    "encode_start_body",
    "flow_variables_text",
    "raw_start_body",
    "record_encoder",
    "start_body",
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
    text = _text_of(payload)
    if text is None:
        text = dumps_compact(payload)
    if not text.strip():
        raise PayloadError(
            "payload is blank, which the server refuses; omit it to start the flow with no "
            "payload"
        )
    return text


def _text_of(payload: object) -> str | None:
    """A ``str`` payload as is, bytes decoded as UTF-8, ``None`` for data to serialise.

    Raises:
        PayloadError: ``None`` (almost always a bug: omit the payload to send none), or
            bytes that are not UTF-8.
    """
    if payload is None:
        raise PayloadError("payload is None; omit it to start the flow with no payload")
    if isinstance(payload, str):
        return payload
    if isinstance(payload, bytes | bytearray | memoryview):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"payload bytes are not valid UTF-8: {exc}") from None
    return None


def _id_json(value: int | str) -> str:
    """An id as JSON, without building an encoder for one scalar (a checked int or str)."""
    return str(value) if isinstance(value, int) else _escape_string(value)


def flow_variables_text(flow_variables: Mapping[str, Any] | list[Any] | str) -> str:
    """Flow variables as the API takes them: a JSON document in a string.

    The API reference types ``flow_variables`` as a string and the vendor's own client
    sends ``json.dumps({...})``, so a mapping (or list) is serialised; a string is taken as
    JSON already and checked.

    Raises:
        ConfigurationError: a string that is not JSON, or something that cannot be.
    """
    if isinstance(flow_variables, str):
        try:
            json.loads(flow_variables)
        except ValueError:
            raise ConfigurationError(
                f"flow_variables must be a mapping or a JSON string, not {flow_variables!r}"
            ) from None
        return flow_variables
    if not isinstance(flow_variables, Mapping | list):
        raise ConfigurationError(
            f"flow_variables must be a mapping or a JSON string, not {flow_variables!r}"
        )
    try:
        return dumps_compact(flow_variables)
    except PayloadError as exc:
        raise ConfigurationError(f"flow_variables: {exc}") from None


def encode_start_body(
    flow_id: int | str,
    version_id: int | str | None,
    payload: object,
    *,
    max_body_bytes: int,
    flow_variables: Mapping[str, Any] | list[Any] | str | None = None,
    virtual_environment_id: int | str | None = None,
) -> bytes:
    """The exact request body of a start or manual initialise, checked against the limit.

    Args:
        flow_id: The flow to start.
        version_id: The flow version, or ``None`` for the deployed version.
        payload: See :func:`stringify_payload`.
        max_body_bytes: The largest body allowed, in bytes.
        flow_variables: Optional flow variables, sent as a JSON string (see
            :func:`flow_variables_text`).
        virtual_environment_id: Optional virtual environment to run in.

    Raises:
        PayloadError: the payload is blank or unserialisable.
        PayloadTooLargeError: the encoded body is larger than ``max_body_bytes``.
        ConfigurationError: an id is not an int or a non-empty string.
    """
    variables = None if flow_variables is None else flow_variables_text(flow_variables)
    return start_body(
        flow_id,
        version_id,
        stringify_payload(payload),
        max_body_bytes=max_body_bytes,
        flow_variables=variables,
        virtual_environment_id=virtual_environment_id,
    )


def start_body(
    flow_id: int | str,
    version_id: int | str | None,
    payload: str | None,
    *,
    max_body_bytes: int,
    flow_variables: str | None = None,
    virtual_environment_id: int | str | None = None,
) -> bytes:
    """A standard start body for a payload already stringified (``None``: an empty start,
    whose body has no ``payload`` at all), with flow variables already JSON text."""
    check_id("flow_id", flow_id)
    if version_id is not None:
        check_id("version_id", version_id)
    if virtual_environment_id is not None:
        check_id("virtual_environment_id", virtual_environment_id)
    # Assembled by hand, byte for byte what dumps_compact() makes of the same dict: the
    # payload string, usually the bulk of the body, is escaped once and never re-walked.
    parts = ["{"] if payload is None else ['{"payload":', _escape_string(payload), ","]
    parts += ['"flow_id":', _id_json(flow_id)]
    if version_id is not None:
        parts += [',"version_id":', _id_json(version_id)]
    if flow_variables is not None:
        parts += [',"flow_variables":', _escape_string(flow_variables)]
    if virtual_environment_id is not None:
        parts += [',"virtual_environment_id":', _id_json(virtual_environment_id)]
    parts.append("}")
    return _measured("".join(parts), max_body_bytes)


def raw_start_body(payload: object, *, max_body_bytes: int) -> bytes:
    """The body of a raw start: the JSON document itself, as is, checked against the limit.

    Args:
        payload: A dict, list, number, attrs or dataclass instance (serialised compactly,
            as :func:`dumps_compact`), or a ``str`` or ``bytes`` that already is JSON (sent
            verbatim, once checked to parse).

    Raises:
        PayloadError: ``None``, text that is not JSON, bytes that are not UTF-8, or data
            that cannot be serialised.
        PayloadTooLargeError: the body is larger than ``max_body_bytes``.
    """
    text = _text_of(payload)
    if text is None:
        return _measured(dumps_compact(payload), max_body_bytes)
    try:
        json.loads(text)
    except ValueError as exc:
        raise PayloadError(f"a raw start's payload must be JSON: {exc}") from None
    return _measured(text, max_body_bytes)


def _measured(body: str, max_body_bytes: int) -> bytes:
    try:
        encoded = body.encode("utf-8")
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
