"""The thin loop that sends: credential -> slot -> send -> decide -> act.

Every request, retries and replays included, takes a rate-limit slot immediately before its
bytes leave. What an outcome means is not decided here: :func:`._protocol.decide` says it,
and this module only acts on the answer. Retries go through ``backoff`` as its docs mean it:
``on_exception`` with a ``giveup`` that asks the decision, and a wait generator that takes a
``Retry-After`` from the server over its own jittered exponential delays.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import inspect
import io
import logging
import random
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Final, Protocol, TypeVar, cast

import aiohttp
import backoff

from ._auth import Auth, SecretBytes
from ._config import CallOptions, Priority, RequestKind, RetryPolicy
from ._errors import RateLimitTimeoutError
from ._payload import dumps_compact
from ._protocol import (
    Action,
    Decision,
    LostInFlight,
    NeverConnected,
    Outcome,
    RateLimitStatus,
    Replied,
    Request,
    decide,
    decide_login,
    parse_rate_limit,
    user_agent,
)
from ._ratelimit import Grant, RateLimiter

__all__ = ["SendObserver", "Transport"]

T = TypeVar("T")

logger = logging.getLogger("patchworks_async")

NEVER_CONNECTED: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
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


class _Failed(Exception):
    """A try that did not succeed, carrying the decision; backoff retries or gives up."""

    def __init__(self, decision: Decision) -> None:
        assert decision.error is not None
        super().__init__(str(decision.error))
        self.decision = decision


def _takes_priority(limiter: RateLimiter) -> bool:
    """Whether the limiter's ``acquire`` takes ``priority=`` (the protocol leaves it out)."""
    try:
        parameters = inspect.signature(limiter.acquire).parameters
    except (TypeError, ValueError):
        return False
    return "priority" in parameters


def _tell(grant: Grant, outcome: Outcome) -> None:
    """Tell the limiter how the request it allowed fared."""
    if isinstance(outcome, Replied):
        grant.replied(outcome.status, outcome.headers)
    else:
        grant.unanswered(maybe_counted=isinstance(outcome, LostInFlight))


def _give_up(failure: Exception) -> bool:
    """Backoff's ``giveup``: only what the decision calls retryable is tried again."""
    return not isinstance(failure, _Failed) or failure.decision.action is not Action.RETRY


