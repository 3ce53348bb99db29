"""The protocol, pure: what a request is, how a reply reads, and what to do after each try.

No I/O and no event loop here. The transport sends; :func:`decide` says what the outcome of
one send means, and that one function is where "nothing starts twice" lives:

=========================================  ================  ===============  =============
what happened                              GET, PUT, DELETE  other requests   starts
=========================================  ================  ===============  =============
2xx, JSON (or empty, except a start)       return it         return it        return it
2xx that is not JSON (a proxy's page)      unexpected reply  outcome unknown  outcome unknown
429                                        pause all, again  pause all, again pause all, again
401 with a login token                     renew, again      renew, again     renew, again
connection never established               retry             retry            retry
timeout or connection lost after sending   retry             outcome unknown  outcome unknown
502, 503, 504                              retry             outcome unknown  outcome unknown
other 5xx                                  ServerError       outcome unknown  outcome unknown
other 4xx                                  its APIError      its APIError     its APIError
=========================================  ================  ===============  =============

"Outcome unknown" raises :class:`OutcomeUnknownError`, or retries a start when
``RetryPolicy(retry_ambiguous_starts=True)`` accepts the risk of a second run. A 429, a 401
and a connection never made prove the request was not processed, so resending them is
always safe; a pause or a renewal does not use up an attempt.
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import aiohttp
from attrs import field, frozen

from ._auth import Secret
from ._config import RequestKind, RetryPolicy
from ._errors import (
    AuthenticationError,
    OutcomeUnknownError,
    PatchworksError,
    TimeoutError,
    TransportError,
    UnexpectedResponseError,
    error_for_response,
)
from ._version import __version__

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "Action",
    "Decision",
    "LostInFlight",
    "NeverConnected",
    "Outcome",
    "RateLimitStatus",
    "Replied",
    "Request",
    "decide",
    "decide_login",
    "decode_body",
    "parse_rate_limit",
    "parse_retry_after",
    "user_agent",
]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
RETRYABLE_STATUSES: Final = frozenset({502, 503, 504})
DEFAULT_TOKEN_LIFETIME: Final = 3600.0
"""Assumed when a login reply does not say how long its token lives."""


def user_agent() -> str:
    """``patchworks-async/<version>``, with the aiohttp and Python versions."""
    python = ".".join(map(str, sys.version_info[:3]))
    return f"patchworks-async/{__version__} aiohttp/{aiohttp.__version__} python/{python}"


class Request(NamedTuple):
    """One request, as built once and sent (perhaps several times) by the transport.

    A tuple rather than an attrs class: it is built for every request, on the hot path.
    """

    method: str
    url: str
    params: Sequence[tuple[str, str]] | None
    body: bytes | None
    kind: RequestKind
    idempotent: bool
    raw_reply: bool = False
    """Return a 2xx body as the bytes that came (a payload download), not decoded."""

    @classmethod
    def build(
        cls,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        kind: RequestKind = RequestKind.ORDINARY,
        idempotent: bool | None = None,
        raw_reply: bool = False,
    ) -> Request:
        """A request; ``idempotent`` defaults by method (a start never is)."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS and kind is RequestKind.ORDINARY
        return cls(method, url, params, body, kind, idempotent, raw_reply)

    def __str__(self) -> str:
        return f"{self.method} {self.url}"

    def __repr__(self) -> str:  # the body (a payload) never reaches a log line
        return f"Request({self.method!r}, {self.url!r}, kind={self.kind.name})"


# ---------------------------------------------------------------------------- outcomes


@frozen
class Replied:
    """The server answered (any status). The body stays out of ``repr``: a login reply
    holds a token, and any other can be large."""

    status: int
    headers: Mapping[str, str]
    raw: bytes = field(repr=False)


@frozen
class NeverConnected:
    """The connection was never established: nothing of the request left."""

    cause: BaseException


@frozen
class LostInFlight:
    """The request may have left, and no usable reply came back (timeout, dropped)."""

    cause: BaseException
    timed_out: bool


Outcome = Replied | NeverConnected | LostInFlight


class Action(enum.Enum):
    """What the transport does next."""

    RETURN = "return"
    """Return ``Decision.body``."""
    PAUSE = "pause"
    """A 429: pause every sender for ``Decision.delay`` seconds, then send again."""
    RENEW = "renew"
    """A 401: renew the login token and send again, once; else raise ``Decision.error``."""
    RETRY = "retry"
    """Back off (``Decision.delay`` when the server named one) and try again."""
    RAISE = "raise"
    """Give up with ``Decision.error``."""


