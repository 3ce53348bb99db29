"""Clients pointed at a FakePatchworks, as the tests build them."""

from __future__ import annotations

from typing import Any

from patchworks_async import PatchworksClient, RetryPolicy
from patchworks_async.testing import FakePatchworks

INSTANT_RETRIES = RetryPolicy(backoff_base=0.0)
"""Retries without backoff sleeps: test suites should never wait through backoff."""


def client_for(fake: FakePatchworks, **kwargs: Any) -> PatchworksClient:
    """A client for ``fake``'s API key, with instant retries unless told otherwise."""
    kwargs.setdefault("retry", INSTANT_RETRIES)
    if "email" not in kwargs:
        kwargs.setdefault("api_key", fake.api_key)
    return PatchworksClient(**fake.urls, **kwargs)
