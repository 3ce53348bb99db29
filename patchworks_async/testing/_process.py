"""FakePatchworks in a process of its own, for tests that need real separation.

A crash-and-resume test must kill the client without killing the server; a multi-process
rate-limit test needs one server for several client processes; a memory benchmark must not
count the server's records. :func:`fake_patchworks_process` runs ``patchworks fake-server``
as a child process and hands back its URLs, a way to read what it saw, and holds
(``FakePatchworks.hold``) driven over the child's ``/_fake/hold`` routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from attrs import frozen

from ._fake import ServiceURLs
from ._holds import HoldPhase
from ._routes import ADMIN_PREFIX, RouteKind

__all__ = ["RemoteFake", "fake_patchworks_process"]

#: Admin error statuses raised as what the in-process ``ReplyHold`` raises; others (400,
#: 404: a bad argument or an unknown hold) as ValueError.
_ADMIN_ERRORS: dict[int, type[Exception]] = {408: TimeoutError, 409: RuntimeError}


@frozen
class RemoteFake:
    """A FakePatchworks served by another process.

    Attributes:
        urls: The base URLs, ready for ``PatchworksClient(**remote.urls)``.
        api_key: The API key it accepts.
    """

    urls: ServiceURLs
    api_key: str

    @property
    def root(self) -> str:
        """``http://host:port``."""
        return self.urls["core_url"].split("/core/", 1)[0]

    async def state(self) -> dict[str, Any]:
        """What the server saw (``GET /_fake/state``): starts, arrivals, 429s, logins, and
        what became of the co-tenant's requests."""
        return await self._call_admin("GET", "state")

    async def reset(self) -> None:
        """Forget every record and close the throttle windows (``POST /_fake/reset``)."""
        await self._call_admin("POST", "reset")

    async def configure(self, **switches: Any) -> dict[str, Any]:
        """Set the server's switches, as ``FakePatchworks.configure`` does.

        Args:
            **switches: ``run_id_key``, ``wrap_writes_in_data``, ``queue_delay``,
                ``run_duration``, ``run_outcome``, ``co_tenant``.

        Returns:
            Every switch's value, after the change.

        Raises:
            ValueError: On an unknown switch or a bad value (nothing changes then).
        """
        return await self._call_admin("POST", "settings", body=switches)

    async def hold(self, route: RouteKind | None = "start", when: HoldPhase = "after") -> int:
        """Make the server hold matching requests, as ``FakePatchworks.hold`` does.

        Args:
            route: ``"start"``, ``"manual"``, ``"core"``, ``"login"``, or None for any.
            when: ``"after"`` (processed, only the reply waits) or ``"before"``.

        Returns:
            The hold's id, for ``wait_held`` and ``release``.

        Raises:
            ValueError: On an unknown route or phase.
        """
        reply = await self._call_admin("POST", "hold", body={"route": route, "when": when})
        return int(reply["hold"])

    async def wait_held(
        self,
        hold_id: int,
        at_least: int,
        timeout: float = 30.0,  # noqa: ASYNC109 - the server bounds the wait, not the caller
    ) -> int:
        """Wait until the hold has caught at least ``at_least`` requests in all.

        The server waits on its own event, so this is one request, not polling.

        Returns:
            How many requests the hold holds now.

        Raises:
            TimeoutError: If fewer were caught within ``timeout`` seconds.
            RuntimeError: If the hold ended before catching that many.
            ValueError: On an unknown hold or bad arguments.
        """
        reply = await self._call_admin(
            "GET",
            f"hold/{hold_id}",
            query={"at_least": str(at_least), "timeout": str(timeout)},
            wait=timeout,
        )
        return int(reply["held"])

    async def release(self, hold_id: int, count: int | None = None) -> None:
        """Let the ``count`` oldest held requests go; None lets all go and ends the hold.

        Raises:
            ValueError: On an unknown hold or a bad count.
        """
        await self._call_admin("POST", f"hold/{hold_id}/release", body={"count": count})

    async def _call_admin(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        wait: float = 0.0,
    ) -> dict[str, Any]:
        """One call to the child's ``/_fake/`` routes; an error reply becomes an exception.

        Args:
            method: HTTP method.
            path: The route after ``/_fake/``.
            body: JSON body, if any.
            query: Query parameters, if any.
            wait: Seconds the server may wait before replying (it bounds its own waits), so
                the client's own timeout allows for it.
        """
        timeout = aiohttp.ClientTimeout(total=wait + 30.0)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method, f"{self.root}{ADMIN_PREFIX}{path}", json=body, params=query
            ) as reply,
        ):
            data: dict[str, Any] = await reply.json()
        if reply.status < 400:
            return data
        error = _ADMIN_ERRORS.get(reply.status, ValueError)
        raise error(f"{method} {ADMIN_PREFIX}{path}: {data['message']}")


@contextlib.asynccontextmanager
async def fake_patchworks_process(*options: str) -> AsyncIterator[RemoteFake]:
    """Serve FakePatchworks from a child process for the duration of the block.

    Args:
        *options: ``fake-server`` options, e.g. ``"--requests", "60", "--window", "3"``;
            a free port is picked.
    """
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "patchworks_async",
        "fake-server",
        "--port",
        "0",
        "--quiet",  # the JSON line only: no export lines in the caller's output
        *options,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(await asyncio.wait_for(server.stdout.readline(), 30))
        urls = ServiceURLs(
            core_url=ready["core_url"], start_url=ready["start_url"], login_url=ready["login_url"]
        )
        yield RemoteFake(urls=urls, api_key=ready["api_key"])
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGINT)
        await server.wait()
