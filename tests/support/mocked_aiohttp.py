"""aioresponses, as the tests use it for narrow transport cases."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

_TAKES_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters
"""aiohttp 3.14 added the argument; older releases (down to the declared floor) refuse it."""


class _WriterDone:
    """Stands in for the request's stream writer once the request has been written."""

    output_size = 0


class _MockedResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` argument that
    aiohttp 3.14 requires (pnuckowski/aioresponses#289); supply one."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if _TAKES_STREAM_WRITER:
            kwargs.setdefault("stream_writer", _WriterDone())
        super().__init__(method, url, **kwargs)


class _Mock(aioresponses):
    def add(self, url: Any, method: str = "GET", **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("response_class", _MockedResponse)
        super().add(url, method, **kwargs)


@pytest.fixture
def m() -> Iterator[aioresponses]:
    """aiohttp mocked at the session: register replies with ``m.get(url, ...)`` etc."""
    with _Mock() as mocked:
        yield mocked


def calls(m: aioresponses, method: str, url: str) -> int:
    """How many times ``method url`` was sent through the mock."""
    return len(m.requests.get((method, URL(url)), []))
