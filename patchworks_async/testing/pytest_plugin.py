"""The ``fake_patchworks`` fixture, registered as a pytest plugin (``pytest11`` entry point).

Any project that installs patchworks-async and pytest-asyncio can write::

    async def test_my_service(fake_patchworks):
        async with PatchworksClient(api_key=fake_patchworks.api_key, **fake_patchworks.urls) as pw:
            ...

The fixture is a fresh :class:`FakePatchworks` with default settings, served on loopback for
the duration of one test. Build your own (``async with FakePatchworks(window=2.0) as fake``)
when a test needs other limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture needs pytest-asyncio; nothing to offer
    pass
else:
    from ._fake import FakePatchworks

    @pytest_asyncio.fixture
    async def fake_patchworks() -> AsyncIterator[FakePatchworks]:
        """A FakePatchworks server on a free loopback port, stopped after the test."""
        async with FakePatchworks() as fake:
            yield fake
