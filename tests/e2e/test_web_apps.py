"""The README's web-application recipes, run as written against the fake.

Each recipe is taken from the README (the code block after ``<!-- recipe: NAME -->``) and
executed as a module; the tests only point it at a fake through the ``PATCHWORKS_*``
environment variables, and, for the busy case, swap its ``make_client`` for one whose
budget is spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp.test_utils import TestServer

from patchworks_async import PatchworksClient, RateLimits
from patchworks_async.testing import FakePatchworks

README = Path(__file__).resolve().parents[2] / "README.md"
SPENT = RateLimits(requests=1, per=60.0)
"""One request a minute: the first order takes it, the second finds the budget spent."""


def recipe(name: str) -> dict[str, Any]:
    """Run the README's recipe ``name`` as a module; return its namespace."""
    found = re.search(
        rf"<!-- recipe: {name} -->\n```python\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert found, f"no recipe {name} in the README"
    namespace: dict[str, Any] = {"__name__": f"recipe_{name}"}
    exec(compile(found.group(1), f"README recipe {name}", "exec"), namespace)
    return namespace


def point_at(monkeypatch: pytest.MonkeyPatch, urls: dict[str, str], api_key: str) -> None:
    monkeypatch.setenv("PATCHWORKS_API_KEY", api_key)
    for name, url in urls.items():
        monkeypatch.setenv(f"PATCHWORKS_{name.upper()}", url)
    for name in ("PATCHWORKS_EMAIL", "PATCHWORKS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def spent_budget() -> PatchworksClient:
    return PatchworksClient.from_env(max_wait=0.05, rate_limits=SPENT)


@contextlib.asynccontextmanager
async def served_by_uvicorn(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port, lifespan and all; yields
    its base URL, and shuts it down (the lifespan's exit included) on the way out."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:  # a condition, not a guess: startup ran the lifespan
            if serving.done():
                serving.result()  # startup failed: raise why
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def post_orders(base: str, count: int) -> list[tuple[int, Any, str | None]]:
    """POST ``count`` orders one after the other; each reply's status, body, Retry-After."""
    replies = []
    async with aiohttp.ClientSession() as http:
        for order in range(count):
            async with http.post(f"{base.rstrip('/')}/orders", json={"order": order}) as reply:
                json_reply = reply.content_type == "application/json"
                body = await reply.json() if json_reply else await reply.text()
                replies.append((reply.status, body, reply.headers.get("Retry-After")))
    return replies


class TestFastAPI:
    async def test_an_order_starts_a_flow(
        self, fake: FakePatchworks, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        point_at(monkeypatch, dict(fake.urls), fake.api_key)
        async with served_by_uvicorn(recipe("fastapi")["app"]) as base:
            ((status, body, _),) = await post_orders(base, 1)
        assert (status, body) == (200, {"run_id": fake.starts[0].run_id})

    async def test_a_spent_budget_is_a_503_with_retry_after_and_nothing_sent(
        self, fake: FakePatchworks, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        point_at(monkeypatch, dict(fake.urls), fake.api_key)
        module = recipe("fastapi")
        module["make_client"] = spent_budget
        async with served_by_uvicorn(module["app"]) as base:
            first, busy = await post_orders(base, 2)
        assert first[0] == 200
        assert busy[0] == 503
        assert int(busy[2] or 0) >= 1
        assert len(fake.starts) == 1


class TestAiohttp:
    async def test_an_order_starts_a_flow_and_shutdown_closes_the_client(
        self, fake: FakePatchworks, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        point_at(monkeypatch, dict(fake.urls), fake.api_key)
        module = recipe("aiohttp")
        async with TestServer(module["app"]) as server:
            ((status, body, _),) = await post_orders(str(server.make_url("")), 1)
            pw = module["app"][module["PATCHWORKS"]]
        assert (status, body) == (200, {"run_id": fake.starts[0].run_id})
        with pytest.raises(RuntimeError, match="closed"):
            await pw.flows.get(101)

    async def test_a_spent_budget_is_a_503_with_retry_after(
        self, fake: FakePatchworks, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        point_at(monkeypatch, dict(fake.urls), fake.api_key)
        module = recipe("aiohttp")
        module["make_client"] = spent_budget
        async with TestServer(module["app"]) as server:
            first, busy = await post_orders(str(server.make_url("")), 2)
        assert first[0] == 200
        assert busy[0] == 503
        assert int(busy[2] or 0) >= 1
        assert len(fake.starts) == 1
