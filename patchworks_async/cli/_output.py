"""What the command line prints: progress bars, tables, JSON lines, one-line errors.

The only module of the command line that imports rich at run time (``_batch`` names two of
its types for mypy only), and it does so guardedly: without the ``cli`` extra the package
still imports, ``main`` prints its one-line "needs the cli extra" error, and
``fake-server`` (which draws nothing) still runs.

Progress goes to stderr and only to a terminal; stdout carries what a script parses.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
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
    "HAVE_RICH",
    "NO_RICH",
    "add_flow_row",
    "describe",
    "fail",
    "flows_table",
    "json_line",
    "model_as_dict",
    "one_line",
    "print_table",
    "progress",
    "rate",
    "status_name",
    "stderr_console",
    "when",
]

NO_RICH = "the command line needs the cli extra: pip install 'patchworks-async[cli]'"


def stderr_console() -> Console:
    """The console that progress bars and notices are drawn on (never stdout)."""
    return Console(stderr=True, highlight=False)


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
    """An empty table of flows, its columns the fields a script would look for."""
    return Table("id", "name", "enabled_at", "deployed_version_id")


def add_flow_row(table: Table, flow: Flow) -> None:
    """Add ``flow`` to a ``flows_table``.

    Cells are ``Text``: a flow named ``[bold]x`` is shown as written, never as markup.
    """
    cells = (
        str(flow.id),
        flow.name or "-",
        when(flow.enabled_at),
        "-" if flow.deployed_version_id is None else str(flow.deployed_version_id),
    )
    table.add_row(*(Text(cell) for cell in cells))


def print_table(table: Table) -> None:
    """Print ``table`` to stdout, without rich's guesses at highlighting."""
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

    A transport error that is not an API reply says so: the server was never reached.
    """
    text = one_line(exc)
    if isinstance(exc, TransportError) and not isinstance(exc, APIError):
        return f"cannot reach the server: {text}"
    return text
