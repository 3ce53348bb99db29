"""What the command line prints: progress bars, tables, JSON lines, one-line errors.

The only module of the command line that imports rich at run time (``_batch`` names two of
its types for mypy only), and it does so guardedly: without the ``cli`` extra the package
still imports, ``main`` prints its one-line "needs the cli extra" error, and
``fake-server`` (which draws nothing) still runs.

Output is for people only when a person is looking: with stdout and stderr both terminals
the table is rich and progress is drawn (on stderr); otherwise nothing is drawn and stdout
carries lines a script can parse (tab-separated rows, JSON Lines, ``name value`` lines),
without box drawing or colour. The library's log records (retries, 429 pauses) are
printed here too, one ``warning: ...`` line each, and only with ``--verbose``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from .. import APIError, Flow, FlowRun, FlowRunStatus, PatchworksError, TransportError

try:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table
    from rich.text import Text
except ImportError:  # pragma: no cover - exercised in a subprocess without rich
    HAVE_RICH = False
else:
    HAVE_RICH = True

__all__ = [
    "FLOW_COLUMNS",
    "HAVE_RICH",
    "NO_RICH",
    "add_flow_row",
    "describe",
    "fail",
    "flow_cells",
    "flows_table",
    "interactive",
    "json_line",
    "library_logging",
    "model_as_dict",
    "one_line",
    "print_table",
    "progress",
    "rate",
    "status_name",
    "stderr_console",
    "stdout_is_terminal",
    "tsv_line",
    "when",
]

NO_RICH = "the command line needs the cli extra: pip install 'patchworks-async[cli]'"


FLOW_COLUMNS = ("id", "name", "enabled_at", "deployed_version_id")
"""The columns of ``flows list``: the fields a script would look for."""


@functools.cache
def stderr_console() -> Console:
    """The console that progress bars, notices and log lines are drawn on (never stdout).

    One console for the whole run, so a log line printed while a bar is drawn lands above
    the bar instead of through it. It writes to whatever ``sys.stderr`` is at the time.
    """
    return Console(stderr=True, highlight=False)


def _isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a closed or missing stream is not)."""
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal: rich output there, plain lines anywhere else."""
    return _isatty(sys.stdout)


def interactive() -> bool:
    """Whether progress may be drawn: stdout and stderr are both terminals.

    Not when stdout is piped (``| less``, ``> file``): a bar on the terminal would draw
    over the pager, and a script has no use for it.
    """
    return _isatty(sys.stdout) and _isatty(sys.stderr)


def progress(console: Console, *, show: bool) -> Progress:
    """A progress bar on ``console``, drawn only when ``show``; gone once finished.

    stdout is never redirected through it, so whatever a command prints to stdout while
    the bar runs (JSON Lines) stays on stdout, untouched.

    Args:
        console: Where to draw (``stderr_console()``).
        show: Whether to draw at all: not without a terminal, where it would only be noise
            in a log.
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[count]}", markup=False),
        TextColumn("{task.fields[rate]}", markup=False),
        TextColumn("ETA", markup=False),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}", markup=False),
        console=console,
        transient=True,
        disable=not show,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def rate(count: int, elapsed: float) -> str:
    """``count`` per second as the bar shows it; empty before any time has passed."""
    return f"{count / elapsed:.1f}/s" if elapsed > 0 else ""


