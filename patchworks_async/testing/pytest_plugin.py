"""The ``fake_patchworks`` fixture, registered as a pytest plugin (``pytest11`` entry point).

Any project that installs patchworks-async and pytest-asyncio can write::

    async def test_my_service(fake_patchworks):
        async with fake_patchworks.client() as pw:
            await my_service.push_orders(pw)
        assert len(fake_patchworks.starts) == 3

The fixture is a fresh :class:`FakePatchworks` with default settings (the real 240 a
minute, the run queue and all), served on loopback for one test. ``fake_patchworks.client()``
is a ``PatchworksClient`` pointed at it that keeps the fake's limits without pacing under
them and retries at once, so a hundred starts take a fraction of a second. Build your own
(``async with FakePatchworks(window=2.0) as fake``) when a test needs other settings.

With anyio's pytest plugin instead of pytest-asyncio, define the same fixture (the fake
runs on asyncio)::

    @pytest.fixture
    def anyio_backend():
        return "asyncio"

    @pytest.fixture
    async def fake_patchworks():
        async with FakePatchworks() as fake:
            yield fake
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
        """A FakePatchworks server on a free loopback port, stopped after the test; its
        ``client()`` is a fast ``PatchworksClient`` pointed at it."""
        async with FakePatchworks() as fake:
            yield fake
