"""patchworks-async: the asyncio client for the Patchworks iPaaS.

Push as much data into Patchworks as the account allows, as fast as it allows, never more,
losing nothing and starting nothing twice::

    from patchworks_async import PatchworksClient

    async with PatchworksClient(api_key="...") as pw:
        started = await pw.flows.start(101, 9001, {"orders": orders})
"""

import logging
from typing import TYPE_CHECKING

from ._bulk import BulkStart
from ._chunking import chunk_records
from ._client import PatchworksClient
from ._config import Priority, RateLimits, RequestKind, RetryPolicy
from ._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BatchStoppedError,
    ConfigurationError,
    ConflictError,
    JournalMismatchError,
    NotFoundError,
    OutcomeUnknownError,
    PatchworksError,
    PayloadError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    RateLimiterUnavailableError,
    RateLimitTimeoutError,
    RequestTimeoutError,
    RunWaitTimeoutError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from ._errors import (
    TimeoutError as TimeoutError,  # importable, but not in __all__ (see below)
)
from ._outcomes import StartResult, StartStatus
from ._pagination import AsyncPaginator, ListOptions, Page
from ._payload import encode_start_body, stringify_payload
from ._protocol import RateLimitStatus
from ._ratelimit import Grant, InProcessRateLimiter, RateLimiter
from ._starts import FlowRunStarted
from ._version import __version__
from .resources.flow_runs import FlowRun, FlowRunLog, FlowRunStatus
from .resources.flow_versions import FlowVersion
from .resources.flows import Flow, FlowLabel
from .resources.lookups import CrossReferenceLookup, LookupValue
from .resources.payloads import PayloadMetadata
from .resources.queue import ScheduledFlow
from .resources.virtual_environments import VirtualEnvironment

if TYPE_CHECKING:
    from ._redis import RedisRateLimiter

logging.getLogger(__name__).addHandler(logging.NullHandler())  # the application decides

_REDIS_NAMES = frozenset({"RedisRateLimiter"})

# ``TimeoutError`` is importable by name but left out of ``__all__`` (as
# ``RequestTimeoutError`` it is in): ``import *`` must not shadow the builtin.


def __getattr__(name: str) -> object:
    """Import the Redis limiter on first use: the core library must not need redis."""
    if name in _REDIS_NAMES:
        try:
            from . import _redis
        except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
            raise ImportError(
                f"{name} needs the redis extra: pip install 'patchworks-async[redis]'"
            ) from exc
        return getattr(_redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "APIError",
    "AsyncPaginator",
    "AuthenticationError",
    "BadRequestError",
    "BatchStoppedError",
    "BulkStart",
    "ConfigurationError",
    "ConflictError",
    "CrossReferenceLookup",
    "Flow",
    "FlowLabel",
    "FlowRun",
    "FlowRunLog",
    "FlowRunStarted",
    "FlowRunStatus",
    "FlowVersion",
    "Grant",
    "InProcessRateLimiter",
    "JournalMismatchError",
    "ListOptions",
    "LookupValue",
    "NotFoundError",
    "OutcomeUnknownError",
    "Page",
    "PatchworksClient",
    "PatchworksError",
    "PayloadError",
    "PayloadMetadata",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Priority",
    "RateLimitError",
    "RateLimitStatus",
    "RateLimitTimeoutError",
    "RateLimiter",
    "RateLimiterUnavailableError",
    "RateLimits",
    "RedisRateLimiter",
    "RequestKind",
    "RequestTimeoutError",
    "RetryPolicy",
    "RunWaitTimeoutError",
    "ScheduledFlow",
    "ServerError",
    "StartResult",
    "StartStatus",
    "TransportError",
    "UnexpectedResponseError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "VirtualEnvironment",
    "__version__",
    "chunk_records",
    "encode_start_body",
    "stringify_payload",
]
