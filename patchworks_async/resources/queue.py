"""The run queue: queued starts (``flows.start``) waiting to become flow runs.

A queued start is picked up when its flow has concurrency free (the vendor documents items
appearing within about 30 seconds and the queue being read every 5); deleting an item
before then means its run never happens.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Unpack

from attrs import frozen

from .._config import check_id
from .._pagination import AsyncPaginator, ListOptions

if TYPE_CHECKING:
    from .._api import Api

__all__ = ["Queue", "ScheduledFlow"]


@frozen
class ScheduledFlow:
    """A queued start. ``status`` is kept as the server sends it."""

    id: int
    flow_id: int | None = None
    flow_version_id: int | None = None
    status: int | str | None = None
    payload_metadata_id: int | None = None
    created_at: dt.datetime | None = None


class Queue:
    """``client.queue``: the starts waiting to run."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def list(self, **options: Unpack[ListOptions]) -> AsyncPaginator[ScheduledFlow]:
        """Stream the queue; filter by ``status`` or ``flow_version_id``; include ``flow``,
        ``flowVersion``, ``payloadMetadata``."""
        return self._api.paginate(["scheduled-flows"], ScheduledFlow, options)

    async def delete(self, scheduled_id: int | str) -> None:
        """Take a queued start off the queue: its run will not happen."""
        check_id("scheduled_id", scheduled_id)
        await self._api.request("core", "DELETE", ["scheduled-flows", scheduled_id])