def when(value: dt.datetime | None) -> str:
    """A timestamp for a table or a text block, to the second; ``-`` when absent."""
    return "-" if value is None else value.isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """``json.dumps``'s fallback: dates as ISO 8601, anything else refused."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_line(data: Any) -> str:
    """``data`` as one line of JSON, non-ASCII text kept as written."""
    return json.dumps(data, default=_jsonable, ensure_ascii=False)


def model_as_dict(model: Flow | FlowRun) -> dict[str, Any]:
    """A model's fields, nested models included, as ``json_line`` prints them.

    Field names are the wire's, so the JSON reads like the API's own. Timestamps stay
    ``datetime`` (``json_line`` writes them) and a status stays a ``FlowRunStatus``,
    which ``json`` writes as its number.
    """
    return attrs.asdict(model, recurse=True)


def status_name(status: FlowRunStatus | int | str | None) -> str:
    """The name of a run status; a code this version does not know is shown, not hidden."""
    if isinstance(status, FlowRunStatus):
        return status.name
    return "-" if status is None else f"UNKNOWN({status})"


def status_text(status: FlowRunStatus | int | str | None) -> str:
    """``SUCCESS (2)``: the name and, when there is one, the code."""
    return (
        f"{status_name(status)} ({int(status)})" if isinstance(status, int) else status_name(status)
    )


def flows_table() -> Table:
    """An empty table of flows, with ``FLOW_COLUMNS``."""
    return Table(*FLOW_COLUMNS)


def flow_cells(flow: Flow) -> tuple[str, ...]:
    """A flow's ``FLOW_COLUMNS`` as text, ``-`` for a value it does not have."""
    return (
        str(flow.id),
        flow.name or "-",
        when(flow.enabled_at),
        "-" if flow.deployed_version_id is None else str(flow.deployed_version_id),
    )


def add_flow_row(table: Table, flow: Flow) -> None:
    """Add ``flow`` to a ``flows_table``.

    Cells are ``Text``: a flow named ``[bold]x`` is shown as written, never as markup.
    """
    table.add_row(*(Text(cell) for cell in flow_cells(flow)))


def tsv_line(cells: Iterable[str]) -> str:
    """Cells joined by tabs, each on one line and without a tab of its own (``cut -f``)."""
    return "\t".join(" ".join(cell.replace("\t", " ").splitlines()) for cell in cells)


def print_table(table: Table) -> None:
    """Print ``table`` to stdout (a terminal), without rich's guesses at highlighting."""
    Console(highlight=False).print(table)


def fail(message: str, status: int) -> int:
    """Print ``error: message`` on stderr and return ``status``, for ``return fail(...)``."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return status


def one_line(error: BaseException) -> str:
    """An error's message on one line (its class name if it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def describe(exc: PatchworksError) -> str:
    """One line for an error: its message, whatever the class, without a traceback.

    A transport error that is not an API reply or a timeout says so: the server was never
    reached. (``TimeoutError`` is the builtin, which the library's timeouts subclass.)
    """
    text = one_line(exc)
    if isinstance(exc, TransportError) and not isinstance(exc, APIError | TimeoutError):
        return f"cannot reach the server: {text}"
    return text


# ---------------------------------------------------------------------------- log records

_LEVEL_STYLES = {"debug": "dim", "info": "cyan", "warning": "yellow", "error": "red"}

_LIBRARY_LOGGER = "patchworks_async"


class _LineHandler(logging.Handler):
    """Each record as one ``level: message`` line on the stderr console.

    Never a traceback: a record's exception is reduced to its one-line message.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Print ``record`` as one line (above a progress bar, if one is drawn)."""
        try:
            text = " ".join(record.getMessage().split())
            if record.exc_info and record.exc_info[1] is not None:
                text += f": {one_line(record.exc_info[1])}"
            level = record.levelname.lower()
            if not HAVE_RICH:  # fake-server runs without the cli extra
                print(f"{level}: {text}", file=sys.stderr, flush=True)
                return
            style = _LEVEL_STYLES.get(level, "") if interactive() else ""  # no colour in a pipe
            line = Text.assemble((f"{level}:", style), " ", text)
            stderr_console().print(line, soft_wrap=True, highlight=False, markup=False)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def library_logging(verbosity: int) -> Iterator[None]:
    """Route the library's log records to stderr, one line each, for the block.

    Quiet by default, so that an error is exactly one ``error:`` line (a server that
    cannot be reached is retried, and each retry is a warning); ``-v`` shows warnings and
    info (retries, 429 pauses, login renewals), ``-vv`` every request too. The logger's
    level, handlers and propagation are put back afterwards (``main`` may run in a process
    that has its own logging).

    Args:
        verbosity: How many times ``-v`` was given.
    """
    logger = logging.getLogger(_LIBRARY_LOGGER)
    level = logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else None
    handler = _LineHandler(logging.CRITICAL + 1 if level is None else level)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)  # with a handler, Python's last-resort one stays silent
    logger.propagate = False
    if level is not None:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
