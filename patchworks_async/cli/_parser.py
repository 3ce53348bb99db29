"""The command line's grammar: argparse, one function per command, and the argument types.

Values are checked here (a positive number, a version id or ``deployed``, ``KEY=VALUE``), so
a mistake exits 2 with argparse's usage line before anything is read or sent. What argparse
cannot see (credentials, a file that cannot be opened) is checked by the commands.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import TYPE_CHECKING, TypeAlias

from .. import FlowRunStatus, __version__
from ._exit import EXIT_STATUSES

if TYPE_CHECKING:
    # What add_subparsers() returns: argparse names its class privately, typeshed spells it.
    _Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``patchworks`` parser; ``args.command`` (and ``args.action``) name the command."""
    parser = argparse.ArgumentParser(
        prog="patchworks",
        description="Command line for the Patchworks iPaaS API.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common_options(parser)
    _api_options(parser, wait_timeout=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_fake_server(commands)
    _add_flows(commands)
    _add_runs(commands)
    return parser


def _epilog() -> str:
    """Where the credentials come from, and every exit status with what it means."""
    where = textwrap.fill(
        "Credentials and URLs default to PATCHWORKS_API_KEY (or PATCHWORKS_EMAIL and "
        "PATCHWORKS_PASSWORD), PATCHWORKS_CORE_URL, PATCHWORKS_START_URL and "
        "PATCHWORKS_LOGIN_URL. Output is plain text (tab-separated tables, no colour, no "
        "progress) unless stdout is a terminal.",
        width=88,
    )
    statuses = "\n".join(
        textwrap.fill(meaning, width=88, initial_indent=f"  {status:<5}", subsequent_indent=" " * 7)
        for status, meaning in EXIT_STATUSES
    )
    return f"{where}\n\nexit status:\n{statuses}"


def _common_options(parser: argparse.ArgumentParser) -> None:
    """``-v``, accepted before the command and after it (its default is "absent")."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="show the client's retries and 429 pauses on stderr; -vv every request too",
    )


def _add_demo(commands: _Commands) -> None:
    """``demo``: the numbers a newcomer asks for first, with no account needed."""
    demo = commands.add_parser(
        "demo",
        help="push flow starts through the client against an embedded fake server",
        description=(
            "Start FakePatchworks in-process with a shrunken rate-limit window and push "
            "flow starts through the client with flows.start_many; print accepted, 429s "
            "and the rate against the limit."
        ),
    )
    _common_options(demo)
    demo.add_argument("--starts", type=_positive_int, default=300, help="flow starts to push (300)")
    demo.add_argument(
        "--requests", type=_positive_int, default=60, help="the account's limit per window (60)"
    )
    demo.add_argument(
        "--window", type=_positive_float, default=3.0, help="the window in seconds (3.0)"
    )


def _add_fake_server(commands: _Commands) -> None:
    """``fake-server``: FakePatchworks for tools in other processes or languages."""
    server = commands.add_parser(
        "fake-server",
        help="serve FakePatchworks on a port until interrupted",
        description=(
            "Serve FakePatchworks on loopback until Ctrl-C or SIGTERM. Once it listens, one "
            "JSON line with core_url, start_url, login_url and api_key is printed to stdout, "
            "then the export lines that point the command line (or "
            "PatchworksClient.from_env()) at it: on stdout when it is a terminal, else on "
            "stderr, so stdout stays one JSON line for a tool to read."
        ),
    )
    _common_options(server)
    server.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    server.add_argument("--port", type=_port, default=8080, help="port, 0 for any free one (8080)")
    server.add_argument(
        "--requests", type=_positive_int, default=240, help="requests per window (240)"
    )
    server.add_argument(
        "--manual", type=_positive_int, default=10, help="manual initialise per window (10)"
    )
    server.add_argument(
        "--window", type=_positive_float, default=60.0, help="window in seconds (60)"
    )
    server.add_argument(
        "--latency",
        type=_latency,
        default=0.0,
        metavar="S|LO,HI",
        help="seconds added to every request, or LO,HI for uniform jitter (0)",
    )
    server.add_argument(
        "--quiet",
        action="store_true",
        help="print only the JSON line, not the export lines for a shell (for programs)",
    )
    server.add_argument(
        "--queue-delay",
        type=_non_negative_float,
        default=0.5,
        help="seconds a queued start waits before it becomes a run (0.5)",
    )
    server.add_argument(
        "--run-duration",
        type=_non_negative_float,
        default=0.5,
        help="seconds a started run stays STARTED before it finishes (0.5)",
    )
    server.add_argument(
        "--run-outcome",
        type=int,
        choices=[status.value for status in FlowRunStatus if status is not FlowRunStatus.STARTED],
        default=FlowRunStatus.SUCCESS.value,
        help="the status runs finish with: 2 success, 3 failure, 4 stopped, 5 partial (2)",
    )


def _add_flows(commands: _Commands) -> None:
    """``flows list`` and ``flows start``."""
    flows = commands.add_parser("flows", help="list and start process flows")
    flow_commands = flows.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_flows_list(flow_commands)
    _add_flows_start(flow_commands)


def _add_flows_list(flow_commands: _Commands) -> None:
    """``flows list``: the list endpoint's filters and sorts, as repeatable options."""
    listing = flow_commands.add_parser(
        "list",
        help="list the account's flows",
        description="List flows as a table, or as JSON Lines with --json.",
    )
    _common_options(listing)
    _api_options(listing, wait_timeout=False)
    _rate_options(listing)
    listing.add_argument(
        "--filter",
        dest="filters",
        metavar="KEY=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="filter[KEY]=VALUE: name, enabled, deployed, id...; a,b or a repeated KEY "
        "matches any of the values",
    )
    listing.add_argument(
        "--sort",
        action="append",
        default=[],
        metavar="FIELD",
        help="name, enabled_at, created_at or id; --sort=-FIELD sorts descending (repeatable)",
    )
    listing.add_argument("--max", type=_positive_int, metavar="N", help="stop after N flows")
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per flow (JSON Lines), streamed"
    )


def _add_flows_start(flow_commands: _Commands) -> None:
    """``flows start``: one payload, or one per line, with the knobs of ``start_many``."""
    start = flow_commands.add_parser(
        "start",
        help="start a flow once, or once per line of a JSON Lines file",
        description=(
            "Start FLOW with the payload in FILE (or stdin), sent verbatim as a string, and "
            "print the summary and the run id; with --jsonl, once per non-blank line of "
            "FILE, each line checked to be JSON and sent as written. The input is read as "
            "it is needed, never whole. With --journal a re-run skips what started and "
            "never resends what may have started. Exit 3 if any item may have started, "
            "else 1 if any failed."
        ),
    )
    _common_options(start)
    _api_options(start, wait_timeout=False)
    _rate_options(start)
    start.add_argument("flow", type=_positive_int, metavar="FLOW", help="the flow id")
    start.add_argument(
        "version",
        type=_version,
        metavar="VERSION",
        help="the flow version id, or 'deployed' for the deployed version",
    )
    start.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="the payload file; - is stdin (-)"
    )
    start.add_argument("--jsonl", action="store_true", help="one JSON payload per line of FILE")
    start.add_argument(
        "--journal", metavar="PATH", help="SQLite file recording every item: makes re-runs safe"
    )
    start.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        metavar="N",
        help="requests in flight at most (16)",
    )
    start.add_argument(
        "--manual", action="store_true", help="manual initialise (10 a minute) instead of start"
    )
    start.add_argument(
        "--resend-unknown",
        action="store_true",
        help="with --journal, resend items that may have started (they may start twice)",
    )
    start.add_argument(
        "--json", action="store_true", help="one JSON object per result instead of the report"
    )


