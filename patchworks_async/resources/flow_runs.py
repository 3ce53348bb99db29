"""Flow runs: listing them, reading one, waiting for one to finish, its log, retrying it."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Unpack

from attrs import frozen

from .._api import data_of
from .._config import check_id, check_seconds
from .._errors import ConfigurationError, NotFoundError, RunWaitTimeoutError
from .._models import structure
from .._pagination import AsyncPaginator, ListOptions, include_param
from .._starts import FlowRunStarted

if TYPE_CHECKING:
    from .._api import Api

__all__ = ["NOT_PICKED_UP_GRACE", "FlowRun", "FlowRunLog", "FlowRunStatus", "FlowRuns"]


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

    ``status`` is a :class:`FlowRunStatus`; a code this library does not know yet stays the
    plain ``int``, and a word the server sends instead of a code (``"success"`` is read as
    SUCCESS) stays the ``str``: a new status never breaks a client. Every field but ``id``
    may be absent (sparse ``fields=``). ``trigger`` is one of ``API``, ``Manual``,
    ``Router``, ``Webhook``, ``Schedule``, ``Shape``, ``Retry``, ``Event``, ``Callback``.
    """

    id: int
    status: FlowRunStatus | int | str | None = None
    flow_id: int | None = None
    flow_version_id: int | None = None
    trigger: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    duration: float | None = None
    summary: str | None = None
    user_id: int | None = None
    retry_flow_run_id: int | None = None
    has_warnings: bool | None = None
    virtual_environment_id: int | None = None

    @property
    def finished(self) -> bool:
        """Whether the run has left STARTED (an unknown code or word counts as finished)."""
        return self.status is not None and self.status != FlowRunStatus.STARTED


@frozen
class FlowRunLog:
    """One line of a run's log (kept for 7 days). ``payload_metadata_id`` names the
    payload the step logged, for :meth:`Payloads.download`."""

    id: int
    flow_run_id: int | None = None
    log_level: str | None = None
    log_message: str | None = None
    flow_step_id: int | None = None
    payload_metadata_id: int | None = None
    created_at: dt.datetime | None = None


NOT_PICKED_UP_GRACE = 60.0
"""Seconds ``wait()`` takes a 404 to mean "queued, not yet a run": the vendor documents
queued starts appearing within about 30 s and the queue being read every 5 s."""


class FlowRuns:
    """``client.flow_runs``: the runs that starts create."""

    def __init__(self, api: Api) -> None:
        self._api = api

    def list(self, **options: Unpack[ListOptions]) -> AsyncPaginator[FlowRun]:
        """Stream flow runs, a page at a time.

        Filters include ``flow_id``, ``flow_version_id``, ``status`` (a code or a list),
        ``trigger``, ``started_after``, ``started_before`` and ``started_on`` (datetimes
        are sent as Unix milliseconds), ``retried`` and ``has_warnings``; sort by
        ``started_at`` (``-started_at`` for newest first).
        """
        return self._api.paginate(["flow-runs"], FlowRun, options)

    async def get(
        self, run_id: int | str, *, include: str | Iterable[str] | None = None
    ) -> FlowRun:
        """One flow run, with its current status.

        Raises:
            NotFoundError: no such run; right after ``flows.start`` this can also mean the
                start is still queued (see :meth:`wait`).
        """
        check_id("run_id", run_id)
        reply = await self._api.request(
            "core", "GET", ["flow-runs", run_id], params=include_param(include)
        )
        return structure(data_of(reply), FlowRun, body=reply)

    def logs(
        self,
        run_id: int | str,
        *,
        load_payload_ids: bool = False,
        **options: Unpack[ListOptions],
    ) -> AsyncPaginator[FlowRunLog]:
        """Stream a run's log, a page at a time (``sort="id"`` for the order it was written).

        Args:
            run_id: The run.
            load_payload_ids: Ask the server to fill in each line's ``payload_metadata_id``.
            **options: See :class:`ListOptions` (include ``flowRunLogMetadata``).
        """
        check_id("run_id", run_id)
        extra = [("load_payload_ids", "true")] if load_payload_ids else []
        return self._api.paginate(
            ["flow-runs", run_id, "flow-run-logs"], FlowRunLog, options, params=extra
        )

    async def retry(self, run_id: int | str) -> FlowRunStarted:
        """Run a finished run again, at once (a retry bypasses the queue), with its original
        version and payload. Returns the new run's id when the reply names it.

        Not idempotent: after an ambiguous failure it raises :class:`OutcomeUnknownError`
        rather than risk a second retry.
        """
        check_id("run_id", run_id)
        reply = await self._api.request("core", "POST", ["flow-runs", run_id, "retry"])
        return FlowRunStarted.from_reply(reply)

    async def wait(
        self,
        run_id: int | str,
        *,
        timeout: float,  # noqa: ASYNC109 - a deadline on polling, the API's documented shape
        poll_interval: float = 2.0,
        not_found_grace: float = NOT_PICKED_UP_GRACE,
    ) -> FlowRun:
        """Poll a run until it is no longer STARTED, and return it.

        A queued start is not a run until the queue picks it up, and until then its id
        answers 404: for ``not_found_grace`` seconds from the first poll a 404 means "not
        yet", after that it means what it says. Each poll is an ordinary request through
        the rate limiter, so waiting on many runs shares the account's budget with
        everything else.

        Args:
            run_id: The run, as :meth:`Flows.start` returned it.
            timeout: Seconds to wait in all.
            poll_interval: Seconds between polls.
            not_found_grace: Seconds a 404 is taken as "still queued" (60).

        Raises:
            RunWaitTimeoutError: the run was still STARTED (or still queued) after
                ``timeout`` seconds (also a ``TimeoutError``); ``last_status`` holds what
                was seen last (``None`` while it was queued).
            NotFoundError: the run was still unknown after ``not_found_grace`` seconds.
            ConfigurationError: ``run_id`` is ``None`` (the start's reply named no run:
                find it with ``flow_runs.list(filter={"flow_id": ...})``) or a number is
                not positive.
        """
        if run_id is None:
            raise ConfigurationError(
                "run_id is None: the start's reply named no run; find the run with "
                "flow_runs.list(filter={'flow_id': ...}, sort='-started_at')"
            )
        check_id("run_id", run_id)
        check_seconds("timeout", timeout)
        check_seconds("poll_interval", poll_interval)
        if not_found_grace != 0:
            check_seconds("not_found_grace", not_found_grace)
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + timeout
        last_status: object = None
        while True:
            try:
                run = await self.get(run_id)
            except NotFoundError:
                if loop.time() - began > not_found_grace:
                    raise
            else:
                if run.finished:
                    return run
                last_status = run.status
            remaining = deadline - loop.time()
            if remaining <= 0:
                state = "still queued" if last_status is None else "still running"
                raise RunWaitTimeoutError(
                    f"flow run {run_id} was {state} after {timeout:g} s",
                    run_id=run_id,
                    last_status=last_status,
                )
            await asyncio.sleep(min(poll_interval, remaining))
