"""What the fake saw: every request, every run it accepted, and the counters tests read.

Tests judge a client by what reached the server, never by what the client says it sent,
so the fake keeps a record of each request whatever its fate (answered, refused, dropped)
and of each flow run it accepted. The same records, as JSON-ready data, are served on
``GET /_fake/state`` for a fake running in another process.
"""

from __future__ import annotations

import json
from typing import Any, Final

import attrs

from ._http import Call
from ._routes import RouteKind

__all__ = ["DROPPED", "ReceivedRequest", "Records", "StartedRun"]

DROPPED: Final = 0
"""Status recorded in ``ReceivedRequest`` when the connection was dropped without a reply."""


@attrs.frozen
class ReceivedRequest:
    """One request that reached the fake, whatever its fate.

    Attributes:
        method: HTTP method.
        path: URL path, without the query string.
        query: Query parameters (first value of each).
        headers: Request headers with their names as sent (last value of each); use
            ``header()`` for a case-insensitive lookup.
        body: Request body (for a 413, only the first ``max_body_bytes + 1`` bytes).
        status: Status sent back, or ``DROPPED`` (0) if the connection was dropped.
        at: ``time.monotonic()`` when the request had fully arrived (after the simulated
            latency and the body): the instant the throttle counted it.
        route: The part of the API it targeted (``"core"``, ``"start"``, ``"manual"``,
            ``"login"``), or None for paths outside the API.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    at: float
    route: RouteKind | None = None

    def header(self, name: str) -> str | None:
        """Return the value of header ``name``, matched case-insensitively, or None."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def json(self) -> Any:
        """Return the body decoded as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)


@attrs.frozen
class StartedRun:
    """A start the fake accepted on a start or manual route (standard or raw).

    Attributes:
        run_id: The id of the run the start is (``/manual``) or becomes once the queue
            picks it up (``/start``): the id the reply carries, unless ``run_id_key`` is
            None.
        flow_id: The flow started.
        version_id: The version started (the deployed one when the URL omitted it).
        payload: The payload as text: the ``payload`` string exactly as received (not
            trimmed), a raw start's body decoded as UTF-8, or "" for an empty start.
        manual: True for the manual-initialise route, False for start.
        flow_variables: The ``flow_variables`` sent, decoded (it travels as a JSON
            string, or an object), else None.
        virtual_environment_id: The ``virtual_environment_id`` sent, else None.
        received_at: ``time.monotonic()`` when the request arrived (after latency).
        raw: True for the raw variant (the body was the payload).
        payload_bytes: The bytes stored for the payload, as a download answers them.
        payload_metadata_id: The metadata record of the stored payload.
        scheduled_flow_id: The queue item of a ``/start``; None for ``/manual``.
    """

    run_id: int
    flow_id: int
    version_id: int
    payload: str
    manual: bool
    flow_variables: dict[str, Any] | list[Any] | None
    virtual_environment_id: int | None
    received_at: float
    raw: bool = False
    payload_bytes: bytes = b""
    payload_metadata_id: int | None = None
    scheduled_flow_id: int | None = None


class Records:
    """The fake's memory of what it saw, as ``FakePatchworks`` exposes it.

    Attributes:
        received: Every request, in the order the fake answered (or dropped) it.
        starts: Every run accepted by a start or manual route, in arrival order.
        throttled: How many requests got a 429.
        throttled_by: 429s by the key of the throttle that refused them.
        login_count: How many requests reached the login logic.
    """

    def __init__(self) -> None:
        """Start with nothing seen."""
        self.received: list[ReceivedRequest] = []
        self.starts: list[StartedRun] = []
        self.throttled: int = 0
        self.throttled_by: dict[str, int] = {}
        self.login_count: int = 0

    def record(self, call: Call, status: int) -> None:
        """Append the request to ``received`` with the status it got (``DROPPED`` if none)."""
        request = call.request
        self.received.append(
            ReceivedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={str(k): v for k, v in request.headers.items()},
                body=call.body,
                status=status,
                at=call.at,
                route=call.kind,
            )
        )

    def count_throttled(self, key: str) -> None:
        """Count one 429, under the key of the throttle that refused the request."""
        self.throttled += 1
        self.throttled_by[key] = self.throttled_by.get(key, 0) + 1

    def reset(self) -> None:
        """Forget everything: ``received``, ``starts`` and every counter."""
        self.received.clear()
        self.starts.clear()
        self.throttled = 0
        self.throttled_by.clear()
        self.login_count = 0

    def state(self) -> dict[str, Any]:
        """The records as JSON-ready data (``FakePatchworks.state``, ``GET /_fake/state``)."""
        return {
            "starts": [
                {
                    "run_id": run.run_id,
                    "flow_id": run.flow_id,
                    "version_id": run.version_id,
                    "payload": run.payload,
                    "manual": run.manual,
                    "raw": run.raw,
                    "received_at": run.received_at,
                }
                for run in self.starts
            ],
            "received": len(self.received),
            "arrivals": [[r.at, r.status] for r in self.received if r.route is not None],
            "throttled": self.throttled,
            "throttled_by": dict(self.throttled_by),
            "login_count": self.login_count,
        }
