"""chunk_records: every chunk fits the exact body a start sends, and no grouping has fewer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from patchworks_async import (
    ConfigurationError,
    PayloadError,
    PayloadTooLargeError,
    encode_start_body,
)
from patchworks_async._chunking import _WORST_CASE_ID, chunk_records
from patchworks_async._payload import dumps_compact

MiB8 = 8 * 1024 * 1024

# Text heavy in what escaping and UTF-8 change: quotes, backslashes, control characters,
# two-, three- and four-byte characters.
tricky_text = st.text(
    alphabet=st.sampled_from('"\\\n\t\x00\x1f/aZ é€😀\u2028\x7f') | st.characters(),
    max_size=12,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4)
    ),
    max_leaves=12,
)

IDS: dict[str, Any] = {"flow_id": 101, "version_id": 9001, "virtual_environment_id": None}
"""Real ids, given in full: the measure is exact."""

# (kwargs passed to chunk_records, kwargs that make the same envelope in encode_start_body)
ENVELOPES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {},
        {
            "flow_id": _WORST_CASE_ID,
            "version_id": _WORST_CASE_ID,
            "virtual_environment_id": _WORST_CASE_ID,
        },
    ),
    (
        {"flow_id": 101, "version_id": 9001, "virtual_environment_id": None},
        {"flow_id": 101, "version_id": 9001},
    ),
    (
        {"flow_id": "42", "version_id": None, "virtual_environment_id": None},
        {"flow_id": "42", "version_id": None},
    ),
    (  # the ids not given are the worst case
        {"flow_id": 5, "version_id": None},
        {"flow_id": 5, "version_id": None, "virtual_environment_id": _WORST_CASE_ID},
    ),
    (
        {
            "flow_id": 7,
            "version_id": 8,
            "flow_variables": {"mode": 'é"\\'},
            "virtual_environment_id": None,
        },
        {"flow_id": 7, "version_id": 8, "flow_variables": {"mode": 'é"\\'}},
    ),
    (
        {"flow_id": 1, "version_id": None, "virtual_environment_id": "77"},
        {"flow_id": 1, "version_id": None, "virtual_environment_id": "77"},
    ),
]


def body_size(chunk: list[Any], envelope: dict[str, Any]) -> int:
    """The size of the body a start of ``chunk`` sends: what chunk_records must predict."""
    kwargs = dict(envelope)
    body = encode_start_body(
        kwargs.pop("flow_id"), kwargs.pop("version_id"), chunk, max_body_bytes=2**62, **kwargs
    )
    return len(body)


def assert_fewest_that_fit(
    records: list[Any], chunks: list[list[Any]], limit: int, envelope: dict[str, Any]
) -> None:
    """In order, all there, each within the limit, and the fewest: greedy never left room."""
    assert [record for chunk in chunks for record in chunk] == records
    assert all(chunks)  # no empty chunk
    assert all(body_size(chunk, envelope) <= limit for chunk in chunks)
    for chunk, following in itertools.pairwise(chunks):
        # The next record did not fit, so no consecutive grouping has fewer chunks.
        assert body_size([*chunk, following[0]], envelope) > limit


@given(
    st.lists(json_values, max_size=25),
    st.sampled_from(ENVELOPES),
    st.integers(min_value=-20, max_value=1000),
)
@example(records=['"' * 10, "\\" * 10, "é" * 10, "\n" * 10], envelope=ENVELOPES[1], slack=30)
def test_chunks_fit_keep_order_and_are_fewest(
    records: list[Any], envelope: tuple[dict[str, Any], dict[str, Any]], slack: int
) -> None:
    given_kwargs, encode_kwargs = envelope
    try:
        singles = [body_size([record], encode_kwargs) for record in records]
    except PayloadError:  # a lone surrogate somewhere: checked on its own below
        return
    # A limit from just below the largest single record's body (an error) to well above it.
    limit = max([body_size([], encode_kwargs), *singles]) + slack
    too_large = [i for i, size in enumerate(singles) if size > limit]
    if too_large:
        with pytest.raises(PayloadTooLargeError) as caught:
            chunk_records(records, max_body_bytes=limit, **given_kwargs)
        assert caught.value.index == too_large[0]
        assert caught.value.size == singles[too_large[0]]
        assert caught.value.limit == limit
        return

    chunks = chunk_records(records, max_body_bytes=limit, **given_kwargs)

    assert_fewest_that_fit(records, chunks, limit, encode_kwargs)
    for chunk in chunks:
        encode_start_body(  # the start itself accepts it
            encode_kwargs["flow_id"],
            encode_kwargs["version_id"],
            chunk,
            max_body_bytes=limit,
            flow_variables=encode_kwargs.get("flow_variables"),
            virtual_environment_id=encode_kwargs.get("virtual_environment_id"),
        )


@given(st.lists(json_values, min_size=1, max_size=10))
def test_records_are_serialised_exactly_as_a_start_serialises_them(records: list[Any]) -> None:
    """The measure rests on each record's JSON text being dumps_compact's."""
    try:
        expected = body_size(records, ENVELOPES[1][1])
    except PayloadError:
        return
    assert chunk_records(records, max_body_bytes=expected, **IDS) == [records]
    if len(records) > 1:
        assert len(chunk_records(records, max_body_bytes=expected - 1, **ENVELOPES[1][0])) > 1


def test_a_chunk_of_exactly_the_limit_fits_and_one_byte_less_splits() -> None:
    records = [{"id": i, "name": f"order {i}"} for i in range(3)]
    ids = IDS
    exact = body_size(records, ids)
    assert chunk_records(records, max_body_bytes=exact, **ids) == [records]
    assert chunk_records(records, max_body_bytes=exact - 1, **ids) == [records[:2], records[2:]]
    pair = body_size(records[:2], ids)
    assert chunk_records(records, max_body_bytes=pair, **ids) == [records[:2], records[2:]]
    assert chunk_records(records, max_body_bytes=pair - 1, **ids) == [[r] for r in records]


def test_the_8_mib_boundary_is_exact() -> None:
    ids = IDS
    overhead = body_size(["", ""], ids)  # '{"payload":"[\"\",\"\"]",...}'
    filler = "x" * (MiB8 - overhead)
    records = [filler, "", "y"]
    assert body_size(records[:2], ids) == MiB8
    assert chunk_records(records, **ids) == [records[:2], records[2:]]
    assert chunk_records(records[:2], max_body_bytes=MiB8 - 1, **ids) == [[filler], [""]]


@pytest.mark.parametrize(
    ("text", "bytes_each"),
    [
        ('"', 4),  # in the record's JSON '\"', then each of those escaped again: '\\\"'
        ("\\", 4),  # likewise '\\' becomes '\\\\'
        ("\n", 3),  # '\n' in the record's JSON; its backslash is escaped: '\\n'
        ("\x00", 7),  # '\u0000', backslash escaped: '\\u0000'
        ("é", 2),  # UTF-8, never \u-escaped
        ("€", 3),
        ("😀", 4),
        ("a", 1),
    ],
)
def test_escaping_and_utf8_are_counted(text: str, bytes_each: int) -> None:
    ids: dict[str, Any] = {"flow_id": 1, "version_id": None, "virtual_environment_id": None}
    base = body_size([""], ids)  # a record of an empty string: '[\"\"]'
    record = text * 50
    exact = base + 50 * bytes_each
    assert body_size([record], ids) == exact
    assert chunk_records([record], max_body_bytes=exact, **ids) == [[record]]
    with pytest.raises(PayloadTooLargeError) as caught:
        chunk_records([record], max_body_bytes=exact - 1, **ids)
    assert (caught.value.size, caught.value.index) == (exact, 0)


def test_quote_heavy_and_unicode_records_split_where_the_escaped_size_says() -> None:
    ids = IDS
    records: list[Any] = [
        {"note": 'she said "hi" \\o/', "city": "Zürich"},
        ['"', "€", "😀", "\t"],
        'plain "quoted" text',
        {"emoji": "😀" * 20},
    ]
    for limit in range(body_size([records[3]], ids), body_size(records, ids) + 2):
        chunks = chunk_records(records, max_body_bytes=limit, **ids)
        assert_fewest_that_fit(records, chunks, limit, ids)
    # The naive measure, the UTF-8 JSON of the list, is short of the escaped payload.
    escaped_payload = body_size(records, ids) - body_size([], ids) + len("[]")
    assert escaped_payload > len(dumps_compact(records).encode())


def test_a_record_too_large_alone_names_its_index() -> None:
    ids = IDS
    records = ["a" * 10, "b" * 10, "c" * 1000, "d" * 10]
    limit = 500
    with pytest.raises(PayloadTooLargeError) as caught:
        chunk_records(records, max_body_bytes=limit, **ids)
    error = caught.value
    assert error.index == 2
    assert error.size == body_size(["c" * 1000], ids)
    assert error.limit == limit
    assert (error.status, error.refused_by_server) == (413, False)  # refused before sending
    assert "record 2" in str(error)


def test_a_record_too_large_is_reported_even_after_records_that_fit() -> None:
    def records() -> Iterator[str]:
        yield from ["x" * 10] * 100
        yield "y" * 10_000

    with pytest.raises(PayloadTooLargeError) as caught:
        chunk_records(records(), max_body_bytes=1000)
    assert caught.value.index == 100


def test_empty_input_gives_no_chunks() -> None:
    assert chunk_records([]) == []
    assert chunk_records(iter(())) == []
    assert chunk_records([], max_body_bytes=1) == []  # even a limit nothing fits in


def test_a_generator_is_consumed_once_and_chunked_like_a_list() -> None:
    records = [{"id": 1000 + i, "sku": f"SKU-{i:04d}", "note": 'a "b" é'} for i in range(500)]
    consumed: list[dict[str, Any]] = []

    def generate() -> Iterator[dict[str, Any]]:
        for record in records:
            consumed.append(record)
            yield record

    ids = IDS
    limit = body_size(records[:37], ids)
    from_generator = chunk_records(generate(), max_body_bytes=limit, **ids)
    assert consumed == records
    assert from_generator == chunk_records(records, max_body_bytes=limit, **ids)
    assert [len(chunk) for chunk in from_generator] == [37] * 13 + [500 - 37 * 13]


def test_the_chunks_hold_the_records_themselves() -> None:
    records = [{"id": 1}, {"id": 2}]
    (chunk,) = chunk_records(records)
    assert all(a is b for a, b in zip(chunk, records, strict=True))


class _CountingDict(dict[str, Any]):
    """A dict that counts how often the JSON encoder asks for its items."""

    serialised = 0

    def items(self) -> Any:
        type(self).serialised += 1
        return super().items()


def test_each_record_is_serialised_once() -> None:
    """Linear time: the growing chunk is never re-serialised to be measured."""
    _CountingDict.serialised = 0
    records = [_CountingDict(id=i, note="é" * 30) for i in range(2000)]
    assert json.loads(dumps_compact(records[0])) == {"id": 0, "note": "é" * 30}
    _CountingDict.serialised = 0
    chunks = chunk_records(records, max_body_bytes=4096, flow_id=1, version_id=2)
    assert len(chunks) > 10
    assert _CountingDict.serialised == len(records)


def test_without_the_c_accelerator_the_chunks_are_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [{"id": i, "note": 'é "q" \\'} for i in range(300)]
    limit = body_size(records[:40], IDS)
    accelerated = chunk_records(records, max_body_bytes=limit, **IDS)
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert chunk_records(records, max_body_bytes=limit, **IDS) == accelerated
    with pytest.raises(PayloadError, match="record 1 "):
        chunk_records([1, object()])


@attrs.frozen
class _AttrsOrder:
    id: int
    placed: dt.date


@dataclasses.dataclass
class _DataclassLine:
    sku: str
    ref: uuid.UUID


def test_attrs_and_dataclass_records_are_measured_as_they_are_sent() -> None:
    records: list[Any] = [
        _AttrsOrder(i, dt.date(2026, 1, 2)) if i % 2 else _DataclassLine("é", uuid.UUID(int=i))
        for i in range(40)
    ]
    ids = IDS
    limit = body_size(records[:9], ids)
    chunks = chunk_records(records, max_body_bytes=limit, **ids)
    assert len(chunks) > 3
    assert_fewest_that_fit(records, chunks, limit, ids)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (object(), "not JSON serialisable"),
        ({1, 2}, "not JSON serialisable"),
        ({"x": math.nan}, "Out of range float"),
        ({"x": [math.inf]}, "Out of range float"),
        ("\ud800", "lone surrogate"),
        (b"bytes", "not JSON serialisable"),
    ],
)
def test_an_unserialisable_record_names_its_index(bad: object, why: str) -> None:
    with pytest.raises(PayloadError, match=f"record 2 .*{why}") as caught:
        chunk_records([1, "two", bad, 4])
    assert not isinstance(caught.value, PayloadTooLargeError)


def test_a_circular_record_names_its_index() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(PayloadError, match=r"record 1 .*[Cc]ircular"):
        chunk_records([[], loop])
    # The memo of the failed call does not leak into the next one.
    assert chunk_records([[1], [2]]) == [[[1], [2]]]


def test_the_default_envelope_fits_any_id_of_up_to_20_digits() -> None:
    records = [{"id": 1000 + i, "text": 'é "q" \\'} for i in range(200)]
    worst = {
        "flow_id": _WORST_CASE_ID,
        "version_id": _WORST_CASE_ID,
        "virtual_environment_id": _WORST_CASE_ID,
    }
    limit = body_size(records[:50], worst)
    chunks = chunk_records(records, max_body_bytes=limit)
    assert [len(chunk) for chunk in chunks] == [50] * 4
    big = 2**64 - 1  # 20 digits
    envelopes: list[tuple[int | str, int | str | None, int | str | None]] = [
        (big, big, big),
        (str(big), str(big), str(big)),
        ("9" * 20, None, None),
        (1, 2, None),
    ]
    for flow_id, version_id, environment in envelopes:
        for chunk in chunks:
            encode_start_body(
                flow_id,
                version_id,
                chunk,
                max_body_bytes=limit,
                virtual_environment_id=environment,
            )


def test_the_real_ids_make_the_measure_exact_and_the_chunks_fuller() -> None:
    records = [{"id": 1000 + i} for i in range(1000)]
    ids: dict[str, Any] = {"flow_id": 1, "version_id": None, "virtual_environment_id": None}
    limit = body_size(records[:100], ids)
    partial = chunk_records(records, max_body_bytes=limit, flow_id=1)  # the rest: worst case
    assert len(partial) == 11
    assert [len(c) for c in chunk_records(records, max_body_bytes=limit, **ids)] == [100] * 10
    assert len(chunk_records(records, max_body_bytes=limit)) == 11  # worst case: fewer a chunk


@pytest.mark.parametrize("limit", [0, -1, True, 1.5, "8M", None])
def test_a_bad_limit_is_refused(limit: object) -> None:
    with pytest.raises(ConfigurationError, match="max_body_bytes"):
        chunk_records([1], max_body_bytes=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"flow_id": ""}, {"flow_id": True}, {"version_id": 1.5}, {"virtual_environment_id": ""}],
)
def test_bad_ids_are_refused_as_a_start_refuses_them(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        chunk_records([1], **kwargs)


def test_unserialisable_flow_variables_are_refused() -> None:
    """An argument of the start, not its payload: a ConfigurationError (since 0.2)."""
    with pytest.raises(ConfigurationError, match="flow_variables"):
        chunk_records([1], flow_variables={"x": object()})


@pytest.mark.parametrize("records", ["abc", b"abc", {"a": 1}])
def test_a_string_bytes_or_mapping_is_not_taken_for_records(records: Any) -> None:
    with pytest.raises(ConfigurationError, match="iterable of records"):
        chunk_records(records)
