"""Shared fixtures: a FakePatchworks server on loopback and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from patchworks_async import PatchworksClient, RetryPolicy
from patchworks_async.testing import FakePatchworks

from .mocked_aiohttp import m  # noqa: F401  (the fixture, for every test module)

INSTANT_RETRIES = RetryPolicy(backoff_base=0.0)
"""Retries without backoff sleeps: test suites should never wait through backoff."""


def client_for(fake: FakePatchworks, **kwargs: Any) -> PatchworksClient:
    """A client for ``fake``'s API key, with instant retries unless told otherwise."""
    kwargs.setdefault("retry", INSTANT_RETRIES)
    if "email" not in kwargs:
        kwargs.setdefault("api_key", fake.api_key)
    return PatchworksClient(**fake.urls, **kwargs)


@pytest.fixture
async def fake() -> AsyncIterator[FakePatchworks]:
    async with FakePatchworks() as server:
        yield server
