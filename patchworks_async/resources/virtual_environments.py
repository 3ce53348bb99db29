"""Virtual environments, which a start may name (``virtual_environment_id=``)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Unpack

from attrs import frozen

from .._pagination import AsyncPaginator, ListOptions

if TYPE_CHECKING:
    from .._api import Api

__all__ = ["VirtualEnvironment", "VirtualEnvironments"]


@frozen
class VirtualEnvironment:
    """A virtual environment flows can be deployed to and started in."""

    id: int
    name: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class VirtualEnvironments:
    """``client.virtual_environments``."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def list(self, **options: Unpack[ListOptions]) -> AsyncPaginator[VirtualEnvironment]:
        """Stream the account's virtual environments."""
        path = ["flow-version-deployments", "virtual-environments"]
        return self._api.paginate(path, VirtualEnvironment, options)
