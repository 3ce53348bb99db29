"""The one home of a flow start: its path, its rate-limit kind, its body and its reply.

``flows.start``, ``flows.initialise`` and ``flows.start_many`` all start flows through
:class:`StartTarget` and :func:`send_start`, so that a start is built, limited, sent and
read the same way whichever call made it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from attrs import field, frozen

from ._config import RequestKind, check_id
from ._errors import ConfigurationError
from ._payload import (
    flow_variables_text,
    raw_start_body,
    start_body,
    stringify_payload,
)

if TYPE_CHECKING:
    from ._api import Api
    from ._transport import SendObserver

__all__ = ["OMITTED", "FlowRunStarted", "Omitted", "StartTarget", "send_start"]


@frozen
class FlowRunStarted:
    """The reply to a start or manual initialise.

    Attributes:
        id: The flow run id, or ``None`` when the reply held none where one is looked for
            (``flow_run_id``, ``run_id``, ``flowRunId``, ``id``, and the same inside
            ``data``). A start with no id in its reply still started.
        message: The server's message ("Flow initialised.").
        raw: The whole decoded reply, since the id's key is not documented.
    """

    id: int | str | None
    message: str | None
    raw: Any = field(repr=False)

    @classmethod
    def from_reply(cls, reply: Any) -> FlowRunStarted:
        """Read a start reply (decoded JSON); the run id's key is undocumented, so several
        are tried, and a reply without one (or that is not an object) has ``id=None``."""
        if not isinstance(reply, Mapping):
            return cls(id=None, message=None, raw=reply)
        message = reply.get("message")
        return cls(
            id=_find_run_id(reply),
            message=message if isinstance(message, str) else None,
            raw=reply,
        )


_RUN_ID_KEYS = ("flow_run_id", "run_id", "flowRunId", "id")


def _find_run_id(reply: Mapping[str, Any]) -> int | str | None:
    data = reply.get("data")
    for scope in (reply, data if isinstance(data, Mapping) else {}):
        for key in _RUN_ID_KEYS:
            value = scope.get(key)
            if isinstance(value, int | str) and not isinstance(value, bool) and value != "":
                return value
    return None


class Omitted(enum.Enum):
    """The default of a start's payload: start the flow with no payload at all."""

    PAYLOAD = "omitted"

    def __repr__(self) -> str:
        return "<omitted>"


OMITTED: Final = Omitted.PAYLOAD


@frozen
class StartTarget:
    """Where starts go, and how they are sent; build it with :meth:`build`.

    Attributes:
        flow_id: The flow to start.
        version_id: The version to run, or ``None`` for the deployed version.
        manual: Manual initialise (runs at once, 10 a minute) rather than a queued start.
        raw: The raw variant: the body is the JSON document itself, and the flow variables
            and virtual environment travel as query parameters.
        flow_variables: The flow variables as JSON text, or ``None``.
        virtual_environment_id: The virtual environment to run in, or ``None``.
    """

    flow_id: int | str
    version_id: int | str | None
    manual: bool = False
    raw: bool = False
    flow_variables: str | None = None
    virtual_environment_id: int | str | None = None

    @classmethod
    def build(
        cls,
        flow_id: object,
        version_id: object,
        *,
        manual: bool = False,
        raw: object = False,
        flow_variables: Mapping[str, Any] | list[Any] | str | None = None,
        virtual_environment_id: object = None,
    ) -> StartTarget:
        """Check the arguments of a start once, before any payload is read.

        Raises:
            ConfigurationError: an id, ``raw`` or ``flow_variables`` the API cannot take.
        """
        if not isinstance(raw, bool):
            raise ConfigurationError(f"raw must be True or False, not {raw!r}")
        return cls(
            check_id("flow_id", flow_id),
            None if version_id is None else check_id("version_id", version_id),
            manual=manual,
            raw=raw,
            flow_variables=None if flow_variables is None else flow_variables_text(flow_variables),
            virtual_environment_id=(
                None
                if virtual_environment_id is None
                else check_id("virtual_environment_id", virtual_environment_id)
            ),
        )

    @property
    def route(self) -> str:
        """``start``, ``manual``, ``start/raw`` or ``manual/raw``: the path, and the
        journal's name for it."""
        route = "manual" if self.manual else "start"
        return f"{route}/raw" if self.raw else route

    @property
    def kind(self) -> RequestKind:
        """The rate-limit buckets a start of this kind draws from."""
        return RequestKind.MANUAL if self.manual else RequestKind.START

    @property
    def path(self) -> list[str | int]:
        """``flows/{id}/{start|manual}[/raw][/{version}]``: no version runs the deployed one."""
        path: list[str | int] = ["flows", self.flow_id, *self.route.split("/")]
        if self.version_id is not None:
            path.append(self.version_id)
        return path

    @property
    def params(self) -> list[tuple[str, str]] | None:
        """The query of a raw start, which takes its flow variables and virtual environment
        there (as the vendor's own client sends them); a standard start has none."""
        if not self.raw:
            return None
        params = []
        if self.flow_variables is not None:
            params.append(("flow_variables", self.flow_variables))
        if self.virtual_environment_id is not None:
            params.append(("virtual_environment_id", str(self.virtual_environment_id)))
        return params or None

    def encode(self, payload: object = OMITTED, *, max_body_bytes: int) -> bytes | None:
        """The exact body of one start (``None``: no body), checked against the limit.

        Raises:
            PayloadError: a payload that cannot be sent (``None``, blank, not JSON for a raw
                start, unserialisable).
            PayloadTooLargeError: the body is over ``max_body_bytes``.
        """
        if self.raw:
            if payload is OMITTED:
                return None
            return raw_start_body(payload, max_body_bytes=max_body_bytes)
        return start_body(
            self.flow_id,
            self.version_id,
            None if payload is OMITTED else stringify_payload(payload),
            max_body_bytes=max_body_bytes,
            flow_variables=self.flow_variables,
            virtual_environment_id=self.virtual_environment_id,
        )


async def send_start(
    api: Api,
    target: StartTarget,
    body: bytes | None,
    *,
    observer: SendObserver | None = None,
) -> FlowRunStarted:
    """POST one start body to the Start service and read the reply.

    Raises:
        OutcomeUnknownError: the start may or may not have happened (including a 2xx whose
            body is not JSON, which proves nothing).
    """
    reply = await api.request(
        "start",
        "POST",
        target.path,
        params=target.params,
        body=body,
        kind=target.kind,
        observer=observer,
    )
    return FlowRunStarted.from_reply(reply)
