"""Injected failures: what can go wrong with a request, and when it strikes.

A client that starts flows must survive a proxy failing in front of the service (nothing
happened, a retry is safe) and a reply lost after the service did the work (a blind retry
starts the flow twice). ``Fault`` names each failure and which of the two it is;
``FaultInjector`` keeps the armed ones and makes them strike, before processing or after.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs
from aiohttp import web

from ._checks import check_int
from ._http import Call, Shutdown, drop_connection, json_response, message_response
from ._rate_limits import rate_headers
from ._records import DROPPED, Records
from ._routes import RouteKind, check_route
from ._throttle import Verdict

__all__ = ["Fault", "FaultInjector", "Injection"]

_BAD_GATEWAY_HTML: Final = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class Fault(enum.StrEnum):
    """Failures that ``FakePatchworks.inject`` can make the next requests suffer.

    ``*_BEFORE`` faults hit before anything is processed or counted (a proxy failing in
    front of the service): a start is NOT recorded. ``*_AFTER`` faults hit once the request
    has been processed (a start IS recorded) and only the reply is lost or late: the case
    where a client that blindly retries would start a flow twice.

    Note that aiohttp's client silently retries an idempotent request (GET, PUT, DELETE...)
    once when the connection drops, so a single ``DROP_*`` on a GET is invisible to it
    (both attempts appear in ``received``); POST, as used to start flows, is not retried.
    """

    UNAVAILABLE_BEFORE = "unavailable_before"
    """503 ``{"message": "Service Unavailable"}``, nothing processed."""
    HTML_ERROR_BEFORE = "html_error_before"
    """502 with an nginx-style HTML page (``text/html``), nothing processed."""
    DROP_BEFORE = "drop_before"
    """The connection is closed without any response, nothing processed."""
    SERVER_ERROR_AFTER = "server_error_after"
    """Processed, then 500 ``{"message": "Server Error"}``."""
    DROP_AFTER = "drop_after"
    """Processed, then the connection is closed without any response."""
    SLOW_AFTER = "slow_after"
    """Processed, then the real response is delayed by ``FakePatchworks.slow_seconds``."""

    @property
    def acts_before(self) -> bool:
        """True if the fault fires before the request is processed or counted."""
        return self.value.endswith("_before")


@attrs.define
class Injection:
    """A pending fault and how many more matching requests it will hit."""

    fault: Fault
    remaining: int
    route: RouteKind | None


class FaultInjector:
    """The armed faults of one fake, and how each strikes the request it catches.

    Attributes:
        pending: Armed injections, oldest first; each phase consumes them in that order.
        slow_seconds: How long ``Fault.SLOW_AFTER`` delays a reply.
    """

    def __init__(self, records: Records, shutdown: Shutdown) -> None:
        """Nothing armed yet.

        Args:
            records: Where a struck request is recorded, with the status it got.
            shutdown: Cuts a slow reply short when the fake closes.
        """
        self._records = records
        self._shutdown = shutdown
        self.pending: list[Injection] = []
        self.slow_seconds: float = 5.0

    def inject(self, fault: Fault, *, times: int, route: RouteKind | None) -> None:
        """Arm ``fault`` for the next ``times`` requests matching ``route``.

        Raises:
            ValueError: On an unknown route or ``times < 1``.
        """
        check_route(route)
        check_int("times", times)
        self.pending.append(Injection(Fault(fault), times, route))

    def clear(self) -> None:
        """Disarm every pending fault."""
        self.pending.clear()

    def take(self, kind: RouteKind | None, *, before: bool) -> Fault | None:
        """Consume one pending fault of the given phase that matches ``kind``, if any."""
        for index, injection in enumerate(self.pending):
            if injection.fault.acts_before != before:
                continue
            if injection.route is not None and injection.route != kind:
                continue
            injection.remaining -= 1
            if injection.remaining <= 0:
                del self.pending[index]
            return injection.fault
        return None

    async def fire_before(self, call: Call, fault: Fault) -> web.StreamResponse:
        """Answer (or drop) for a before-fault: nothing was processed or counted."""
        if fault is Fault.DROP_BEFORE:
            self._records.record(call, DROPPED)
            await drop_connection(call.request)
        if fault is Fault.HTML_ERROR_BEFORE:
            response = web.Response(status=502, text=_BAD_GATEWAY_HTML, content_type="text/html")
        else:
            response = message_response(503, "Service Unavailable")
        self._records.record(call, response.status)
        return response

    async def fire_after(
        self, call: Call, fault: Fault, response: web.Response, verdict: Verdict | None
    ) -> web.StreamResponse:
        """Lose or delay the reply of a request that was processed (a start is recorded).

        Args:
            call: The request.
            fault: The after-fault that caught it.
            response: The reply the processing produced.
            verdict: The throttle's verdict, when the request went through the throttle
                (its headers stay on a 500, as Laravel's middleware adds them).
        """
        if fault is Fault.DROP_AFTER:
            self._records.record(call, DROPPED)
            await drop_connection(call.request)
        if fault is Fault.SLOW_AFTER:
            self._records.record(call, response.status)
            await self._shutdown.sleep(self.slow_seconds)
            return response
        headers = rate_headers(verdict) if verdict is not None else None
        error = json_response(500, {"message": "Server Error"}, headers)
        self._records.record(call, error.status)
        return error
