"""Every exception the library raises, in one tree.

::

    PatchworksError
    ├── ConfigurationError (also ValueError)     bad arguments to the client
    ├── JournalMismatchError (also ValueError)   a bulk-start journal of other input
    ├── BatchStoppedError                        a bulk start stopped before the item left
    ├── RateLimiterUnavailableError              the shared (Redis) limiter cannot be reached
    ├── RateLimitTimeoutError (also builtins.TimeoutError)
    │                                            no rate-limit slot within max_wait; nothing sent
    ├── PayloadError (also ValueError)           blank or unserialisable payload, before sending
    │   └── PayloadTooLargeError                 body over max_body_bytes (.size, .limit);
    │                                            also the server's 413, so also an APIError
    ├── TransportError                           no usable response; nothing known processed
    │   └── TimeoutError (also builtins.TimeoutError)
    ├── OutcomeUnknownError                      a non-idempotent request (a start) may or may
    │                                            not have been processed
    ├── RunWaitTimeoutError (also builtins.TimeoutError)
    │                                            a flow run still running at the deadline
    ├── UnexpectedResponseError                  a success reply that does not have the
    │                                            expected shape (.field, .body)
    └── APIError (.status, .message, .errors, .headers, .body, .method, .url)
        ├── BadRequestError           400
        ├── AuthenticationError       401 (and a failed login)
        ├── PermissionDeniedError     403
        ├── NotFoundError             404
        ├── ConflictError             409
        ├── PayloadTooLargeError      413
        ├── UnsupportedMediaTypeError 415
        ├── ValidationError           422 (.errors: field -> messages)
        ├── RateLimitError            429 (.retry_after)
        └── ServerError               5xx

Errors carry data, not only a message, and never a credential: no request header is kept.
:func:`error_for_response` is the one place that maps a status to a class.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchStoppedError",
    "ConfigurationError",
    "ConflictError",
    "JournalMismatchError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PatchworksError",
    "PayloadError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitTimeoutError",
    "RateLimiterUnavailableError",
    "RequestTimeoutError",
    "RunWaitTimeoutError",
    "ServerError",
    "TimeoutError",
    "TransportError",
    "UnexpectedResponseError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "error_for_response",
]


class PatchworksError(Exception):
    """The base of every exception this library raises."""


class ConfigurationError(PatchworksError, ValueError):
    """The client was given arguments it cannot work with."""


class JournalMismatchError(PatchworksError, ValueError):
    """The input or the target no longer matches the journal of an earlier run.

    Resuming would risk starting something different under an old index (or the same
    thing twice), so nothing is sent. Use a new journal file for new input.
    """


class RateLimiterUnavailableError(PatchworksError):
    """The shared rate limiter's Redis cannot be reached, so nothing was sent.

    Raised by ``RedisRateLimiter.acquire`` (and so by any request) when
    ``on_unavailable="fail"``. The message names the Redis host, never a password; the
    ``__cause__`` is the error from redis-py.

    Attributes:
        host: The Redis server, as ``host:port`` (or ``unix:/path``).
    """

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.message = message
        self.host = host


class RateLimitTimeoutError(PatchworksError, builtins.TimeoutError):
    """No rate-limit slot came within ``max_wait`` seconds, so nothing was sent.

    It is always safe to try again later. A web handler typically answers 503 with
    ``Retry-After: retry_after``.

    Attributes:
        max_wait: The wait allowed, in seconds.
        retry_after: Seconds until a slot is expected to be free, when the limiter can
            tell (the in-process one can), else ``None``.
    """

    def __init__(self, message: str, *, max_wait: float, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.max_wait = max_wait
        self.retry_after = retry_after


class BatchStoppedError(PatchworksError):
    """A bulk start was stopped before this item's request left; a re-run sends it."""


class PayloadError(PatchworksError, ValueError):
    """A payload is blank or cannot be serialised; raised before anything is sent."""


class TransportError(PatchworksError):
    """No usable response arrived (connection refused, reset, unreadable reply).

    For an idempotent request this is raised once retries are exhausted. For a start it is
    raised only when the request surely never reached the server; otherwise the start raises
    :class:`OutcomeUnknownError`.
    """

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url


class TimeoutError(TransportError, builtins.TimeoutError):
    """The request did not complete within the client's timeout.

    Also exported as ``RequestTimeoutError``: ``from patchworks_async import *`` brings
    that name, not this one, so that it never shadows the builtin ``TimeoutError``.
    """


RequestTimeoutError = TimeoutError