def _add_runs(commands: _Commands) -> None:
    """``runs get`` and ``runs wait``.

    On ``runs wait``, ``--timeout`` is the whole wait, so one request's limit is only
    ``--request-timeout`` there.
    """
    runs = commands.add_parser("runs", help="read flow runs and wait for them")
    run_commands = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = run_commands.add_parser("get", help="show a flow run")
    _common_options(get)
    _api_options(get, wait_timeout=False)
    _rate_options(get)
    get.add_argument("run", type=_positive_int, metavar="RUN", help="the flow run id")
    get.add_argument("--json", action="store_true", help="print the run as one JSON object")
    wait = run_commands.add_parser(
        "wait",
        help="wait for a flow run to finish",
        description=(
            "Poll a run until it finishes. Exit 0 if it succeeded, 1 if it did not, 5 if it "
            "was still running after --timeout."
        ),
    )
    _common_options(wait)
    _api_options(wait, wait_timeout=True)
    _rate_options(wait)
    wait.add_argument("run", type=_positive_int, metavar="RUN", help="the flow run id")
    wait.add_argument(
        "--timeout",
        dest="wait_timeout",
        type=_positive_float,
        default=300.0,
        metavar="S",
        help="seconds to wait in all (300)",
    )
    wait.add_argument(
        "--poll", type=_positive_float, default=2.0, metavar="S", help="seconds between polls (2)"
    )
    wait.add_argument("--json", action="store_true", help="print the run as one JSON object")


