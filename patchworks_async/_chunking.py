"""Splitting records over several starts, each body within the limit. Pure: no I/O, no loop.

Patchworks refuses a start body over 8 MiB and advises splitting larger data over several
calls. :func:`chunk_records` does the splitting: it groups records into the fewest
consecutive lists whose start bodies (each list sent as the payload of one
``flows.start``) fit, measured byte for byte as :func:`~patchworks_async.encode_start_body`
measures them, so no chunk is refused and none is needlessly small.

It runs in linear time: each record is serialised once, and the size of a chunk's body is
the sum of its records' sizes, never measured by re-serialising the growing chunk.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeVar

from ._config import DEFAULT_MAX_BODY_BYTES
from ._errors import ConfigurationError, PayloadError, PayloadTooLargeError
from ._payload import encode_start_body, record_encoder

__all__ = ["chunk_records"]

T = TypeVar("T")


class _Envelope(enum.Enum):
    """The default of an id: the largest envelope any likely id makes (see chunk_records)."""

    WORST_CASE = "worst case"

    def __repr__(self) -> str:
        return "WORST_CASE"


WORST_CASE: Final = _Envelope.WORST_CASE
_WorstCase = Literal[_Envelope.WORST_CASE]

_WORST_CASE_ID: Final = "9" * 20
"""Stands in for an id that was not given: as a JSON string it takes 22 bytes, more than any
id of up to 20 digits (every unsigned 64-bit id), as an int or as a string of its digits."""


def chunk_records(
    records: Iterable[T],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    flow_id: int | str | _WorstCase = WORST_CASE,
    version_id: int | str | _WorstCase | None = WORST_CASE,
    flow_variables: Mapping[str, Any] | list[Any] | str | None = None,
    virtual_environment_id: int | str | _WorstCase | None = WORST_CASE,
    raw: bool = False,
) -> list[list[T]]:
    """Group records into the fewest consecutive lists that each fit in one start body.

    Patchworks refuses a start body over 8 MiB and advises splitting larger data over
    several calls. Each list returned, sent as the payload of a start
    (``flows.start(flow_id, version_id, chunk, ...)``, the payload being the compact JSON of
    the list), makes a body of at most ``max_body_bytes`` bytes, measured exactly as the
    start measures it, escaping of the payload string and UTF-8 included. Filling each list
    greedily gives the fewest lists any consecutive grouping can.

    Each record is serialised once (linear time): a body's size is the envelope's, plus each
    record's escaped size, plus a comma between records. Neither the records' JSON nor their
    sizes are kept: only the lists of the records themselves.

    An id not given is taken as the largest any id of up to 20 digits makes (as an int or
    a string of its digits), and the version and virtual environment ids as present, so
    every chunk fits whatever ids the starts use, at a cost of under a hundred bytes a
    chunk. Passing all the ids the starts will use (``None`` for an omitted version or
    virtual environment) makes the measure exact. Flow variables cannot be guessed: pass
    those the starts will send, if any.

    Example::

        chunks = chunk_records(orders, flow_id=101, version_id=9001, virtual_environment_id=None)
        for chunk in chunks:
            await pw.flows.start(101, 9001, chunk)

    Args:
        records: Any iterable (a generator too) of JSON-serialisable records: dicts, lists,
            scalars, attrs and dataclass instances, dates and UUIDs inside them; whatever a
            start's payload may hold.
        max_body_bytes: The largest body allowed, in bytes; the client's ``max_body_bytes``.
        flow_id: The flow the chunks will start.
        version_id: The version they will start, or ``None`` for the deployed version.
        flow_variables: The flow variables the starts will send, if any.
        virtual_environment_id: The virtual environment they will run in, or ``None``.
        raw: Measure for raw starts (``flows.start(..., raw=True)``), whose body is the
            JSON list itself: no envelope, no escaping; the ids and flow variables travel
            in the query and do not count.

    Returns:
        The records, in order, in lists; ``[]`` when there are none. Every list holds at
        least one record.

    Raises:
        PayloadTooLargeError: a record makes a body over the limit on its own; ``index`` is
            its position and ``size`` the size of that body. Raised before anything is
            returned, so no data is sent only in part.
        PayloadError: a record cannot be serialised (its index is in the message), or the
            flow variables cannot.
        ConfigurationError: ``max_body_bytes`` is not a positive int, an id is not an int or
            a non-empty string, or ``records`` is a string, bytes or a mapping.
    """
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
        raise ConfigurationError(f"max_body_bytes must be an int: {max_body_bytes!r}")
    if max_body_bytes <= 0:
        raise ConfigurationError(f"max_body_bytes must be positive: {max_body_bytes!r}")
    if isinstance(records, str | bytes | bytearray | memoryview | Mapping):
        raise ConfigurationError(
            f"records must be an iterable of records, not a {type(records).__qualname__}"
        )
    if not isinstance(raw, bool):
        raise ConfigurationError(f"raw must be True or False, not {raw!r}")
    # The body of an empty list, '{"payload":"[]",...}' (or '[]' raw): built by the start's
    # own encoder, so the envelope is exact and the ids and flow variables are checked as a
    # start would.
    base = (
        2
        if raw
        else len(
            encode_start_body(
                _WORST_CASE_ID if flow_id is WORST_CASE else flow_id,
                _WORST_CASE_ID if version_id is WORST_CASE else version_id,
                [],
                max_body_bytes=sys.maxsize,  # measured here, not refused
                flow_variables=flow_variables,
                virtual_environment_id=(
                    _WORST_CASE_ID
                    if virtual_environment_id is WORST_CASE
                    else virtual_environment_id
                ),
            )
        )
    )
    # The payload "[r1,r2,...]" is escaped into the body character by character, and "[",
    # "," and "]" escape to themselves: a chunk's body is base + the records' escaped sizes
    # + one byte per comma. A record's escaped size is its UTF-8 size plus one byte per '"'
    # and per backslash: those are the only characters of JSON text that escaping changes,
    # since the JSON text of a record holds no control character (strings inside it have
    # them escaped already) and ensure_ascii=False leaves the rest as it is.
    encode = record_encoder()
    limit = max_body_bytes
    chunks: list[list[T]] = []
    chunk: list[T] = []
    size = base  # the body of the chunk being filled
    for index, record in enumerate(records):
        try:
            text = "".join(encode(record, 0))
        except (TypeError, ValueError, RecursionError) as exc:
            raise PayloadError(f"record {index} cannot be serialised to JSON: {exc}") from None
        if text.isascii():  # O(1): CPython flags ASCII strings
            record_size = len(text)
        else:
            try:
                record_size = len(text.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise PayloadError(
                    f"record {index} is not valid Unicode (lone surrogate?): {exc}"
                ) from None
        if not raw:  # escaped into the payload string
            record_size += text.count('"') + text.count("\\")
        if chunk:
            size += record_size + 1
            if size <= limit:
                chunk.append(record)
                continue
            chunks.append(chunk)
        size = base + record_size
        if size > limit:
            raise PayloadTooLargeError(size, limit, index=index)
        chunk = [record]
    if chunk:
        chunks.append(chunk)
    return chunks
