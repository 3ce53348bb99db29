"""Status-to-exception mapping and header parsing: pure functions, no loop."""

from __future__ import annotations

import builtins

import pytest
from multidict import CIMultiDict

import patchworks_async
from patchworks_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PatchworksError,
    PayloadError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from patchworks_async._errors import error_for_response
from patchworks_async._protocol import decode_body, parse_rate_limit, parse_retry_after


def _error(status: int, body: object = None, **kwargs: object) -> APIError:
    return error_for_response(
        status,
        body,
        headers={"X-Test": "1"},
        method="GET",
        url="https://x/api/v1/flows",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, APIError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (415, UnsupportedMediaTypeError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_each_status_maps_to_its_class(status: int, cls: type[APIError]) -> None:
    error = _error(status, {"message": "nope"})
    assert type(error) is cls
    assert (error.status, error.message, error.method) == (status, "nope", "GET")
    assert error.headers == {"X-Test": "1"}


def test_a_422_carries_field_errors_in_both_documented_shapes() -> None:
    error = _error(
        422,
        {
            "message": "The given data was invalid.",
            "errors": {
                "payload": ["The payload field is required."],
                "flow_id": [{"integer": "must be an integer"}],
            },
        },
    )
    assert error.errors == {
        "payload": ["The payload field is required."],
        "flow_id": ["integer: must be an integer"],
    }


@pytest.mark.parametrize("body", [None, "", "<html><body><h1>502 Bad Gateway</h1></body></html>"])
def test_an_empty_or_html_body_gives_a_clean_message(body: object) -> None:
    error = _error(502, body)
    assert isinstance(error, ServerError)
    assert "502" in str(error)
    assert error.body == body


def test_a_server_413_is_a_payload_too_large_error_and_a_payload_error() -> None:
    error = _error(413, {"message": "too large"}, sent_bytes=123)
    assert isinstance(error, PayloadTooLargeError)
    assert isinstance(error, PayloadError)
    assert (error.status, error.size, error.limit) == (413, 123, None)


def test_a_429_carries_retry_after() -> None:
    error = _error(429, {"message": "Too Many Attempts."}, retry_after=7.0)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0


def test_every_exception_is_exported_and_descends_from_patchworks_error() -> None:
    for name in patchworks_async.__all__:
        obj = getattr(patchworks_async, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, PatchworksError), name


def test_all_is_sorted_and_complete() -> None:
    assert patchworks_async.__all__ == sorted(patchworks_async.__all__)
    for name in patchworks_async.__all__:
        assert hasattr(patchworks_async, name)


def test_timeout_error_is_also_the_builtin() -> None:
    assert issubclass(patchworks_async.TimeoutError, builtins.TimeoutError)
    assert issubclass(patchworks_async.TimeoutError, patchworks_async.TransportError)


class TestHeaders:
    def test_rate_limit_headers_are_read_case_insensitively(self) -> None:
        headers = CIMultiDict({"x-ratelimit-limit": "240", "X-RateLimit-Remaining": "17"})
        status = parse_rate_limit(headers, now=0.0)
        assert status is not None
        assert (status.limit, status.remaining, status.retry_after) == (240, 17, None)

    def test_no_rate_limit_headers_means_none_not_a_guess(self) -> None:
        assert parse_rate_limit(CIMultiDict({"Content-Type": "application/json"}), now=0.0) is None

    def test_garbage_values_are_ignored(self) -> None:
        status = parse_rate_limit(CIMultiDict({"X-RateLimit-Limit": "lots"}), now=0.0)
        assert status is None

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("12", 12.0),
            ("0", 0.0),
            ("-3", 0.0),
            ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0),
            ("soon", None),
            ("nan", None),
            (None, None),
        ],
    )
    def test_retry_after_is_seconds_or_an_http_date(
        self, value: str | None, expected: float | None
    ) -> None:
        assert parse_retry_after(value, now=60.0) == expected


class TestBodies:
    def test_json_is_decoded_whatever_the_content_type_says(self) -> None:
        assert decode_body(b'{"a": 1}') == {"a": 1}

    def test_text_that_is_not_json_stays_text(self) -> None:
        assert decode_body(b"<html>oops</html>") == "<html>oops</html>"

    def test_an_empty_body_is_none(self) -> None:
        assert decode_body(b"  \n") is None

    def test_invalid_utf8_does_not_raise(self) -> None:
        assert isinstance(decode_body(b"\xff\xfe<html>"), str)
