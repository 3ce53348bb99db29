"""Payloads: what each step of a run received and sent, and the bytes themselves.

The API keeps payloads for 72 hours; their metadata says where each came from.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Unpack

from attrs import frozen

from .._config import check_id
from .._pagination import AsyncPaginator, ListOptions

if TYPE_CHECKING:
    from .._api import Api

__all__ = ["PayloadMetadata", "Payloads"]


@frozen
class PayloadMetadata:
    """Where a stored payload came from, and how big it is (``payload_size``, bytes)."""

    id: int
    flow_run_id: int | None = None
    flow_version_id: int | None = None
    flow_step_id: int | None = None
    payload_store_reference: str | None = None
    payload_size: int | None = None
    dropped: bool | None = None
    created_at: dt.datetime | None = None


class Payloads:
    """``client.payloads``: payload metadata, and downloading a payload."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def list(self, **options: Unpack[ListOptions]) -> AsyncPaginator[PayloadMetadata]:
        """Stream payload metadata; filter by ``flow_run_id``, ``flow_step_id``,
        ``flow_log_id`` or ``id`` (``filter={"flow_run_id": run.id}``)."""
        return self._api.paginate(["payload-metadata"], PayloadMetadata, options)

    async def download(self, payload_id: int | str) -> bytes:
        """The payload's bytes, exactly as stored (a start's payload as it was sent)."""
        check_id("payload_id", payload_id)
        path = ["payload-metadata", payload_id, "download"]
        data: bytes = await self._api.request("core", "GET", path, raw_reply=True)
        return data