class OutcomeUnknownError(PatchworksError):
    """A non-idempotent request (a flow start) may or may not have been processed.

    Raised when the request was sent but no trustworthy answer came back: a timeout after the
    connection was made, a dropped connection, or a 5xx. Resending could start the flow twice,
    so the client does not, unless ``RetryPolicy(retry_ambiguous_starts=True)`` says it may.
    The underlying failure is the ``__cause__``; ``status`` is set when a 5xx was received.
    """

    def __init__(self, message: str, *, method: str, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url
        self.status = status


class RunWaitTimeoutError(PatchworksError, builtins.TimeoutError):
    """A flow run had not finished when ``flow_runs.wait()`` stopped waiting.

    Attributes:
        run_id: The run waited for.
        last_status: The status seen at the last poll.
    """

    def __init__(self, message: str, *, run_id: int | str, last_status: object) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.last_status = last_status


class UnexpectedResponseError(PatchworksError):
    """A successful reply did not have the shape the client expects.

    Attributes:
        field: The path of the offending field (``data.versions[2].id``), when known.
        body: The decoded reply.
    """

    def __init__(self, message: str, *, field: str | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.body = body


class APIError(PatchworksError):
    """The server answered with an error status.

    Attributes:
        status: The HTTP status code.
        message: The server's ``message``, or a description when the body had none.
        errors: For a 422, field name -> list of messages; otherwise empty.
        headers: The response headers (never the request's, which hold the credential).
        body: The decoded JSON body, or the raw text when it was not JSON.
        method: The request method.
        url: The request URL.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors: dict[str, list[str]] = dict(errors or {})
        self.headers: dict[str, str] = dict(headers or {})
        self.body = body
        self.method = method
        self.url = url

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.method else ""
        return f"{self.status} {self.message}{where}"


class BadRequestError(APIError):
    """400: the request was malformed."""


class AuthenticationError(APIError):
    """401: the API key or token is invalid, expired or revoked, or the login failed."""


class PermissionDeniedError(APIError):
    """403: authenticated, but not allowed to do this."""


class NotFoundError(APIError):
    """404: no such resource or endpoint."""


class ConflictError(APIError):
    """409: the resource already exists."""


class UnsupportedMediaTypeError(APIError):
    """415: the server refused the request's Content-Type."""


class ValidationError(APIError):
    """422: the server refused the request's content; ``errors`` says which field and why."""


class RateLimitError(APIError):
    """429: the server's rate limit was hit more often than the client would wait for it.

    The client normally absorbs a 429 by pausing and resending; this surfaces only when the
    server keeps refusing. ``retry_after`` is the server's ``Retry-After`` in seconds, if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server failed."""


class PayloadTooLargeError(PayloadError, APIError):
    """The request body is larger than the limit.

    Raised by the client before sending when the exact body would exceed
    ``max_body_bytes``, or mapped from the server's 413, which means the server's limit is
    lower than the client's. ``status`` is 413 either way (what the server would say), so
    code that sorts errors by status keeps working; ``refused_by_server`` tells them apart.

    Attributes:
        size: The size in bytes of the body that is, or would have been, sent.
        limit: The limit in bytes it broke, when known.
        index: For :func:`chunk_records`, the index of the record that is too large alone.
        refused_by_server: False when the client refused it before sending.
    """

    def __init__(
        self,
        size: int | None,
        limit: int | None,
        *,
        message: str | None = None,
        index: int | None = None,
        status: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.size = size
        self.limit = limit
        self.index = index
        if message is None:
            which = f"record {index}: " if index is not None else ""
            message = (
                f"{which}request body of {size} bytes exceeds the limit of {limit} bytes; "
                "split the data and send it in several calls"
            )
        APIError.__init__(self, message, status=413, **kwargs)
        self.refused_by_server = status is not None

    def __str__(self) -> str:
        return APIError.__str__(self) if self.refused_by_server else self.message


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    429: RateLimitError,
}


def _messages(value: object) -> list[str]:
    """Normalise one field's 422 errors: Laravel sends strings, Patchworks also ``{rule: why}``."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            out.extend(f"{rule}: {why}" for rule, why in item.items())
        else:
            out.append(str(item))
    return out


def error_for_response(
    status: int,
    body: Any,
    *,
    headers: Mapping[str, str],
    method: str,
    url: str,
    sent_bytes: int | None = None,
    retry_after: float | None = None,
) -> APIError:
    """Build the exception for an error response: the one place statuses become classes.

    Args:
        status: The HTTP status (4xx or 5xx).
        body: The decoded JSON body, the text of a non-JSON body, or ``None`` when empty.
        headers: The response headers.
        method: The request method.
        url: The request URL.
        sent_bytes: The size of the request body, reported by a 413.
        retry_after: The parsed ``Retry-After``, reported by a 429.
    """
    message = ""
    errors: dict[str, list[str]] = {}
    if isinstance(body, Mapping):
        raw_message = body.get("message")
        message = raw_message if isinstance(raw_message, str) else ""
        raw_errors = body.get("errors")
        if isinstance(raw_errors, Mapping):
            errors = {str(field): _messages(value) for field, value in raw_errors.items()}
    if not message:
        message = _fallback_message(status, body)
    common: dict[str, Any] = {
        "errors": errors,
        "headers": headers,
        "body": body,
        "method": method,
        "url": url,
    }
    if status == 413:
        return PayloadTooLargeError(sent_bytes, None, message=message, status=413, **common)
    if status == 429:
        return RateLimitError(message, retry_after=retry_after, status=status, **common)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(message, status=status, **common)


def _fallback_message(status: int, body: Any) -> str:
    """Describe an error whose body had no ``message`` (an empty body, a proxy's HTML page)."""
    if body is None or body == "":
        return f"HTTP {status} with an empty body"
    if isinstance(body, str):
        snippet = " ".join(body.split())[:120]
        return f"HTTP {status} with a non-JSON body: {snippet!r}"
    return f"HTTP {status}"
