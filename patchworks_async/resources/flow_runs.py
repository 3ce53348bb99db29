"""Flow runs: listing them, reading one, and waiting for one to finish."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Unpack

from attrs import frozen

from .._api import data_of
from .._errors import ConfigurationError, RunWaitTimeoutError
from .._models import structure
from .._pagination import AsyncPaginator, ListOptions, include_param

if TYPE_CHECKING:
    from .._api import Api

__all__ = ["FlowRun", "FlowRunStatus", "FlowRuns"]


class FlowRunStatus(enum.IntEnum):
    """A flow run's status code."""

    STARTED = 1
    SUCCESS = 2
    FAILURE = 3
    STOPPED = 4
    PARTIAL_SUCCESS = 5


@frozen
class FlowRun:
    """One run of a process flow.

    ``status`` is a :class:`FlowRunStatus`, or the raw ``int`` when the server sends a code
    this library does not know yet: a new code never breaks a client.
    """

    id: int
    status: FlowRunStatus | int
    flow_id: int | None = None
    flow_version_id: int | None = None
    trigger: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether the run has left STARTED (an unknown code counts as finished)."""
        return self.status != FlowRunStatus.STARTED


class FlowRuns:
    """``client.flow_runs``: the runs that starts create."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def list(self, **options: Unpack[ListOptions]) -> AsyncPaginator[FlowRun]:
        """Stream flow runs, a page at a time.

        Filters include ``flow_id``, ``flow_version_id``, ``status`` (a code or a list),
        ``trigger``, ``started_after`` and ``started_before`` (datetimes are sent as Unix
        milliseconds); sort by ``started_at`` (``-started_at`` for newest first).
        """
        return self._api.paginate(["flow-runs"], FlowRun, options)

    async def get(
        self, run_id: int | str, *, include: str | Iterable[str] | None = None
    ) -> FlowRun:
        """One flow run, with its current status."""
        reply = await self._api.request(
            "core", "GET", ["flow-runs", run_id], params=include_param(include)
        )
        return structure(data_of(reply), FlowRun, body=reply)

    async def wait(
        self,
        run_id: int | str,
        *,
        timeout: float,  # noqa: ASYNC109 - a deadline on polling, the API's documented shape
        poll_interval: float = 2.0,
    ) -> FlowRun:
        """Poll a run until it is no longer STARTED, and return it.

        Each poll is an ordinary request through the rate limiter, so waiting on many runs
        shares the account's budget with everything else.

        Args:
            run_id: The run, as :meth:`Flows.start` returned it.
            timeout: Seconds to wait in all.
            poll_interval: Seconds between polls.

        Raises:
            RunWaitTimeoutError: the run was still STARTED after ``timeout`` seconds
                (also a ``TimeoutError``); ``last_status`` holds what was seen last.
        """
        if not timeout > 0 or not poll_interval > 0:
            raise ConfigurationError("timeout and poll_interval must be positive")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            run = await self.get(run_id)
            if run.finished:
                return run
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RunWaitTimeoutError(
                    f"flow run {run_id} was still running after {timeout:g} s",
                    run_id=run_id,
                    last_status=run.status,
                )
            await asyncio.sleep(min(poll_interval, remaining))