def _api_options(parser: argparse.ArgumentParser, *, wait_timeout: bool) -> None:
    """The connection options, accepted before the command and after it.

    Their default is "absent" (``SUPPRESS``), so a value given before the command is not
    overwritten by the subcommand's default.

    Args:
        parser: The top-level parser, or one command's.
        wait_timeout: Whether ``--timeout`` is taken by the command (``runs wait``), leaving
            only ``--request-timeout`` for one request.
    """
    group = parser.add_argument_group("connection (defaults from PATCHWORKS_* variables)")
    absent = argparse.SUPPRESS
    group.add_argument(
        "--api-key", default=absent, help="API key (better: PATCHWORKS_API_KEY, kept out of ps)"
    )
    group.add_argument("--email", default=absent, help="login email (PATCHWORKS_EMAIL)")
    group.add_argument("--password", default=absent, help="login password (PATCHWORKS_PASSWORD)")
    group.add_argument("--core-url", default=absent, help="Core API URL (PATCHWORKS_CORE_URL)")
    group.add_argument(
        "--start-url", default=absent, help="Start service URL (PATCHWORKS_START_URL)"
    )
    group.add_argument("--login-url", default=absent, help="login URL (PATCHWORKS_LOGIN_URL)")
    flags = ["--request-timeout"] if wait_timeout else ["--timeout", "--request-timeout"]
    group.add_argument(
        *flags,
        dest="request_timeout",
        type=_positive_float,
        default=absent,
        metavar="S",
        help="seconds one request may take (30)",
    )


def _rate_options(parser: argparse.ArgumentParser) -> None:
    """The account's rate limit, for accounts on another tier (or a fake server)."""
    group = parser.add_argument_group("rate limit (the account's; the defaults are 240 per 60 s)")
    group.add_argument(
        "--requests",
        dest="rate_requests",
        type=_positive_int,
        metavar="N",
        help="requests the account may make per window (240)",
    )
    group.add_argument(
        "--per",
        dest="rate_per",
        type=_positive_float,
        metavar="S",
        help="the window, in seconds (60)",
    )


# ---------------------------------------------------------------------------- argument types
# Each raises ArgumentTypeError, which argparse prints after the usage line (exit 2).


def _positive_int(text: str) -> int:
    """A whole number above zero: an id, a count, a limit."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text}")
    return value


def _positive_float(text: str) -> float:
    """A finite number of seconds above zero."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _latency(text: str) -> float | tuple[float, float]:
    """Seconds (``0.02``), or bounds of a uniform jitter (``0.01,0.05``), as the fake takes."""
    if "," not in text:
        return _non_negative_float(text)
    low, _, high = text.partition(",")
    bounds = (_non_negative_float(low), _non_negative_float(high))
    if bounds[0] > bounds[1]:
        raise argparse.ArgumentTypeError(f"LO must not exceed HI: {text}")
    return bounds


def _non_negative_float(text: str) -> float:
    """A finite number of seconds, zero allowed."""
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _float(text: str) -> float:
    """A finite number: ``nan`` and ``inf`` parse as floats but mean nothing as seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _version(text: str) -> int | None:
    """A version id, or ``None`` for ``deployed``: how ``start_many`` asks for that version."""
    if text == "deployed":
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"a version id or 'deployed', not {text!r}") from None


def _key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a pair; the value may be empty or hold ``=``, the key may not."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key.strip(), value
