"""The exit statuses of the command line, and the usage error that maps to status 2.

A module of its own so that the commands and ``main`` (in ``__init__``, which imports the
commands) can share them without an import cycle.
"""

from __future__ import annotations

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError"]

EXIT_OK = 0
EXIT_FAILED = 1
"""An API or transport error, a start that failed or may have started, a failed run."""
EXIT_USAGE = 2
"""A usage or configuration error: running the same command again cannot help."""
EXIT_INTERRUPTED = 130
"""Stopped by SIGINT or SIGTERM (128 + 2, as shells report Ctrl-C)."""


class UsageError(Exception):
    """A mistake in the command line that argparse cannot see (exit status 2)."""
