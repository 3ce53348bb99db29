"""The exit statuses of the command line, and which error exits with which.

=====  ==========================================================================
 0     success: everything started (or was skipped), the run succeeded
 1     failed: an item failed to start, the API refused a request, the server
       could not be reached, the run waited for did not succeed
 2     usage or configuration: a bad option, no credentials or both kinds,
       an input that cannot be read, a journal of other input, a busy port
 3     unknown: some item may have started (its reply was lost); it wins over
       every status but 130, since it must be checked before anything is resent
 4     authentication: the credentials were refused (401, a failed login) or
       lack the permission (403)
 5     timeout: ``runs wait`` gave up, or a request timed out
 130   interrupted by SIGINT (Ctrl-C) or SIGTERM
=====  ==========================================================================

A module of its own so that the commands and ``main`` (in ``__init__``, which imports the
commands) can share them without an import cycle.
"""

from __future__ import annotations

import builtins

from .. import (
    AuthenticationError,
    ConfigurationError,
    JournalMismatchError,
    OutcomeUnknownError,
    PermissionDeniedError,
)

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STATUSES",
    "EXIT_TIMEOUT",
    "EXIT_UNKNOWN",
    "EXIT_USAGE",
    "UsageError",
    "exit_status",
]

EXIT_OK = 0
"""Success: everything started or was skipped; the run succeeded."""
EXIT_FAILED = 1
"""An item that failed to start, an API or transport error, a run that did not succeed."""
EXIT_USAGE = 2
"""A usage or configuration error: running the same command again cannot help."""
EXIT_UNKNOWN = 3
"""Some item may have started (its outcome is unknown): check before sending it again."""
EXIT_AUTH = 4
"""The credentials were refused (401, a failed login) or lack the permission (403)."""
EXIT_TIMEOUT = 5
"""``runs wait`` gave up before the run finished, or a request timed out."""
EXIT_INTERRUPTED = 130
"""Stopped by SIGINT or SIGTERM (128 + 2, as shells report Ctrl-C)."""

EXIT_STATUSES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (
        EXIT_FAILED,
        "failed: an item failed to start, the API refused, the server could not be "
        "reached, or the run did not succeed",
    ),
    (
        EXIT_USAGE,
        "usage or configuration: a bad option, missing credentials, an input that cannot be read",
    ),
    (
        EXIT_UNKNOWN,
        "unknown: some item may have started (wins over 1, 2, 4 and 5: check it before resending)",
    ),
    (EXIT_AUTH, "authentication: the credentials were refused (401) or lack permission (403)"),
    (EXIT_TIMEOUT, "timeout: runs wait gave up, or a request timed out"),
    (EXIT_INTERRUPTED, "interrupted by Ctrl-C or SIGTERM"),
)
"""Every status with what it means, as ``--help`` lists them."""


class UsageError(Exception):
    """A mistake in the command line that argparse cannot see (exit status 2)."""


def exit_status(error: BaseException) -> int:
    """The exit status an error ends the command with.

    An input that cannot be read (an ``OSError`` that is not a timeout) is a usage error:
    the command line named it.

    Args:
        error: What stopped the command.
    """
    if isinstance(error, UsageError | ConfigurationError | JournalMismatchError):
        return EXIT_USAGE
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return EXIT_AUTH
    if isinstance(error, builtins.TimeoutError):
        return EXIT_TIMEOUT  # a request's TimeoutError, RunWaitTimeoutError, a slot's wait
    if isinstance(error, OutcomeUnknownError):
        return EXIT_UNKNOWN
    if isinstance(error, OSError):
        return EXIT_USAGE
    return EXIT_FAILED
