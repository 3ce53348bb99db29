"""FakePatchworks in a process of its own, for tests that need real separation.

A crash-and-resume test must kill the client without killing the server; a multi-process
rate-limit test needs one server for several client processes; a memory benchmark must not
count the server's records. :func:`fake_patchworks_process` runs ``patchworks fake-server``
as a child process and hands back its URLs and a way to read what it saw.
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

from ._fake import ADMIN_PREFIX, ServiceURLs

__all__ = ["RemoteFake", "fake_patchworks_process"]


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
        """What the server saw (``GET /_fake/state``): starts, arrivals, 429s, logins."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.root}{ADMIN_PREFIX}state") as reply,
        ):
            state: dict[str, Any] = await reply.json()
            return state


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
