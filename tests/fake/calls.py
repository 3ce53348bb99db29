"""Plain HTTP calls to a FakePatchworks, as the fake's own tests make them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import aiohttp

from patchworks_async.testing import FakePatchworks

ISO: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
"""Laravel's JSON date-time format, as the fake writes every timestamp."""

NO_BODY: Final[Any] = object()


def headers_for(fake: FakePatchworks, **extra: str) -> dict[str, str]:
    """The API key and ``Accept``, plus ``extra`` headers."""
    return {"Authorization": fake.api_key, "Accept": "application/json", **extra}


async def call(
    session: aiohttp.ClientSession,
    fake: FakePatchworks,
    method: str,
    url: str,
    body: Any = NO_BODY,
    *,
    data: bytes | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One authenticated request: status, headers, and the JSON body (or None when empty).

    ``body`` is sent as JSON; ``data`` as raw bytes with ``Content-Type: application/json``.
    """
    kwargs: dict[str, Any] = {"headers": {**headers_for(fake), **(headers or {})}}
    if body is not NO_BODY:
        kwargs["json"] = body
    if data is not None:
        kwargs["data"] = data
        kwargs["headers"].setdefault("Content-Type", "application/json")
    if params is not None:
        kwargs["params"] = dict(params)
    async with session.request(method, url, **kwargs) as resp:
        raw = await resp.read()
        return resp.status, dict(resp.headers), json.loads(raw) if raw else None


async def api(
    session: aiohttp.ClientSession,
    fake: FakePatchworks,
    method: str,
    path: str,
    body: Any = NO_BODY,
    **kwargs: Any,
) -> tuple[int, Any]:
    """A Core API request (``path`` relative to ``core_url``): status and JSON body."""
    status, _, reply = await call(session, fake, method, f"{fake.core_url}{path}", body, **kwargs)
    return status, reply


async def start(
    session: aiohttp.ClientSession,
    fake: FakePatchworks,
    path: str = "flows/101/start",
    body: Any = NO_BODY,
    **kwargs: Any,
) -> tuple[int, Any]:
    """A Start service request (``path`` relative to ``start_url``): status and JSON body."""
    status, _, reply = await call(session, fake, "POST", f"{fake.start_url}/{path}", body, **kwargs)
    return status, reply


async def started_run_id(
    session: aiohttp.ClientSession,
    fake: FakePatchworks,
    path: str = "flows/101/start",
    payload: str = '{"order": 1}',
) -> int:
    """Start with ``payload``; the run id of the reply (under the default key)."""
    status, reply = await start(session, fake, path, {"payload": payload})
    assert status == 200, reply
    return int(reply["flow_run_id"])


async def list_ids(session: aiohttp.ClientSession, fake: FakePatchworks, path: str) -> list[int]:
    """The ids of a Core API list's first page."""
    status, reply = await api(session, fake, "GET", path)
    assert status == 200, reply
    return [item["id"] for item in reply["data"]]
