"""Retries raise no warning, even on a Python that deprecates asyncio.iscoroutinefunction().

Python 3.14 deprecates ``asyncio.iscoroutinefunction()``. backoff 2.2.1 (archived) calls it
when it wraps a coroutine function, which the client does on its first request: under
``-W error``, as many test suites run, that request would raise. python-backoff 2.2.2 and
later ask ``inspect`` instead. This script makes the asyncio function warn as 3.14 does, on
whatever Python runs it, turns every warning into an error, and sends requests that go
through backoff's retry loop (a GET retried after a 503, a start, a bulk start). It exits
non-zero if anything on that path still calls the deprecated function.

Run by ``.ci/run`` as ``python -W error .ci/backoff_warnings.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from patchworks_async.testing import FakePatchworks, Fault


@contextlib.contextmanager
def iscoroutinefunction_deprecated() -> Iterator[None]:
    """``asyncio.iscoroutinefunction`` warns while this lasts, as it does on Python 3.14."""
    real = asyncio.iscoroutinefunction

    def deprecated(func: Any) -> bool:
        warnings.warn(
            "'asyncio.iscoroutinefunction' is deprecated and slated for removal in "
            "Python 3.16; use inspect.iscoroutinefunction() instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return real(func)

    asyncio.iscoroutinefunction = deprecated  # type: ignore[assignment]
    try:
        yield
    finally:
        asyncio.iscoroutinefunction = real


async def main() -> None:
    # The fake starts first: it is the server side (aiohttp's router itself asks asyncio in
    # older releases), and what is checked here is the client.
    async with FakePatchworks() as fake:
        with iscoroutinefunction_deprecated():
            async with fake.client() as pw:
                fake.inject(Fault.UNAVAILABLE_BEFORE, route="core")
                flow = await pw.flows.get(101)
                tries = [r for r in fake.received if r.path.endswith("/flows/101")]
                assert len(tries) == 2, f"the 503 was not retried once: {len(tries)} tries"
                await pw.flows.start(flow.id, 9001, {"order": 1})
                payloads = ({"order": n} for n in range(5))
                async with pw.flows.start_many(101, 9001, payloads) as batch:
                    outcomes = [result async for result in batch]
                assert len(outcomes) == 5
    print("backoff: a retried GET, a start and a bulk start raised no warning under -W error")


if __name__ == "__main__":
    warnings.simplefilter("error")
    asyncio.run(main())
