"""Every bad input a new user tried, each a clear error naming the argument, before sending.

One table per place the input goes in: the client's settings, a call, a list's options.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from patchworks_async import (
    ConfigurationError,
    PatchworksClient,
    PayloadTooLargeError,
    RateLimits,
    RetryPolicy,
)
from patchworks_async.testing import FakePatchworks

NAN, INF = math.nan, math.inf

SETTINGS: list[tuple[str, Callable[[], object], str]] = [
    ("backoff_max=nan", lambda: RetryPolicy(backoff_max=NAN), "backoff_max"),
    ("attempts=2.5", lambda: RetryPolicy(attempts=2.5), "attempts"),  # type: ignore[arg-type]
    ("attempts=None", lambda: RetryPolicy(attempts=None), "attempts"),  # type: ignore[arg-type]
    ("per=inf", lambda: RateLimits(per=INF), "per"),
    ("requests=2.5", lambda: RateLimits(requests=2.5), "requests"),  # type: ignore[arg-type]
    ("requests='10'", lambda: RateLimits(requests="10"), "requests"),  # type: ignore[arg-type]
    ("manual_starts > requests", lambda: RateLimits(requests=5, manual_starts=6), "manual_starts"),
    ("timeout=inf", lambda: PatchworksClient(api_key="k", timeout=INF), "timeout"),
    ("timeout=nan", lambda: PatchworksClient(api_key="k", timeout=NAN), "timeout"),
    ("api key with CRLF", lambda: PatchworksClient(api_key="k\r\nX-Evil: 1"), "api_key"),
    ("max_wait=-1", lambda: PatchworksClient(api_key="k", max_wait=-1), "max_wait"),
]


@pytest.mark.parametrize(("case", "make", "named"), SETTINGS, ids=[c for c, _, _ in SETTINGS])
def test_bad_settings_are_refused_at_once_naming_the_argument(
    case: str, make: Callable[[], object], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        make()


def test_keyword_credentials_replace_the_environments() -> None:
    """Documented: keyword arguments override the environment, credentials as a whole."""
    environment = {"PATCHWORKS_EMAIL": "e@example.com", "PATCHWORKS_PASSWORD": "p"}
    client = PatchworksClient.from_env(environment, api_key="k")
    assert "api_key" in repr(client)


Call = Callable[[PatchworksClient], Awaitable[object]]


async def listed(paginator: Any) -> list[object]:
    return [item async for item in paginator]


CALLS: list[tuple[str, Call, type[Exception], str]] = [
    ("list(filters=...)", lambda pw: listed(pw.flows.list(filters={"a": 1})), TypeError, "filter"),  # type: ignore[call-arg]
    (
        "filter as a string",
        lambda pw: listed(pw.flows.list(filter="enabled=true")),
        ConfigurationError,
        "filter",
    ),  # type: ignore[arg-type]
    ("sort=5", lambda pw: listed(pw.flows.list(sort=5)), ConfigurationError, "sort"),  # type: ignore[arg-type]
    ("include=[1]", lambda pw: pw.flows.get(101, include=[1]), ConfigurationError, "include"),  # type: ignore[list-item]
    (
        "prefetch='yes'",
        lambda pw: listed(pw.flows.list(prefetch="yes")),
        ConfigurationError,
        "prefetch",
    ),  # type: ignore[arg-type]
    (
        "a NaN filter value",
        lambda pw: listed(pw.flows.list(filter={"id": NAN})),
        ConfigurationError,
        "filter",
    ),
    (
        "colliding filter keys",
        lambda pw: listed(pw.flows.list(filter={"1": 1, 1: 2})),
        ConfigurationError,
        "filter",
    ),  # type: ignore[dict-item]
    ("a negative id", lambda pw: pw.flows.get(-1), ConfigurationError, "flow_id"),
    ("a non-numeric id", lambda pw: pw.flow_runs.get("abc"), ConfigurationError, "run_id"),
    (
        "a negative start id",
        lambda pw: pw.flows.start(-101, 9001, "x"),
        ConfigurationError,
        "flow_id",
    ),
    (
        "a non-numeric version",
        lambda pw: pw.flows.start(101, "v2", "x"),
        ConfigurationError,
        "version_id",
    ),
    (
        "wait(timeout=nan)",
        lambda pw: pw.flow_runs.wait(1, timeout=NAN),
        ConfigurationError,
        "timeout",
    ),
    (
        "a payload too large",
        lambda pw: pw.flows.start(101, 9001, "x" * 9_000_000),
        PayloadTooLargeError,
        "limit",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "named"), CALLS, ids=[c for c, _, _, _ in CALLS])
async def test_bad_calls_are_refused_before_anything_is_sent(
    fake: FakePatchworks, case: str, call: Call, error: type[Exception], named: str
) -> None:
    async with fake.client() as pw:
        with pytest.raises(error, match=named):
            await call(pw)
    assert fake.received == []


async def test_a_payload_refused_before_sending_still_has_a_status(fake: FakePatchworks) -> None:
    """It is an APIError: ``e.status >= 500`` must work."""
    async with fake.client(max_body_bytes=10) as pw:
        with pytest.raises(PayloadTooLargeError) as caught:
            await pw.flows.start(101, 9001, "x" * 100)
    assert caught.value.status == 413
    assert not caught.value.refused_by_server
