"""The aiohttp side of the fake, shared by every step of the request pipeline.

Laravel answers the whole API in JSON, errors included (``{"message": ...}``, and 422s in
its validation format), so every part of the fake builds its replies here rather than
through aiohttp's HTML error pages. The rest is what an in-flight handler needs: the
request as the pipeline sees it (``Call``), its body read without holding an oversize one
in memory, a way to drop the connection without replying, and sleeps that end when the
fake closes so that ``close()`` never hangs.

The Core API resources know nothing of aiohttp; ``core_handler`` is the one adapter that
turns their ``CoreRequest -> Reply`` routes into handlers of this pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn, TypeAlias

import attrs
from aiohttp import web

from ._laravel_query import php_query, validation_body
from ._resources import CoreRequest, CoreRoute, Reply
from ._routes import RouteKind

__all__ = [
    "Call",
    "Handler",
    "Shutdown",
    "core_handler",
    "drop_connection",
    "json_response",
    "message_response",
    "parse_object",
    "read_body",
    "reply_response",
    "validation_response",
]

#: Seconds a dropping handler waits for aiohttp to cancel it after the transport closed.
_DROP_GRACE: Final = 1.0


@attrs.frozen
class Call:
    """What every step of the pipeline needs to know about the request being handled.

    Attributes:
        request: The aiohttp request.
        body: Its body (for an oversize one, only the first ``max_body_bytes + 1`` bytes).
        kind: The part of the API its path targets, or None outside the API.
        at: ``time.monotonic()`` when it had fully arrived: the instant the throttle counts.
    """

    request: web.Request
    body: bytes
    kind: RouteKind | None
    at: float


Handler: TypeAlias = Callable[[Call, Mapping[str, str]], web.Response]
"""A route's logic in the pipeline: the call and its path parameters in, a response out."""


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    """Build a JSON response (Laravel always answers the API in JSON)."""
    return web.json_response(data, status=status, headers=headers)


def message_response(status: int, message: str) -> web.Response:
    """Build the ``{"message": ...}`` error body every Patchworks error uses."""
    return json_response(status, {"message": message})


def validation_response(errors: Mapping[str, list[str]]) -> web.Response:
    """Build a 422 in Laravel's format, including its "(and N more errors)" summary."""
    return json_response(422, validation_body(errors))


def reply_response(reply: Reply) -> web.Response:
    """A resource's ``Reply`` as a response; no body at all for a 204, as Laravel sends it.

    A reply of bytes (a payload download) goes out as they are, with its content type.
    """
    if reply.raw is not None:
        return web.Response(status=reply.status, body=reply.raw, content_type=reply.content_type)
    if reply.body is None:
        return web.Response(status=reply.status)
    return json_response(reply.status, reply.body)


def parse_object(body: bytes) -> dict[str, Any] | None:
    """Decode a JSON object body; an empty body is an empty object, anything else None."""
    if not body:
        return {}
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


def core_handler(route: CoreRoute) -> Handler:
    """Adapt a Core API route to the pipeline: decode the body and query, encode the reply."""

    def handle(call: Call, params: Mapping[str, str]) -> web.Response:
        """Answer one request with ``route``; a body that is not a JSON object is a 400."""
        body = parse_object(call.body)
        if body is None:
            return message_response(400, "Malformed JSON.")
        request = call.request
        url = f"{request.scheme}://{request.host}{request.path.rstrip('/')}"
        query = php_query(request.query.items())
        return reply_response(route(CoreRequest(params=params, query=query, body=body, url=url)))

    return handle


async def read_body(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """Read the whole body, keeping at most ``limit + 1`` bytes in memory.

    The rest is drained rather than left unread so the client always gets its 413
    instead of a reset while it is still sending.

    Returns:
        The kept bytes, and whether the body was larger than ``limit``.
    """
    kept = bytearray()
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        room = limit + 1 - len(kept)
        if room > 0:
            kept += chunk[:room]
    return bytes(kept), total > limit


async def drop_connection(request: web.Request) -> NoReturn:
    """Close the connection without writing a response.

    Closing the transport makes aiohttp call ``connection_lost``, which cancels this
    handler (the fake runs with ``handler_cancellation=True``) before anything can be
    written. Should that not happen in time, the ConnectionResetError still prevents a
    reply: the transport is gone.
    """
    request.protocol.force_close()
    await asyncio.sleep(_DROP_GRACE)
    raise ConnectionResetError("connection dropped by FakePatchworks")


class Shutdown:
    """Tells in-flight handlers that the fake is closing, so none of them outlives it.

    Latency, slow replies and holds all make handlers wait; each waits through this signal
    so that ``close()`` ends them at once instead of after aiohttp's shutdown timeout.
    Nothing touches an event loop until ``arm()``, called when the server starts.
    """

    def __init__(self) -> None:
        """Unarmed: before the server starts, sleeps return at once and nothing is closing."""
        self._event: asyncio.Event | None = None

    def arm(self) -> None:
        """Create the signal, inside the running loop (the server is starting)."""
        self._event = asyncio.Event()

    def trigger(self) -> None:
        """Signal that the fake is closing: every sleep ends now."""
        if self._event is not None:
            self._event.set()

    @property
    def triggered(self) -> bool:
        """True once the fake has begun closing."""
        return self._event is not None and self._event.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early when the fake closes so close() never hangs."""
        if seconds <= 0 or self._event is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()
