"""The one place requests are built and sent: limit -> send -> decode -> retry.

Every request, retries and replays included, takes a rate-limit token immediately before its
bytes leave. What happens after a failure depends on whether repeating the request is safe:

* idempotent requests (GET, PUT, PATCH, DELETE) are retried on connection errors, timeouts
  and 502/503/504, with exponential backoff and full jitter (``backoff``);
* a start, or any other non-idempotent request, is retried only when it surely was not
  processed: a 429, or a connection that was never established. Otherwise (timeout after
  sending, dropped connection, any 5xx) it raises :class:`OutcomeUnknownError`, unless
  ``RetryPolicy(retry_ambiguous_starts=True)`` allows resending starts;
* a 429 is not a failure of the request: every sender pauses until ``Retry-After + 1``
  (the header is whole seconds and can be a second short), then it is sent again. It does
  not use up an attempt;
* a 401 with login credentials renews the token once and replays the request once.
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol, cast

import aiohttp
import backoff

from ._auth import Auth
from ._config import RetryPolicy
from ._errors import (
    AuthenticationError,
    OutcomeUnknownError,
    PatchworksError,
    TransportError,
    UnexpectedResponseError,
    error_for_response,
)
from ._errors import (
    TimeoutError as RequestTimeoutError,
)
from ._http import RateLimitStatus, decode_body, parse_rate_limit, parse_retry_after
from ._payload import dumps_compact
from ._ratelimit import RateLimiter, RequestKind
from ._version import __version__

__all__ = ["SendObserver", "Transport", "user_agent"]

logger = logging.getLogger("patchworks_async")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
DEFAULT_TOKEN_LIFETIME = 3600.0
"""Assumed when a login reply does not say how long its token lives."""
NEVER_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
"""aiohttp failures that prove the request never left: safe to resend even a start."""
STREAMED_BODY_BYTES: Final = 1 << 20
"""Bodies larger than this go to aiohttp as a stream (``io.BytesIO``), as aiohttp asks:
handed over as raw bytes they draw a ``ResourceWarning`` (an error under ``-W error``)."""


class SendObserver(Protocol):
    """Follows one request through the transport, and may give it up before it waits again.

    Bulk starts use it to journal a start at the moment of truth (its slot granted, its
    bytes about to leave), and to know, when they stop, which requests may have reached
    the server and which surely did not.
    """

    def waiting(self) -> None:
        """The request is about to wait for its credential and a rate-limit slot.

        Raise to give the request up instead; nothing of it is sent.
        """
        ...

    async def sending(self) -> None:
        """The slot is granted: the bytes leave as soon as this returns."""
        ...

    def not_processed(self) -> None:
        """The server surely did not process the last send (429, 401, never connected)."""
        ...


def user_agent() -> str:
    """``patchworks-async/<version>``, with the aiohttp and Python versions."""
    python = ".".join(map(str, sys.version_info[:3]))
    return f"patchworks-async/{__version__} aiohttp/{aiohttp.__version__} python/{python}"


class _Request(NamedTuple):
    """One request as built by :meth:`Transport.request` (a tuple: cheap on the hot path)."""

    method: str
    url: str
    params: Sequence[tuple[str, str]] | None
    body: bytes | None
    kind: RequestKind
    idempotent: bool
    observer: SendObserver | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.url}"

    def __repr__(self) -> str:  # the body (a payload) never reaches a log line
        return f"_Request({self.method!r}, {self.url!r}, kind={self.kind.name})"


class _Retry(Exception):
    """Carries a retryable failure through ``backoff``; unwrapped when attempts run out."""

    def __init__(self, error: PatchworksError, *, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _success_body(request: _Request, status: int, raw: bytes) -> Any:
    """The decoded body of a 2xx, which must be JSON (or empty, except for a start).

    A 2xx that is not JSON is no proof of anything: a proxy or a captive portal answers 200
    with a page of its own. For a request that is not idempotent that leaves its outcome
    unknown; a start must also say something, so an empty 2xx leaves it unknown too.
    """
    empty = not raw or raw.isspace()
    if empty and request.kind is RequestKind.ORDINARY:
        return None
    if not empty:
        try:
            return json.loads(raw)
        except ValueError:
            pass
    text = raw.decode("utf-8", errors="replace")
    what = "an empty body" if empty else f"a body that is not JSON: {_snippet(text)!r}"
    if request.idempotent:
        raise UnexpectedResponseError(f"{request} answered {status} with {what}", body=text)
    raise OutcomeUnknownError(
        f"{request} answered {status} with {what}; that proves nothing, so the server may or "
        "may not have processed it",
        method=request.method,
        url=request.url,
        status=status,
    )


def _snippet(text: str) -> str:
    return " ".join(text.split())[:120]


def _chain(error: PatchworksError, cause: BaseException) -> PatchworksError:
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


class Transport:
    """Sends requests for one client. Created by the client inside its running loop."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        auth: Auth,
        limiter: RateLimiter,
        retry: RetryPolicy,
        timeout: float,
    ) -> None:
        self.session = session
        self.auth = auth
        self.limiter = limiter
        self.retry = retry
        self._rate_status: RateLimitStatus | None = None
        # The headers of the last response that had rate-limit ones, parsed only when read.
        self._rate_headers: Mapping[str, str] | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._base_headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
        }
        retrying = backoff.on_exception(
            cast(Callable[..., Generator[float, None, None]], self._delays),
            _Retry,
            max_tries=retry.attempts,
            jitter=None,
            on_backoff=self._log_retry,
            logger=None,
        )
        self._with_retries = retrying(self._retry)
        self._login_with_retries = retrying(self._login_attempt)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        kind: RequestKind = RequestKind.ORDINARY,
        idempotent: bool | None = None,
        observer: SendObserver | None = None,
    ) -> Any:
        """Send one API request and return its decoded body (``None`` when empty).

        Args:
            method: The HTTP method.
            url: The full URL.
            params: Query parameters, in order.
            body: The exact JSON bytes to send.
            kind: Which rate-limit buckets the request draws from.
            idempotent: Whether repeating it is harmless; defaults by method.
            observer: Told when the request waits, leaves, and is surely unprocessed.

        Raises:
            OutcomeUnknownError: a non-idempotent request may have been processed; among
                other cases, a 2xx whose body is not JSON (a proxy's page proves nothing).
            UnexpectedResponseError: an idempotent request got a 2xx that is not JSON.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS and kind is RequestKind.ORDINARY
        request = _Request(method, url, params, body, kind, idempotent, observer)
        try:
            # The first try runs outside backoff's machinery, which costs more than the rest
            # of the client's per-request work; only a retryable failure enters it.
            return await self._attempt(request)
        except _Retry as failure:
            if self.retry.attempts <= 1:
                raise failure.error from failure.error.__cause__
            first_failure = [failure]
        try:
            return await self._with_retries(request, first_failure)
        except _Retry as exhausted:
            raise exhausted.error from exhausted.error.__cause__

    async def _retry(self, request: _Request, first_failure: list[_Retry]) -> Any:
        """What backoff retries: replays the first try's failure so it counts as try 1."""
        if first_failure:
            raise first_failure.pop()
        return await self._attempt(request)

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The last rate-limit headers seen (parsed here, off the per-request path)."""
        if self._rate_headers is not None:
            observed = parse_rate_limit(self._rate_headers, now=time.time(), refused=False)
            self._rate_status = observed or self._rate_status
            self._rate_headers = None
        return self._rate_status

    def _may_resend_ambiguous(self, request: _Request) -> bool:
        if request.idempotent:
            return True
        return request.kind is not RequestKind.ORDINARY and self.retry.retry_ambiguous_starts

    async def _attempt(self, request: _Request) -> Any:
        """One try: as many sends as 429 pauses and one 401 replay need."""
        rate_limited = 0
        replayed = False
        observer = request.observer
        while True:
            if observer is not None:
                observer.waiting()
            authorization = await self.auth.authorization()
            await self.limiter.acquire(request.kind)
            if observer is not None:
                await observer.sending()
            started = time.monotonic()
            status, headers, raw = await self._send(request, authorization)
            if "X-RateLimit-Remaining" in headers or "X-RateLimit-Limit" in headers:
                self._rate_headers = headers
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s -> %d in %.3fs", request, status, time.monotonic() - started)
            if 200 <= status < 300:
                return _success_body(request, status, raw)
            body = decode_body(raw)
            if observer is not None and status in (401, 429):
                observer.not_processed()  # refused before any processing
            if status == 429:
                now = time.time()
                observed = parse_rate_limit(headers, now=now)
                self._rate_status, self._rate_headers = observed, None
                rate_limited += 1
                retry_after = observed.retry_after if observed else None
                if retry_after is None and observed is not None and observed.reset is not None:
                    retry_after = max(0.0, observed.reset - now)
                if rate_limited > self.retry.max_rate_limited_waits:
                    raise error_for_response(
                        status,
                        body,
                        headers=headers,
                        method=request.method,
                        url=request.url,
                        retry_after=retry_after,
                    )
                pause = self._rate_limit_pause(retry_after, rate_limited)
                logger.warning(
                    "%s was refused with 429; pausing every request for %.1fs", request, pause
                )
                await self.limiter.pause(pause)
                continue
            if status == 401 and not replayed:
                replayed = True
                if await self.auth.renew_after_rejection(authorization):
                    logger.info("%s -> 401; renewed the login token, replaying once", request)
                    continue
            error = error_for_response(
                status,
                body,
                headers=headers,
                method=request.method,
                url=request.url,
                sent_bytes=len(request.body) if request.body is not None else None,
            )
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
                if self._may_resend_ambiguous(request):
                    raise _Retry(unknown)
                raise unknown
            if status in RETRYABLE_STATUSES and request.idempotent:
                retry_after = parse_retry_after(headers.get("Retry-After"), now=time.time())
                raise _Retry(error, retry_after=retry_after)
            raise error

    def _rate_limit_pause(self, retry_after: float | None, refusals: int) -> float:
        """How long every sender waits after a 429.

        ``Retry-After`` is whole seconds computed from whole-second clocks, so it can be up
        to a second short: wait one more. Without it, back off exponentially from a second.
        """
        if retry_after is not None:
            return retry_after + 1.0
        return min(max(self.retry.backoff_max, 1.0), 2.0 ** (refusals - 1))

    async def _send(
        self, request: _Request, authorization: str | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Put the request on the wire and read the whole reply; map aiohttp's failures."""
        headers = dict(self._base_headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        body = request.body
        data = io.BytesIO(body) if body is not None and len(body) > STREAMED_BODY_BYTES else body
        try:
            async with self.session.request(
                request.method,
                request.url,
                params=request.params,
                data=data,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                raise_for_status=False,
            ) as response:
                raw = await response.read()
                return response.status, response.headers, raw
        except NEVER_CONNECTED as exc:
            if request.observer is not None:
                request.observer.not_processed()
            error = TransportError(
                f"{request}: could not connect: {exc}", method=request.method, url=request.url
            )
            raise _Retry(_chain(error, exc)) from exc
        except (aiohttp.ClientError, builtins.TimeoutError) as exc:
            raise self._ambiguous_failure(request, exc) from exc

    def _ambiguous_failure(self, request: _Request, exc: BaseException) -> BaseException:
        """A failure after the request may have reached the server."""
        timed_out = isinstance(exc, builtins.TimeoutError)
        what = "timed out" if timed_out else f"failed: {type(exc).__name__}: {exc}"
        if request.idempotent:
            cls = RequestTimeoutError if timed_out else TransportError
            error: PatchworksError = cls(
                f"{request} {what}", method=request.method, url=request.url
            )
        else:
            error = OutcomeUnknownError(
                f"{request} {what} after it was sent; the server may have processed it",
                method=request.method,
                url=request.url,
            )
        _chain(error, exc)
        if self._may_resend_ambiguous(request):
            return _Retry(error)
        return error

    def _delays(self) -> Generator[float, _Retry, None]:
        """Backoff delays: the server's ``Retry-After`` when it gave one, else jittered expo."""
        failure = yield 0.0  # primed by backoff with None
        tries = 0
        while True:
            if failure.retry_after is not None:
                delay = failure.retry_after
            else:
                ceiling = min(self.retry.backoff_max, self.retry.backoff_base * 2.0**tries)
                delay = random.uniform(0.0, ceiling)
            tries += 1
            failure = yield delay

    @staticmethod
    def _log_retry(details: Any) -> None:
        request, failure = details["args"][0], details["exception"]
        logger.warning(
            "%s failed (%s); retry %d in %.2fs",
            request,
            failure.error,
            details["tries"],
            details["wait"],
        )

    async def login(self, url: str, email: str, password: str) -> tuple[str, float]:
        """POST the login URL; return the token and its lifetime in seconds.

        Not rate limited: login belongs to another service with its own limits. Connection
        failures and 502/503/504 are retried like an idempotent request; a refusal raises
        :class:`AuthenticationError` whose text names the URL, never the credentials.
        """
        body = dumps_compact({"email": email, "password": password}).encode()
        request = _Request("POST", url, None, body, RequestKind.ORDINARY, idempotent=True)
        try:
            return await self._login_with_retries(request)
        except _Retry as exhausted:
            raise exhausted.error from exhausted.error.__cause__

    async def _login_attempt(self, request: _Request) -> tuple[str, float]:
        status, headers, raw = await self._send(request, authorization=None)
        body = decode_body(raw)
        token = body.get("token") if isinstance(body, Mapping) else None
        if 200 <= status < 300 and isinstance(token, str) and token:
            lifetime = body.get("expires_in")
            if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
                lifetime = DEFAULT_TOKEN_LIFETIME
            return token, float(lifetime) if lifetime > 0 else DEFAULT_TOKEN_LIFETIME
        if status in RETRYABLE_STATUSES:
            raise _Retry(
                error_for_response(
                    status, body, headers=headers, method=request.method, url=request.url
                )
            )
        reason = body.get("message") if isinstance(body, Mapping) else None
        if not isinstance(reason, str) or not reason:
            reason = "the reply held no token" if status < 300 else f"HTTP {status}"
        raise AuthenticationError(
            f"login failed: {reason}",
            status=status,
            headers=headers,
            method=request.method,
            url=request.url,
        )
