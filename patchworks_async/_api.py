"""The narrow interface the resources use: send one request, or stream a list.

Resources (``client.flows``, ``client.flow_runs``, ...) know endpoints and models, and
nothing of sessions, limiters, credentials or retries. The client hands each of them an
:class:`Api`; tests can hand them anything that has the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from ._config import RequestKind
from ._errors import UnexpectedResponseError

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
        raw_reply: bool = False,
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
            raw_reply: Return the bytes of a 2xx reply as they came (a download).
        """
        ...

    def paginate(
        self,
        path: Sequence[str | int],
        item_type: type[T],
        options: ListOptions,
        *,
        params: Sequence[tuple[str, str]] = (),
    ) -> AsyncPaginator[T]:
        """A Core API list as a paginator; the options are checked now, not at first page.

        ``params`` are query parameters of this endpoint's own, sent with every page.
        """
        ...

    def track(self, work: Finalisable) -> None:
        """Register running work that closing the client stops and waits for."""
        ...

    def untrack(self, work: Finalisable) -> None:
        """The work has settled."""
        ...


def data_of(reply: Any) -> Any:
    """The resource in a single-resource reply: its ``data`` member, or the reply itself.

    Reads come as ``{"data": {...}}``; the API documents write replies only as "an object",
    so both shapes are taken everywhere.

    Raises:
        UnexpectedResponseError: the reply is not a JSON object.
    """
    if not isinstance(reply, Mapping):
        raise UnexpectedResponseError(
            f"the reply should be a JSON object, not {type(reply).__name__}", body=reply
        )
    data = reply.get("data", reply)
    return data if isinstance(data, Mapping) else reply
