"""Fixtures for every kind of test. The tree is organised by what a test needs:

* ``unit/``: no socket, and no event loop where none is needed (``pytest tests/unit``);
* ``wire/``: the transport against aiohttp mocked by aioresponses, for narrow cases;
* ``e2e/``: the client against FakePatchworks over real sockets;
* ``fake/``: FakePatchworks's own behaviour;
* ``redis/``: the shared limiter against a real redis-server the tests start;
* ``support/``: helpers the others import (clients, a controlled limiter, virtual time...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from patchworks_async.testing import FakePatchworks

from .support.mocked_aiohttp import m  # noqa: F401  (the fixture, for every test module)


@pytest.fixture
async def fake() -> AsyncIterator[FakePatchworks]:
    async with FakePatchworks() as server:
        yield server