class Transport:
    """Sends requests for one client. Created by the client inside its running loop."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        auth: Auth,
        limiter: RateLimiter,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self.auth = auth
        self.limiter = limiter
        self._rate_status: RateLimitStatus | None = None
        # The headers of the last response that had rate-limit ones, parsed only when read.
        self._rate_headers: Mapping[str, str] | None = None
        self._base_headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
            **(headers or {}),
        }
        self._limiter_takes_priority = _takes_priority(limiter)
        # Per retry policy (few: a client's own, and those of its with_options views).
        self._retrying: dict[RetryPolicy, Callable[..., Awaitable[Any]]] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _with_retries(self, retry: RetryPolicy, attempt: Callable[..., Awaitable[T]]) -> Any:
        """``attempt`` wrapped by backoff for ``retry``: the tries, the waits, the log."""
        delays = cast(Callable[..., Generator[float, None, None]], self._delays)
        return backoff.on_exception(
            functools.partial(delays, retry),
            _Failed,
            max_tries=retry.attempts,
            giveup=_give_up,
            jitter=None,
            on_backoff=self._log_retry,
            logger=None,
        )(attempt)

    async def request(
        self,
        request: Request,
        options: CallOptions,
        observer: SendObserver | None = None,
    ) -> Any:
        """Send ``request`` and return its decoded body (``None`` when empty).

        Args:
            request: What to send.
            options: The timeout, slot wait, retry policy and priority to send it with.
            observer: Told when the request waits, leaves, and is surely unprocessed.

        Raises:
            RateLimitTimeoutError: no slot within ``options.max_wait``; nothing was sent.
            PatchworksError: what :func:`._protocol.decide` said, once retries are spent.
        """
        retrying = self._retrying.get(options.retry)
        if retrying is None:
            retrying = self._retrying[options.retry] = self._with_retries(options.retry, self._try)
        try:
            return await retrying(request, options, observer)
        except _Failed as failed:
            error = failed.decision.error
            assert error is not None
            raise error from error.__cause__

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The last rate-limit headers seen (parsed here, off the per-request path)."""
        if self._rate_headers is not None:
            observed = parse_rate_limit(self._rate_headers, now=time.time(), refused=False)
            self._rate_status = observed or self._rate_status
            self._rate_headers = None
        return self._rate_status

    async def _try(
        self, request: Request, options: CallOptions, observer: SendObserver | None
    ) -> Any:
        """One try: as many sends as 429 pauses and one token renewal need."""
        refusals = 0
        renewed = False
        while True:
            if observer is not None:
                observer.waiting()
            authorization = await self.auth.authorization()
            grant = await self._slot(request, options)
            try:
                if observer is not None:
                    await observer.sending()
                outcome = await self._send(request, authorization, self._timeout(options.timeout))
            except BaseException:
                # Cancelled (or stopped by the observer) before a reply: the limiter must
                # not count the request in flight for ever.
                if grant is not None:
                    grant.unanswered(maybe_counted=True)
                raise
            if grant is not None:
                _tell(grant, outcome)
            decision = decide(
                request,
                outcome,
                retry=options.retry,
                refusals=refusals,
                renewed=renewed,
                now=time.time(),
            )
            if decision.unprocessed and observer is not None:
                observer.not_processed()
            if decision.action is Action.RETURN:
                return decision.body
            if decision.action is Action.PAUSE:
                refusals += 1
                self._rate_status, self._rate_headers = decision.rate_limit, None
                assert decision.delay is not None
                logger.warning(
                    "%s was refused with 429; pausing every request for %.1fs",
                    request,
                    decision.delay,
                )
                await self.limiter.pause(decision.delay)
                continue
            if decision.action is Action.RENEW:
                renewed = True
                if await self.auth.renew_after_rejection(authorization):
                    logger.info("%s -> 401; renewed the login token, replaying once", request)
                    continue
                decision = Decision(Action.RAISE, error=decision.error)
            raise _Failed(decision)

    async def _slot(self, request: Request, options: CallOptions) -> Grant | None:
        """Wait for a rate-limit slot, at most ``options.max_wait`` seconds."""
        acquire: Callable[..., Awaitable[Grant | None]] = self.limiter.acquire
        kind = request.kind
        if options.priority is not Priority.NORMAL and self._limiter_takes_priority:
            acquire = functools.partial(acquire, priority=options.priority)
        if options.max_wait is None:
            return await acquire(kind)
        try:
            async with asyncio.timeout(options.max_wait):
                return await acquire(kind)
        except builtins.TimeoutError:
            estimate = getattr(self.limiter, "estimated_wait", None)
            raise RateLimitTimeoutError(
                f"{request}: no rate-limit slot came within {options.max_wait:g} s, so "
                "nothing was sent; try again later",
                max_wait=options.max_wait,
                retry_after=estimate(kind) if callable(estimate) else None,
            ) from None

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def _send(
        self,
        request: Request,
        authorization: str | None,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's own, per request
    ) -> Outcome:
        """Put the request on the wire and read the whole reply; no aiohttp error escapes."""
        headers = dict(self._base_headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        body = request.body
        # A fresh stream per send: a retry reads the body again from its start.
        data = io.BytesIO(body) if body is not None and len(body) > STREAMED_BODY_BYTES else body
        started = time.monotonic()
        try:
            async with self.session.request(
                request.method,
                request.url,
                params=request.params,
                data=data,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                raise_for_status=False,
            ) as response:
                raw = await response.read()
        except NEVER_CONNECTED as exc:
            return NeverConnected(exc)
        except (aiohttp.ClientError, builtins.TimeoutError) as exc:
            return LostInFlight(exc, timed_out=isinstance(exc, builtins.TimeoutError))
        if "X-RateLimit-Remaining" in response.headers or "X-RateLimit-Limit" in response.headers:
            self._rate_headers = response.headers
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s -> %d in %.3fs", request, response.status, time.monotonic() - started
            )
        return Replied(response.status, response.headers, raw)

    @staticmethod
    def _delays(retry: RetryPolicy) -> Generator[float, _Failed, None]:
        """Backoff delays: the server's ``Retry-After`` when it gave one, else jittered expo."""
        failure = yield 0.0  # primed by backoff with None
        tries = 0
        while True:
            if failure.decision.delay is not None:
                delay = failure.decision.delay
            else:
                ceiling = min(retry.backoff_max, retry.backoff_base * 2.0**tries)
                delay = random.uniform(0.0, ceiling)
            tries += 1
            failure = yield delay

    @staticmethod
    def _log_retry(details: Any) -> None:
        request, failure = details["args"][0], details["exception"]
        logger.warning(
            "%s failed (%s); retry %d in %.2fs",
            request,
            failure.decision.error,
            details["tries"],
            details["wait"],
        )

    async def login(
        self, url: str, email: str, password: str, options: CallOptions
    ) -> tuple[str, float]:
        """POST the login URL; return the token and its lifetime in seconds.

        The body carries the login as both ``email`` and ``username``: the Fabric endpoint
        documents the first, the app's ``/fabric/api/login`` the second.

        Not rate limited: login belongs to another service with its own limits. Connection
        failures and 502/503/504 are retried like an idempotent request; a refusal raises
        :class:`AuthenticationError` whose text names the URL, never the credentials.
        """
        # The two documented login endpoints name the first field differently (email,
        # username); each reads its own and ignores the other, so both are sent.
        body = SecretBytes(
            dumps_compact({"email": email, "username": email, "password": password}).encode()
        )
        request = Request("POST", url, None, body, RequestKind.ORDINARY, idempotent=True)
        login = self._with_retries(options.retry, self._login_try)
        try:
            token: tuple[str, float] = await login(request, self._timeout(options.timeout))
        except _Failed as failed:
            error = failed.decision.error
            assert error is not None
            raise error from error.__cause__
        return token

    async def _login_try(
        self, request: Request, timeout: aiohttp.ClientTimeout  # noqa: ASYNC109
    ) -> tuple[str, float]:
        decision = decide_login(request, await self._send(request, None, timeout))
        if decision.action is Action.RETURN:
            token: tuple[str, float] = decision.body
            return token
        raise _Failed(decision)