@frozen
class Decision:
    """What one outcome means.

    Attributes:
        action: What to do next.
        body: The decoded reply, for ``RETURN``.
        error: What to raise: for ``RAISE``, and for ``RETRY`` and ``RENEW`` when they
            cannot be done (attempts spent, nothing to renew).
        delay: Seconds to pause (``PAUSE``) or the server's ``Retry-After`` (``RETRY``).
        unprocessed: The server surely did not process this send (a 429, a 401, a
            connection never made): resending cannot do anything twice.
        rate_limit: The rate-limit headers of a 429, already parsed.
    """

    action: Action
    body: Any = None
    error: PatchworksError | None = None
    delay: float | None = None
    unprocessed: bool = False
    rate_limit: RateLimitStatus | None = None


def decide(
    request: Request,
    outcome: Outcome,
    *,
    retry: RetryPolicy,
    refusals: int,
    renewed: bool,
    now: float,
) -> Decision:
    """What the outcome of one send means for ``request``; see the module's table.

    Args:
        request: What was sent.
        outcome: What came of it.
        retry: The retry policy (how many 429s to wait through, ambiguous starts).
        refusals: The 429s this try has already waited through.
        renewed: Whether this try already renewed the token after a 401.
        now: The current epoch time, to read an HTTP-date ``Retry-After``.
    """
    if not isinstance(outcome, Replied):
        return _no_reply(request, outcome, retry)
    status = outcome.status
    if 200 <= status < 300:
        return _success(request, status, outcome.raw)
    body = decode_body(outcome.raw)
    if status == 429:
        return _refused(request, outcome, body, retry, refusals, now)
    error = error_for_response(
        status,
        body,
        headers=outcome.headers,
        method=request.method,
        url=request.url,
        sent_bytes=len(request.body) if request.body is not None else None,
    )
    if status == 401 and not renewed:
        return Decision(Action.RENEW, error=error, unprocessed=True)
    if status >= 500 and not request.idempotent:
        unknown = _chain(
            OutcomeUnknownError(
                f"{request} answered {status}; the server may have processed it",
                method=request.method,
                url=request.url,
                status=status,
            ),
            error,
        )
        action = Action.RETRY if _may_resend_ambiguous(request, retry) else Action.RAISE
        return Decision(action, error=unknown)
    if status in RETRYABLE_STATUSES:
        delay = parse_retry_after(outcome.headers.get("Retry-After"), now=now)
        return Decision(Action.RETRY, error=error, delay=delay)
    return Decision(Action.RAISE, error=error, unprocessed=status == 401)


def _may_resend_ambiguous(request: Request, retry: RetryPolicy) -> bool:
    if request.idempotent:
        return True
    return request.kind is not RequestKind.ORDINARY and retry.retry_ambiguous_starts


def _no_reply(
    request: Request, outcome: NeverConnected | LostInFlight, retry: RetryPolicy
) -> Decision:
    """No reply: resend when nothing left, or when what left may safely go twice."""
    cause = outcome.cause
    error: PatchworksError
    if isinstance(outcome, NeverConnected):
        error = TransportError(
            f"{request}: could not connect: {cause}", method=request.method, url=request.url
        )
        return Decision(Action.RETRY, error=_chain(error, cause), unprocessed=True)
    what = "timed out" if outcome.timed_out else f"failed: {type(cause).__name__}: {cause}"
    if request.idempotent:
        cls = TimeoutError if outcome.timed_out else TransportError
        error = cls(f"{request} {what}", method=request.method, url=request.url)
    else:
        error = OutcomeUnknownError(
            f"{request} {what} after it was sent; the server may have processed it",
            method=request.method,
            url=request.url,
        )
    action = Action.RETRY if _may_resend_ambiguous(request, retry) else Action.RAISE
    return Decision(action, error=_chain(error, cause))


def _success(request: Request, status: int, raw: bytes) -> Decision:
    """A 2xx: its body must be JSON (or empty, except for a start).

    A 2xx that is not JSON is no proof of anything: a proxy or a captive portal answers
    200 with a page of its own. For a request that is not idempotent that leaves its
    outcome unknown; a start must also say something, so an empty 2xx leaves it unknown too.
    """
    if request.raw_reply:
        return Decision(Action.RETURN, body=raw)
    empty = not raw or raw.isspace()
    if empty and request.kind is RequestKind.ORDINARY:
        return Decision(Action.RETURN)
    if not empty:
        try:
            return Decision(Action.RETURN, body=json.loads(raw))
        except ValueError:
            pass
    text = raw.decode("utf-8", errors="replace")
    what = "an empty body" if empty else f"a body that is not JSON: {_snippet(text)!r}"
    if request.idempotent:
        error: PatchworksError = UnexpectedResponseError(
            f"{request} answered {status} with {what}", body=text
        )
    else:
        error = OutcomeUnknownError(
            f"{request} answered {status} with {what}; that proves nothing, so the server "
            "may or may not have processed it",
            method=request.method,
            url=request.url,
            status=status,
        )
    return Decision(Action.RAISE, error=error)


