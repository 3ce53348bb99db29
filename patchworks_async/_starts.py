"""The one home of a flow start: its path, its rate-limit kind, its body and its reply.

``flows.start``, ``flows.initialise`` and ``flows.start_many`` all start flows through
:class:`StartTarget` and :func:`send_start`, so that a start is built, limited, sent and
read the same way whichever call made it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from ._payload import encode_start_body
from ._ratelimit import RequestKind

if TYPE_CHECKING:
    from ._api import Api
    from ._transport import SendObserver

__all__ = ["FlowRunStarted", "StartTarget", "send_start"]


@frozen
class FlowRunStarted:
    """The reply to a start or manual initialise.

    Attributes:
        id: The flow run id, or ``None`` when the reply held none where one is looked for
            (``flow_run_id``, ``run_id``, ``flowRunId``, ``id``, and the same inside
            ``data``). A start with no id in its reply still started.
        message: The server's message ("flow initialised").
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


@frozen
class StartTarget:
    """Where starts go: a flow, a version (``None``: the deployed one), queued or manual.

    Attributes:
        flow_id: The flow to start.
        version_id: The version to run, or ``None`` for the deployed version.
        manual: Manual initialise (runs at once, 10 a minute) rather than a queued start.
    """

    flow_id: int | str
    version_id: int | str | None
    manual: bool = False

    @property
    def route(self) -> str:
        """``start`` or ``manual``: the path segment, and the journal's name for it."""
        return "manual" if self.manual else "start"

    @property
    def kind(self) -> RequestKind:
        """The rate-limit buckets a start of this kind draws from."""
        return RequestKind.MANUAL if self.manual else RequestKind.START

    @property
    def path(self) -> list[str | int]:
        """``flows/{id}/{start|manual}[/{version}]``: no version runs the deployed one."""
        path: list[str | int] = ["flows", self.flow_id, self.route]
        if self.version_id is not None:
            path.append(self.version_id)
        return path

    def encode(
        self,
        payload: object,
        *,
        max_body_bytes: int,
        flow_variables: Mapping[str, Any] | list[Any] | None = None,
        virtual_environment_id: int | str | None = None,
    ) -> bytes:
        """The exact body of one start, checked against ``max_body_bytes``."""
        return encode_start_body(
            self.flow_id,
            self.version_id,
            payload,
            max_body_bytes=max_body_bytes,
            flow_variables=flow_variables,
            virtual_environment_id=virtual_environment_id,
        )


async def send_start(
    api: Api,
    target: StartTarget,
    body: bytes,
    *,
    observer: SendObserver | None = None,
) -> FlowRunStarted:
    """POST one start body to the Start service and read the reply.

    Raises:
        OutcomeUnknownError: the start may or may not have happened (including a 2xx whose
            body is not JSON, which proves nothing).
    """
    reply = await api.request(
        "start", "POST", target.path, body=body, kind=target.kind, observer=observer
    )
    return FlowRunStarted.from_reply(reply)
