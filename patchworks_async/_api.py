"""The narrow interface the resources use: send one request, or stream a list.

Resources (``client.flows``, ``client.flow_runs``, ...) know endpoints and models, and
nothing of sessions, limiters, credentials or retries. The client hands each of them an
:class:`Api`; tests can hand them anything that has the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from ._errors import UnexpectedResponseError
from ._ratelimit import RequestKind

if TYPE_CHECKING:
    from ._pagination import AsyncPaginator, ListOptions
    from ._transport import SendObserver

__all__ = ["Api", "Finalisable", "Service", "data_of"]

T = TypeVar("T")

Service = Literal["core", "start"]
"""Which base URL a request goes to: the Core API, or the Start service."""


class Finalisable(Protocol):
    """Work running on a client (a bulk start) that closing the client must finish first."""

    def stop(self) -> None:
        """Stop starting anything new."""
        ...

    async def settled(self) -> None:
        """Return once everything started has finished and been recorded."""
        ...


class Api(Protocol):
    """What a resource may ask of the client."""

    @property
    def start_url(self) -> str:
        """The Start service's base URL (a bulk-start journal records it)."""
        ...

    @property
    def max_body_bytes(self) -> int:
        """The largest start body the client sends."""
        ...

    async def request(
        self,
        service: Service,
        method: str,
        path: Sequence[str | int],
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        json: Any = None,
        kind: RequestKind = RequestKind.ORDINARY,
        idempotent: bool | None = None,
        observer: SendObserver | None = None,
    ) -> Any:
        """Send one request and return its decoded reply (``None`` when empty).

        Args:
            service: Which base URL.
            method: The HTTP method.
            path: Path segments, each quoted (an id cannot smuggle in a ``/``).
            params: Query parameters.
            body: Exact JSON bytes (a start's, measured beforehand).
            json: An object to serialise as the body instead.
            kind: Which rate-limit buckets the request draws from.
            idempotent: Whether a resend is harmless; defaults by method.
            observer: Told when the request waits, leaves, and is surely unprocessed.
        """
        ...

    def paginate(
        self, path: Sequence[str | int], item_type: type[T], options: ListOptions
    ) -> AsyncPaginator[T]:
        """A Core API list as a paginator; the options are checked now, not at first page."""
        ...

    def track(self, work: Finalisable) -> None:
        """Register running work that closing the client stops and waits for."""
        ...

    def untrack(self, work: Finalisable) -> None:
        """The work has settled."""
        ...


def data_of(reply: Any) -> Any:
    """The ``data`` member of a single-resource reply."""
    if not isinstance(reply, Mapping) or "data" not in reply:
        raise UnexpectedResponseError("the reply has no 'data' member", field="data", body=reply)
    return reply["data"]
