"""The payload helper: what is measured is exactly what is sent, and bad input never leaves."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import uuid

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchworks_async import (
    ConfigurationError,
    PayloadError,
    PayloadTooLargeError,
    encode_start_body,
    stringify_payload,
)
from patchworks_async._payload import dumps_compact

MiB8 = 8 * 1024 * 1024

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


def _body(payload: object, **kwargs: object) -> dict[str, object]:
    return json.loads(encode_start_body(101, 9001, payload, max_body_bytes=MiB8, **kwargs))  # type: ignore[arg-type]


@given(st.text().filter(lambda s: s.strip()))
def test_strings_are_sent_verbatim(text: str) -> None:
    try:
        body = _body(text)
    except PayloadError:  # lone surrogates cannot be encoded as UTF-8
        with pytest.raises(UnicodeEncodeError):
            text.encode("utf-8")
        return
    assert body["payload"] == text


@given(json_values.filter(lambda v: v is not None and not isinstance(v, str)))
def test_json_values_round_trip_through_the_payload_string(value: object) -> None:
    try:
        body = _body(value)
    except PayloadError:
        # Only a value holding a lone surrogate (not encodable as UTF-8) is refused.
        text = json.dumps(value, ensure_ascii=False)
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    assert json.loads(body["payload"]) == value  # type: ignore[arg-type]


@given(json_values.filter(lambda v: v is not None), st.integers(min_value=1, max_value=4096))
def test_the_limit_is_checked_on_the_exact_bytes_sent(value: object, limit: int) -> None:
    """The size compared with the limit is the size of the buffer that goes on the wire."""
    try:
        unlimited = encode_start_body(1, 2, value, max_body_bytes=MiB8)
    except PayloadError:
        return
    if len(unlimited) <= limit:
        assert encode_start_body(1, 2, value, max_body_bytes=limit) == unlimited
    else:
        with pytest.raises(PayloadTooLargeError) as caught:
            encode_start_body(1, 2, value, max_body_bytes=limit)
        assert caught.value.size == len(unlimited)
        assert caught.value.limit == limit


def test_a_body_of_exactly_the_limit_passes_and_one_byte_more_fails() -> None:
    overhead = len(encode_start_body(101, 9001, "x", max_body_bytes=MiB8)) - 1
    fits = "x" * (MiB8 - overhead)
    assert len(encode_start_body(101, 9001, fits, max_body_bytes=MiB8)) == MiB8
    with pytest.raises(PayloadTooLargeError) as caught:
        encode_start_body(101, 9001, fits + "x", max_body_bytes=MiB8)
    assert (caught.value.size, caught.value.limit) == (MiB8 + 1, MiB8)
    assert caught.value.status == 413  # what the server would say: status >= 500 works
    assert not caught.value.refused_by_server  # raised by the client, before sending


def test_escaping_and_utf8_count_towards_the_size() -> None:
    quote_heavy = '"' * 100  # each quote is escaped to two bytes
    euro = "€" * 100  # three UTF-8 bytes each
    base = len(encode_start_body(1, None, "a", max_body_bytes=MiB8)) - 1
    assert len(encode_start_body(1, None, quote_heavy, max_body_bytes=MiB8)) == base + 200
    assert len(encode_start_body(1, None, euro, max_body_bytes=MiB8)) == base + 300


def test_bytes_are_decoded_as_utf8() -> None:
    assert stringify_payload("<order id='1'>é</order>".encode()) == "<order id='1'>é</order>"


def test_invalid_utf8_bytes_are_refused() -> None:
    with pytest.raises(PayloadError, match="UTF-8"):
        stringify_payload(b"\xff\xfe")


@pytest.mark.parametrize("blank", [None, "", "   \n\t", b"", b"  "])
def test_blank_payloads_are_refused(blank: object) -> None:
    with pytest.raises(PayloadError):
        stringify_payload(blank)


@pytest.mark.parametrize("bad", [object(), {1, 2}, {"x": math.nan}, {"x": math.inf}])
def test_unserialisable_payloads_are_refused(bad: object) -> None:
    with pytest.raises(PayloadError):
        stringify_payload(bad)


def test_a_payload_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the base class is the point
        stringify_payload(None)


def test_dicts_are_serialised_compactly_without_ascii_escapes() -> None:
    assert stringify_payload({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'


@attrs.frozen
class _AttrsOrder:
    id: int
    placed: dt.date


@dataclasses.dataclass
class _DataclassLine:
    sku: str
    ref: uuid.UUID


def test_attrs_and_dataclass_instances_are_serialised() -> None:
    ref = uuid.UUID(int=7)
    payload = {"order": _AttrsOrder(1, dt.date(2026, 1, 2)), "lines": [_DataclassLine("A", ref)]}
    assert json.loads(stringify_payload(payload)) == {
        "order": {"id": 1, "placed": "2026-01-02"},
        "lines": [{"sku": "A", "ref": str(ref)}],
    }


def test_the_body_holds_payload_ids_and_optional_fields_only_when_given() -> None:
    assert _body("x") == {"payload": "x", "flow_id": 101, "version_id": 9001}
    assert json.loads(encode_start_body(101, None, "x", max_body_bytes=MiB8)) == {
        "payload": "x",
        "flow_id": 101,
    }
    assert _body("x", flow_variables={"k": "v"}, virtual_environment_id=3) == {
        "payload": "x",
        "flow_id": 101,
        "version_id": 9001,
        "flow_variables": '{"k":"v"}',  # a JSON string, as the API reference types it
        "virtual_environment_id": 3,
    }


@pytest.mark.parametrize("bad_id", [None, "", True, 1.5, 0, -1, "-3", "abc", "1/2", "٣"])
def test_bad_flow_ids_are_refused(bad_id: object) -> None:
    with pytest.raises(ConfigurationError):
        encode_start_body(bad_id, 1, "x", max_body_bytes=MiB8)  # type: ignore[arg-type]


@given(
    json_values.filter(lambda v: v is not None and not isinstance(v, str)),
    st.one_of(st.integers(min_value=1), st.integers(min_value=1).map(str)),
    st.none() | st.integers(min_value=1),
    st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    st.none() | st.integers(min_value=1),
)
def test_the_hand_built_body_is_exactly_what_json_makes_of_the_same_object(
    value: object,
    flow_id: int | str,
    version_id: int | None,
    flow_variables: dict[str, object] | None,
    environment: int | None,
) -> None:
    try:
        sent = encode_start_body(
            flow_id,
            version_id,
            value,
            max_body_bytes=MiB8,
            flow_variables=flow_variables,
            virtual_environment_id=environment,
        )
    except PayloadError:
        return  # lone surrogates; covered above
    expected: dict[str, object] = {"payload": stringify_payload(value), "flow_id": flow_id}
    if version_id is not None:
        expected["version_id"] = version_id
    if flow_variables is not None:
        expected["flow_variables"] = dumps_compact(flow_variables)  # sent as a JSON string
    if environment is not None:
        expected["virtual_environment_id"] = environment
    assert sent == dumps_compact(expected).encode()
