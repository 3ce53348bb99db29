"""The ``patchworks`` command line (also ``python -m patchworks_async``).

Commands::

    patchworks --version
    patchworks demo [--starts N] [--requests R] [--window W]
    patchworks fake-server [--host H] [--port P] [--requests R] [--manual M] [--window W]
                           [--latency S] [--queue-delay S] [--run-duration S]
                           [--run-outcome CODE]
    patchworks flows list [--filter KEY=VALUE ...] [--sort FIELD ...] [--max N] [--json]
    patchworks flows start FLOW VERSION|deployed [FILE|-] [--jsonl] [--journal PATH]
                           [--concurrency N] [--manual] [--resend-unknown] [--json]
    patchworks runs get RUN [--json]
    patchworks runs wait RUN [--timeout S] [--poll S] [--json]

The API commands take ``--api-key`` or ``--email`` and ``--password``, ``--core-url``,
``--start-url``, ``--login-url`` (defaults from the ``PATCHWORKS_*`` environment variables),
``--request-timeout`` (``--timeout`` too, except on ``runs wait``, where it is the wait),
and ``--requests N --per S``, the account's rate limit. Every command takes ``-v``
(the client's retries and 429 pauses, one line each on stderr; ``-vv`` every request),
and ``patchworks --version`` prints the version.

Exit status (constants in ``_exit``)::

    0    success
    1    failed: an item failed to start, the API refused a request, the server could
         not be reached, the run waited for did not succeed
    2    usage or configuration: a bad option, no credentials or both kinds, an input
         that cannot be read, a journal of other input, a port that cannot be used
    3    unknown: some item may have started; wins over 1, 2, 4 and 5 (a batch with
         failed and unknown items exits 3): check it before anything is resent
    4    authentication: credentials refused (401, a failed login) or lacking (403)
    5    timeout: ``runs wait`` gave up, or a request timed out
    130  interrupted (SIGINT or SIGTERM)

Errors are one ``error: ...`` line on stderr (argparse's own usage errors add the usage
lines above theirs), never a traceback, and never a credential.

Progress bars and tables use rich (the ``cli`` extra); the library itself never imports
this package, so it works without rich. When stdout is not a terminal (CI, pipes) nothing
is drawn and nothing is coloured: only lines a script can parse (``flows list`` prints
tab-separated rows).

The command line is a client of the library: it uses the public ``patchworks_async``
names. Where things live: ``_parser`` (the arguments), ``_input`` (reading payloads),
``_batch`` (``flows start``), ``_commands`` (the other commands, and the client built
from options), ``_output`` (everything printed, and the only run-time import of rich),
``_exit`` (the exit statuses), ``_demo`` (what ``demo`` measures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

from .. import PatchworksError
from ._batch import flows_start_command
from ._commands import demo_command, fake_server_command, flows_list_command, runs_command
from ._exit import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError, exit_status
from ._output import HAVE_RICH, NO_RICH, describe, fail, library_logging, one_line
from ._parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Every error a user can cause or meet ends here as one ``error: ...`` line and its
    exit status, never a traceback (a bug too: ``-v`` shows its traceback).

    Args:
        argv: The arguments after the program name; ``None`` reads ``sys.argv``.
    """
    args = build_parser().parse_args(argv)
    if args.command != "fake-server" and not HAVE_RICH:
        return fail(NO_RICH, EXIT_USAGE)
    verbosity: int = getattr(args, "verbose", 0)
    with library_logging(verbosity):
        try:
            return _run(args)
        except (KeyboardInterrupt, asyncio.CancelledError):
            return fail("interrupted", EXIT_INTERRUPTED)
        except UsageError as exc:
            return fail(str(exc), EXIT_USAGE)
        except PatchworksError as exc:
            return fail(describe(exc), exit_status(exc))
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, and keep Python's own flush
            # at exit from complaining about the closed pipe.
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return EXIT_FAILED
        except Exception as exc:
            if verbosity:
                raise
            return fail(
                f"unexpected {type(exc).__name__}: {one_line(exc)} (run with -v for the "
                "traceback, and please report it)",
                EXIT_FAILED,
            )


def _run(args: argparse.Namespace) -> int:
    """Run the command ``args`` names; returns its exit status, or raises its error."""
    if args.command == "demo":
        return demo_command(args)
    if args.command == "fake-server":
        return fake_server_command(args)
    if args.command == "flows" and args.action == "list":
        return flows_list_command(args)
    if args.command == "flows":
        return flows_start_command(args)
    if args.command == "runs":
        return runs_command(args)
    return EXIT_USAGE  # pragma: no cover - argparse refuses unknown commands first
