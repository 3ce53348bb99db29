"""A start as it leaves: path, query and exact body, for every variant. Pure."""

from __future__ import annotations

import itertools
import json

import pytest

from patchworks_async import ConfigurationError, PayloadError, PayloadTooLargeError, chunk_records
from patchworks_async._starts import OMITTED, StartTarget

LIMIT = 8 * 1024 * 1024


class TestStandard:
    def test_a_payload_travels_as_a_string_with_the_ids(self) -> None:
        target = StartTarget.build(101, 9001)
        body = target.encode({"a": 1}, max_body_bytes=LIMIT)
        assert json.loads(body or b"") == {"payload": '{"a":1}', "flow_id": 101, "version_id": 9001}
        assert (target.path, target.params) == (["flows", 101, "start", 9001], None)

    def test_an_omitted_payload_starts_with_none_at_all(self) -> None:
        body = StartTarget.build(101, None).encode(max_body_bytes=LIMIT)
        assert json.loads(body or b"") == {"flow_id": 101}

    def test_flow_variables_go_as_a_json_string(self) -> None:
        """The reference types them as a string; the vendor's client sends json.dumps."""
        target = StartTarget.build(101, 9001, flow_variables={"region": "eu"})
        body = json.loads(target.encode("x", max_body_bytes=LIMIT) or b"")
        assert body["flow_variables"] == '{"region":"eu"}'

    def test_flow_variables_given_as_json_text_are_sent_as_given(self) -> None:
        target = StartTarget.build(101, 9001, flow_variables='{"region": "eu"}')
        body = json.loads(target.encode("x", max_body_bytes=LIMIT) or b"")
        assert body["flow_variables"] == '{"region": "eu"}'

    @pytest.mark.parametrize("variables", ["{not json", 42, {"bad": float("nan")}])
    def test_flow_variables_that_are_not_json_are_refused(self, variables: object) -> None:
        with pytest.raises(ConfigurationError, match="flow_variables"):
            StartTarget.build(101, 9001, flow_variables=variables)  # type: ignore[arg-type]

    @pytest.mark.parametrize("payload", [None, "", "   "])
    def test_none_and_blank_are_refused_not_taken_for_empty(self, payload: object) -> None:
        with pytest.raises(PayloadError, match="omit it"):
            StartTarget.build(101, 9001).encode(payload, max_body_bytes=LIMIT)


class TestRaw:
    def test_the_document_is_the_body_and_options_go_in_the_query(self) -> None:
        target = StartTarget.build(
            101, 9001, raw=True, flow_variables={"r": 1}, virtual_environment_id=3
        )
        assert target.path == ["flows", 101, "start", "raw", 9001]
        assert target.params == [("flow_variables", '{"r":1}'), ("virtual_environment_id", "3")]
        assert target.encode({"orders": [1, 2]}, max_body_bytes=LIMIT) == b'{"orders":[1,2]}'

    def test_manual_raw_without_a_version(self) -> None:
        target = StartTarget.build(101, None, manual=True, raw=True)
        assert (target.path, target.params) == (["flows", 101, "manual", "raw"], None)

    @pytest.mark.parametrize("payload", ['{"a": 1}', b"[1, 2]", "3"])
    def test_json_text_is_sent_verbatim(self, payload: str | bytes) -> None:
        body = StartTarget.build(101, 9001, raw=True).encode(payload, max_body_bytes=LIMIT)
        assert body == (payload if isinstance(payload, bytes) else payload.encode())

    @pytest.mark.parametrize("payload", ["<order/>", b"\xff", "", None])
    def test_what_is_not_json_is_refused_before_sending(self, payload: object) -> None:
        with pytest.raises(PayloadError):
            StartTarget.build(101, 9001, raw=True).encode(payload, max_body_bytes=LIMIT)

    def test_an_omitted_payload_is_no_body(self) -> None:
        assert StartTarget.build(101, 9001, raw=True).encode(OMITTED, max_body_bytes=LIMIT) is None

    def test_the_exact_body_is_measured(self) -> None:
        target = StartTarget.build(101, 9001, raw=True)
        with pytest.raises(PayloadTooLargeError) as caught:
            target.encode(["y" * 20], max_body_bytes=20)
        assert caught.value.size == len(b'["' + b"y" * 20 + b'"]')


class TestChunkRecordsForRawStarts:
    def test_chunks_fit_the_raw_body_exactly(self) -> None:
        records = [{"sku": f"S-{n}", "q": '"quoted"'} for n in range(500)]
        limit = 2_000
        chunks = chunk_records(records, max_body_bytes=limit, raw=True)
        target = StartTarget.build(101, 9001, raw=True)
        sizes = [len(target.encode(chunk, max_body_bytes=limit) or b"") for chunk in chunks]
        assert max(sizes) <= limit
        assert [r for chunk in chunks for r in chunk] == records
        # Greedy: adding the next record to any chunk would overflow it.
        for chunk, following in itertools.pairwise(chunks):
            assert len(json.dumps([*chunk, following[0]], separators=(",", ":"))) > limit
