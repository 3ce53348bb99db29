"""patchworks-async: the asyncio client for the Patchworks iPaaS.

Push as much data into Patchworks as the account allows, as fast as it allows, never more,
losing nothing and starting nothing twice::

    from patchworks_async import PatchworksClient

    async with PatchworksClient(api_key="...") as pw:
        started = await pw.flows.start(101, 9001, {"orders": orders})
"""

from ._bulk import StartResult, StartStatus
from ._chunking import chunk_records
from ._client import PatchworksClient
from ._config import RateLimits, RetryPolicy
from ._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OutcomeUnknownError,
    PatchworksError,
    PayloadError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    RunWaitTimeoutError,
    ServerError,
    TimeoutError,
    TransportError,
    UnexpectedResponseError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from ._http import RateLimitStatus
from ._journal import JournalMismatchError
from ._models import (
    CrossReferenceLookup,
    Flow,
    FlowRun,
    FlowRunStarted,
    FlowRunStatus,
    FlowVersion,
    LookupValue,
)
from ._pagination import AsyncPaginator, ListOptions, Page
from ._payload import encode_start_body, stringify_payload
from ._ratelimit import InProcessRateLimiter, RateLimiter, RequestKind
from ._version import __version__

__all__ = [
    "APIError",
    "AsyncPaginator",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "CrossReferenceLookup",
    "Flow",
    "FlowRun",
    "FlowRunStarted",
    "FlowRunStatus",
    "FlowVersion",
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
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitStatus",
    "RateLimiter",
    "RateLimits",
    "RequestKind",
    "RetryPolicy",
    "RunWaitTimeoutError",
    "ServerError",
    "StartResult",
    "StartStatus",
    "TimeoutError",
    "TransportError",
    "UnexpectedResponseError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "__version__",
    "chunk_records",
    "encode_start_body",
    "stringify_payload",
]
