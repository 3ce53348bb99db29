"""The one cattrs converter that builds every model from the API's JSON.

Models live with their resource (``resources/flows.py`` has ``Flow``...), as attrs
``@frozen`` classes whose fields are named as the wire names them. This converter builds
them all: tolerant of fields it does not know (a new server field never breaks a client)
and of missing optional ones, strict about the types it keeps. Timestamps arrive as ISO
8601 strings or Unix milliseconds; both become aware ``datetime`` objects. A status code
that this version does not know stays a plain ``int`` rather than failing a whole page.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.strategies import configure_union_passthrough

from ._errors import UnexpectedResponseError

logger = logging.getLogger("patchworks_async")

__all__ = ["converter", "structure", "structure_written"]

T = TypeVar("T")


def _structure_datetime(value: Any, _: type) -> dt.datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ValueError(f"not a timestamp: {value!r}")


def _code_enum(annotation: Any) -> type[enum.IntEnum] | None:
    """The ``IntEnum`` of a ``SomeIntEnum | int [| str]`` annotation: a status code field."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    members = typing.get_args(annotation)
    enums = [m for m in members if isinstance(m, type) and issubclass(m, enum.IntEnum)]
    if len(enums) != 1 or int not in members:
        return None
    return enums[0]


def _structure_code(value: Any, annotation: Any) -> Any:
    """A status code: the enum member when known, the plain ``int`` when not, and (where the
    field allows ``str``) a word the server sends instead of a number, kept as it came."""
    code_enum = _code_enum(annotation)
    assert code_enum is not None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return code_enum(value)
        except ValueError:
            return value  # a code this version does not know: keep it rather than fail
    if isinstance(value, str) and value and str in typing.get_args(annotation):
        name = value.strip().upper().replace(" ", "_").replace("-", "_")
        return code_enum.__members__.get(name, value)  # "success" is SUCCESS; others kept
    raise ValueError(f"not a status code: {value!r}")


def _make_converter() -> cattrs.Converter:
    """The one converter: tolerant of extra keys, strict about the types it keeps."""
    conv = cattrs.Converter(forbid_extra_keys=False)
    # Fields the API sends as a number or a word (``int | str``) take the value as it came.
    configure_union_passthrough(int | str | float | bool | None, conv)
    # Registered later, so consulted first: a status code is read into its enum.
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    conv.register_structure_hook_func(lambda t: _code_enum(t) is not None, _structure_code)
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


def structure_written(data: Any, cls: type[T], *, request: str) -> T:
    """Build ``cls`` from the reply to a write, never failing: the write is done.

    Raising after the server did the work would invite the caller to do it again (a second
    flow, a second import). So a field whose value cannot be read is left ``None`` (logged
    as a warning), and a reply that names no ``id`` gives a model whose ``id`` is ``None``.

    Args:
        data: The decoded resource (or whatever the reply held).
        cls: The model to build.
        request: The request, for the warning.
    """
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError):
        pass
    values: dict[str, Any] = {}
    unread: list[str] = []
    source = data if isinstance(data, Mapping) else {}
    for field in attrs.fields(cls):  # type: ignore[arg-type]
        if field.name not in source:
            if field.default is attrs.NOTHING:
                values[field.name] = None
                unread.append(field.name)
            continue
        try:
            values[field.name] = converter.structure(source[field.name], field.type)
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError):
            values[field.name] = None
            unread.append(field.name)
    logger.warning(
        "%s succeeded, but its reply did not describe a %s as expected (%s left None); "
        "the change was made: do not repeat it",
        request,
        cls.__name__,
        ", ".join(unread) or "not an object",
    )
    return cls(**values)