def _refused(
    request: Request, reply: Replied, body: Any, retry: RetryPolicy, refusals: int, now: float
) -> Decision:
    """A 429 was not processed: pause every sender, then resend, up to a limit."""
    observed = parse_rate_limit(reply.headers, now=now)
    retry_after = observed.retry_after if observed else None
    if retry_after is None and observed is not None and observed.reset is not None:
        retry_after = max(0.0, observed.reset - now)
    if refusals + 1 > retry.max_rate_limited_waits:
        error = error_for_response(
            429,
            body,
            headers=reply.headers,
            method=request.method,
            url=request.url,
            retry_after=retry_after,
        )
        return Decision(Action.RAISE, error=error, unprocessed=True, rate_limit=observed)
    # Retry-After is whole seconds computed from whole-second clocks, so it can be up to a
    # second short: wait one more. Without it, back off exponentially from a second.
    if retry_after is not None:
        pause = retry_after + 1.0
    else:
        pause = min(max(retry.backoff_max, 1.0), 2.0**refusals)
    return Decision(Action.PAUSE, delay=pause, unprocessed=True, rate_limit=observed)


_LOGIN_RETRY: Final = RetryPolicy()
"""A login is idempotent: only its attempts matter, and the transport counts those."""


def decide_login(request: Request, outcome: Outcome) -> Decision:
    """What one login attempt means: a token (``RETURN`` with ``(token, lifetime)``), a
    retry (connection failures and 502/503/504), or :class:`AuthenticationError`, whose
    text names the URL and the server's reason, never the credentials."""
    if not isinstance(outcome, Replied):
        return _no_reply(request, outcome, _LOGIN_RETRY)
    status, body = outcome.status, decode_body(outcome.raw)
    token = body.get("token") if isinstance(body, Mapping) else None
    if 200 <= status < 300 and isinstance(token, str) and token:
        lifetime = body.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return Decision(Action.RETURN, body=(Secret(token), float(lifetime)))
    if status in RETRYABLE_STATUSES:
        error = error_for_response(
            status, body, headers=outcome.headers, method=request.method, url=request.url
        )
        return Decision(Action.RETRY, error=error)
    reason = body.get("message") if isinstance(body, Mapping) else None
    if not isinstance(reason, str) or not reason:
        reason = "the reply held no token" if status < 300 else f"HTTP {status}"
    error = AuthenticationError(
        f"login failed: {reason}",
        status=status,
        headers=outcome.headers,
        method=request.method,
        url=request.url,
    )
    return Decision(Action.RAISE, error=error)


def _chain(error: PatchworksError, cause: BaseException) -> PatchworksError:
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


def _snippet(text: str) -> str:
    return " ".join(text.split())[:120]


# ---------------------------------------------------------------------------- replies


@frozen
class RateLimitStatus:
    """The server's last word on the account's rate limit (``client.rate_limit``).

    Attributes:
        limit: ``X-RateLimit-Limit``: requests allowed per window by the tightest throttle.
        remaining: ``X-RateLimit-Remaining``: what is left of it after that response.
        retry_after: On a 429, seconds until the window ends (``Retry-After``).
        reset: On a 429, the end of the window in epoch seconds (``X-RateLimit-Reset``).
    """

    limit: int | None
    remaining: int | None
    retry_after: float | None = None
    reset: float | None = None


def decode_body(raw: bytes) -> Any:
    """JSON when the body parses as JSON, else its text, ``None`` when empty.

    Content-Type is not trusted: proxies label HTML as anything and APIs label JSON as text.
    """
    if not raw or raw.isspace():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` in seconds from ``now`` (epoch): delta-seconds or an HTTP date.

    Returns ``None`` when absent or unreadable, never a negative number.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_rate_limit(
    headers: Mapping[str, str], *, now: float, refused: bool = True
) -> RateLimitStatus | None:
    """The rate-limit headers of a response, or ``None`` when it carried none (no guessing).

    Args:
        headers: Response headers (a case-insensitive mapping).
        now: The current epoch time, to turn an HTTP-date ``Retry-After`` into seconds.
        refused: Whether this is a 429; only a refusal carries ``Retry-After`` and
            ``X-RateLimit-Reset``, so for other responses they are not looked for.
    """
    limit = _int_header(headers, "X-RateLimit-Limit")
    remaining = _int_header(headers, "X-RateLimit-Remaining")
    retry_after = parse_retry_after(headers.get("Retry-After"), now=now) if refused else None
    reset = _int_header(headers, "X-RateLimit-Reset") if refused else None
    if limit is None and remaining is None and retry_after is None and reset is None:
        return None
    return RateLimitStatus(
        limit=limit,
        remaining=remaining,
        retry_after=retry_after,
        reset=float(reset) if reset is not None else None,
    )
