"""The ``patchworks`` command line (also ``python -m patchworks_async``).

Commands::

    patchworks demo [--starts N] [--requests R] [--window W]
    patchworks fake-server [--host H] [--port P] [--requests R] [--manual M] [--window W]
                           [--latency S] [--run-duration S] [--run-outcome CODE]
    patchworks flows list [--filter KEY=VALUE ...] [--sort FIELD ...] [--max N] [--json]
    patchworks flows start FLOW VERSION|deployed [FILE|-] [--jsonl] [--journal PATH]
                           [--concurrency N] [--manual] [--resend-unknown] [--json]
    patchworks runs get RUN [--json]
    patchworks runs wait RUN [--timeout S] [--poll S] [--json]

The API commands take ``--api-key`` or ``--email`` and ``--password``, ``--core-url``,
``--start-url``, ``--login-url`` (defaults from the ``PATCHWORKS_*`` environment variables)
and ``--request-timeout`` (``--timeout`` too, except on ``runs wait``, where it is the wait).

Exit status: 0 success; 1 an API or transport error, a start that failed or may have
started (``unknown``), a run that did not succeed; 2 a usage or configuration error;
130 interrupted. Errors are one ``error: ...`` line on stderr, never a traceback, and
never a credential.

Progress bars and tables use rich (the ``cli`` extra); the library itself never imports
this package, so it works without rich. Without a terminal (CI, pipes) no progress is
drawn: only the lines a script can parse.

The command line is a client of the library: it uses the public ``patchworks_async``
names. Where things live: ``_parser`` (the arguments), ``_input`` (reading payloads),
``_batch`` (``flows start``), ``_commands`` (the other commands, and the client built
from options), ``_output`` (everything printed, and the only run-time import of rich),
``_exit`` (the exit statuses), ``_demo`` (what ``demo`` measures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

from .. import ConfigurationError, JournalMismatchError, PatchworksError
from ._batch import flows_start_command
from ._commands import demo_command, fake_server_command, flows_list_command, runs_command
from ._exit import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from ._output import HAVE_RICH, NO_RICH, describe, fail
from ._parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Every error a user can cause or meet ends here as one ``error: ...`` line and its
    exit status, never a traceback.

    Args:
        argv: The arguments after the program name; ``None`` reads ``sys.argv``.
    """
    args = build_parser().parse_args(argv)
    if args.command != "fake-server" and not HAVE_RICH:
        return fail(NO_RICH, EXIT_USAGE)
    try:
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
    except (KeyboardInterrupt, asyncio.CancelledError):
        return fail("interrupted", EXIT_INTERRUPTED)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except (ConfigurationError, JournalMismatchError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except PatchworksError as exc:
        return fail(describe(exc), EXIT_FAILED)
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python's own flush
        # at exit from complaining about the closed pipe.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return EXIT_USAGE  # pragma: no cover - argparse refuses unknown commands first
