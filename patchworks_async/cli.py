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
this module, so it works without rich. Without a terminal (CI, pipes) no progress is
drawn: only the lines a script can parse.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Sequence
from typing import Any

from ._bulk import StartResult, StartStatus
from ._client import PatchworksClient
from ._config import ENV_VARS, RateLimits, settings_from_env
from ._demo import run_demo
from ._errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    JournalMismatchError,
    NotFoundError,
    PatchworksError,
    PayloadTooLargeError,
    PermissionDeniedError,
    TransportError,
    ValidationError,
)
from ._models import Flow, FlowRun, FlowRunStatus, converter
from ._pagination import ListOptions
from .testing import FakePatchworks

try:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table
    from rich.text import Text
except ImportError:  # pragma: no cover - exercised in a subprocess without rich
    HAVE_RICH = False
else:
    HAVE_RICH = True

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

NO_RICH = "the command line needs the cli extra: pip install 'patchworks-async[cli]'"
DRAIN_TIMEOUT = 5.0
"""Seconds the requests on the wire get to finish once a batch is stopped."""
MAX_PROBLEM_LINES = 20
"""Failed or unknown items listed one per line after a batch; the rest are counted."""

_CREDENTIALS = ("api_key", "email", "password")


class _UsageError(Exception):
    """A mistake in the command line that argparse cannot see (exit status 2)."""


# ---------------------------------------------------------------------------- the parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patchworks",
        description="Command line for the Patchworks iPaaS API.",
        epilog=(
            "Credentials and URLs default to PATCHWORKS_API_KEY (or PATCHWORKS_EMAIL and "
            "PATCHWORKS_PASSWORD), PATCHWORKS_CORE_URL, PATCHWORKS_START_URL and "
            "PATCHWORKS_LOGIN_URL. Exit status: 0 success, 1 API error or failed item, "
            "2 usage or configuration error, 130 interrupted."
        ),
    )
    _api_options(parser, wait_timeout=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="push flow starts through the client against an embedded fake server",
        description=(
            "Start FakePatchworks in-process with a shrunken rate-limit window and push "
            "flow starts through the client with flows.start_many; print accepted, 429s "
            "and the rate against the limit."
        ),
    )
    demo.add_argument("--starts", type=_positive_int, default=300, help="flow starts to push (300)")
    demo.add_argument(
        "--requests", type=_positive_int, default=60, help="the account's limit per window (60)"
    )
    demo.add_argument(
        "--window", type=_positive_float, default=3.0, help="the window in seconds (3.0)"
    )

    server = commands.add_parser(
        "fake-server",
        help="serve FakePatchworks on a port until interrupted",
        description=(
            "Serve FakePatchworks on loopback until Ctrl-C or SIGTERM. Once it listens, one "
            "JSON line with core_url, start_url, login_url and api_key is printed to stdout."
        ),
    )
    server.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    server.add_argument("--port", type=int, default=8080, help="port, 0 for any free one (8080)")
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

    flows = commands.add_parser("flows", help="list and start process flows")
    flow_commands = flows.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = flow_commands.add_parser(
        "list",
        help="list the account's flows",
        description="List flows as a table, or as JSON Lines with --json.",
    )
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

    start = flow_commands.add_parser(
        "start",
        help="start a flow once, or once per line of a JSON Lines file",
        description=(
            "Start FLOW with the payload in FILE (or stdin), sent verbatim as a string; with "
            "--jsonl, once per non-blank line of FILE, each line checked to be JSON and sent "
            "as written. The input is read as it is needed, never whole. With --journal a "
            "re-run skips what started and never resends what may have started."
        ),
    )
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

    runs = commands.add_parser("runs", help="read flow runs and wait for them")
    run_commands = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = run_commands.add_parser("get", help="show a flow run")
    _api_options(get, wait_timeout=False)
    _rate_options(get)
    get.add_argument("run", type=_positive_int, metavar="RUN", help="the flow run id")
    get.add_argument("--json", action="store_true", help="print the run as one JSON object")
    wait = run_commands.add_parser(
        "wait",
        help="wait for a flow run to finish",
        description="Poll a run until it finishes. Exit 0 if it succeeded, 1 otherwise.",
    )
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
    return parser


def _api_options(parser: argparse.ArgumentParser, *, wait_timeout: bool) -> None:
    """The connection options, accepted before the command and after it.

    Their default is "absent" (``SUPPRESS``), so a value given before the command is not
    overwritten by the subcommand's default.
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _latency(text: str) -> float | tuple[float, float]:
    if "," not in text:
        return _non_negative_float(text)
    low, _, high = text.partition(",")
    bounds = (_non_negative_float(low), _non_negative_float(high))
    if bounds[0] > bounds[1]:
        raise argparse.ArgumentTypeError(f"LO must not exceed HI: {text}")
    return bounds


def _non_negative_float(text: str) -> float:
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _version(text: str) -> int | None:
    if text == "deployed":
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"a version id or 'deployed', not {text!r}") from None


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key.strip(), value


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command != "fake-server" and not HAVE_RICH:
        return _fail(NO_RICH, EXIT_USAGE)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "fake-server":
            return _fake_server(args)
        if args.command == "flows" and args.action == "list":
            return _run(_flows_list(args))
        if args.command == "flows":
            return _flows_start(args)
        if args.command == "runs":
            return _run(_runs_show(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return _fail("interrupted", EXIT_INTERRUPTED)
    except _UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (ConfigurationError, JournalMismatchError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except PatchworksError as exc:
        return _fail(_describe(exc), EXIT_FAILED)
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python's own flush
        # at exit from complaining about the closed pipe.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return EXIT_USAGE  # pragma: no cover - argparse refuses unknown commands first


def _run(coroutine: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coroutine)


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return status


def _describe(exc: PatchworksError) -> str:
    """One line for an error: its message, whatever the class, without a traceback."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, TransportError) and not isinstance(exc, APIError):
        return f"cannot reach the server: {text}"
    return text


def _client(args: argparse.Namespace) -> PatchworksClient:
    """A client from the options, falling back on the ``PATCHWORKS_*`` variables.

    Credentials given as options replace the ones in the environment as a whole: an
    ``--api-key`` never clashes with a ``PATCHWORKS_EMAIL`` left in the environment.
    """
    options = {
        name: getattr(args, name)
        for name in (*ENV_VARS, "request_timeout")
        if getattr(args, name, None) is not None
    }
    environ = dict(os.environ)
    if any(name in options for name in _CREDENTIALS):
        for name in _CREDENTIALS:
            environ.pop(ENV_VARS[name], None)
    found = {**settings_from_env(environ), **options}
    if not any(name in found for name in _CREDENTIALS):
        raise ConfigurationError(
            "no credentials: set PATCHWORKS_API_KEY (or PATCHWORKS_EMAIL and "
            "PATCHWORKS_PASSWORD), or pass --api-key (or --email and --password)"
        )
    if ("email" in found) != ("password" in found):
        raise ConfigurationError(
            "give both --email and --password (or PATCHWORKS_EMAIL and PATCHWORKS_PASSWORD)"
        )
    if "request_timeout" in options:
        options["timeout"] = options.pop("request_timeout")
    requests, per = getattr(args, "rate_requests", None), getattr(args, "rate_per", None)
    if requests is not None or per is not None:
        defaults = RateLimits()
        requests = defaults.requests if requests is None else requests
        options["rate_limits"] = RateLimits(
            requests=requests,
            manual_starts=min(defaults.manual_starts, requests),
            per=defaults.per if per is None else per,
        )
    return PatchworksClient.from_env(environ, **options)


# ---------------------------------------------------------------------------- output helpers


def _stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def _progress(console: Console, *, show: bool) -> Progress:
    """A progress bar on ``console``, drawn only when ``show``; gone once finished.

    stdout is never redirected through it, so whatever a command prints to stdout while
    the bar runs (JSON Lines) stays on stdout, untouched.
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


def _rate(count: int, elapsed: float) -> str:
    return f"{count / elapsed:.1f}/s" if elapsed > 0 else ""


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_line(data: Any) -> str:
    return json.dumps(data, default=_jsonable, ensure_ascii=False)


def _status_name(status: FlowRunStatus | int) -> str:
    return status.name if isinstance(status, FlowRunStatus) else f"UNKNOWN({status})"


# ---------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    limit = args.requests / args.window
    print(
        f"FakePatchworks: {args.requests} requests per {args.window:g} s window "
        f"({limit:.1f}/s); pushing {args.starts} flow starts",
        flush=True,
    )
    console = _stderr_console()
    with _progress(console, show=console.is_terminal) as bar:
        task = bar.add_task(
            "flow starts", total=args.starts, count=f"0/{args.starts}", rate="", note="429s 0"
        )
        began = time.monotonic()

        def update(done: int, started: int, refused: int) -> None:
            bar.update(
                task,
                completed=done,
                count=f"{done}/{args.starts}",
                rate=_rate(done, time.monotonic() - began),
                note=f"429s {refused}",
            )

        result = asyncio.run(
            run_demo(
                starts=args.starts, requests=args.requests, window=args.window, progress=update
            )
        )
    print(result.summary(), flush=True)
    return EXIT_OK if result.ok else EXIT_FAILED


# ---------------------------------------------------------------------------- fake-server


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with FakePatchworks(
        host=args.host,
        port=args.port,
        requests_per_window=args.requests,
        manual_per_window=args.manual,
        window=args.window,
        latency=args.latency,
        run_duration=args.run_duration,
        run_outcome=args.run_outcome,
    ) as fake:
        print(json.dumps({**fake.urls, "api_key": fake.api_key}), flush=True)
        await stop.wait()


def _fake_server(args: argparse.Namespace) -> int:
    asyncio.run(_serve(args))
    return EXIT_OK


# ---------------------------------------------------------------------------- flows list


async def _flows_list(args: argparse.Namespace) -> int:
    filters: dict[str, object] = {}
    for key, value in args.filters:
        previous = filters.get(key)
        if previous is None:
            filters[key] = value
        else:
            filters[key] = [*(previous if isinstance(previous, list) else [previous]), value]
    options: ListOptions = {}
    if filters:
        options["filter"] = filters
    if args.sort:
        options["sort"] = [name for names in args.sort for name in names.split(",") if name]
    if args.max is not None:
        options["max_items"] = args.max
    async with _client(args) as pw:
        flows = pw.flows.list(**options)
        if args.json:
            async with contextlib.aclosing(flows.pages()) as pages:
                async for page in pages:
                    lines = [_json_line(converter.unstructure(flow)) for flow in page.items]
                    if lines:
                        print("\n".join(lines), flush=True)
            return EXIT_OK
        table = Table("id", "name", "enabled_at", "deployed_version_id")
        console = _stderr_console()
        with _progress(console, show=console.is_terminal) as bar:
            task = bar.add_task("flows", total=None, count="0 flows", rate="", note="")
            count = 0
            async with contextlib.aclosing(flows.pages()) as pages:
                async for page in pages:
                    for flow in page.items:
                        table.add_row(*_flow_row(flow))
                    count += len(page.items)
                    bar.update(task, total=page.total, completed=count, count=f"{count} flows")
    Console(highlight=False).print(table)
    return EXIT_OK


def _flow_row(flow: Flow) -> tuple[Text, ...]:
    """Cells as ``Text``: a flow named ``[bold]x`` is shown as written, never as markup."""
    return tuple(
        Text(cell)
        for cell in (
            str(flow.id),
            flow.name,
            _when(flow.enabled_at),
            "-" if flow.deployed_version_id is None else str(flow.deployed_version_id),
        )
    )


# ---------------------------------------------------------------------------- runs


async def _runs_show(args: argparse.Namespace) -> int:
    async with _client(args) as pw:
        if args.action == "get":
            run = await pw.flow_runs.get(args.run)
        else:
            console = _stderr_console()
            waiting = console.is_terminal and not args.json
            with _progress(console, show=waiting) as bar:
                bar.add_task(
                    f"waiting for flow run {args.run}", total=None, count="", rate="", note=""
                )
                run = await pw.flow_runs.wait(
                    args.run, timeout=args.wait_timeout, poll_interval=args.poll
                )
    if args.json:
        data = converter.unstructure(run)
        data["status_name"] = _status_name(run.status)
        print(_json_line(data), flush=True)
    else:
        print(_run_text(run), flush=True)
    if args.action == "wait" and run.status != FlowRunStatus.SUCCESS:
        return EXIT_FAILED
    return EXIT_OK


def _run_text(run: FlowRun) -> str:
    rows = [
        ("run", str(run.id)),
        ("flow", "-" if run.flow_id is None else str(run.flow_id)),
        ("version", "-" if run.flow_version_id is None else str(run.flow_version_id)),
        ("status", f"{_status_name(run.status)} ({int(run.status)})"),
        ("trigger", run.trigger or "-"),
        ("started", _when(run.started_at)),
        ("finished", _when(run.finished_at)),
    ]
    return "\n".join(f"{name:<9} {value}" for name, value in rows)


# ---------------------------------------------------------------------------- flows start


class _Input:
    """Where the payloads come from, and what the report needs to know about each item.

    Per item, only while its result is outstanding: the line it came from, the bytes it
    accounts for (for the progress bar), and why a bad line is bad. The dictionaries hold
    no more than the items ``start_many`` has read ahead, whatever the size of the input.
    """

    def __init__(self, name: str, total_bytes: int | None) -> None:
        self.name = name
        self.total_bytes = total_bytes
        self.line_of: dict[int, int] = {}
        self.size_of: dict[int, int] = {}
        self.bad: dict[int, str] = {}

    def settle(self, index: int) -> tuple[int | None, int, str | None]:
        """Forget item ``index``: its line, its size and, for a bad line, the reason."""
        return (
            self.line_of.pop(index, None),
            self.size_of.pop(index, 0),
            self.bad.pop(index, None),
        )


class _FdReader:
    """Chunks of a file descriptor, read by a daemon thread.

    The event loop never blocks on input (a slow pipe stalls no request in flight),
    Ctrl-C is never stuck behind a read, and at most ``ahead`` chunks wait in memory.
    Raw ``os.read`` on the descriptor: no buffered file object whose lock a daemon
    thread could hold while the interpreter shuts down.
    """

    def __init__(self, fd: int, *, chunk_size: int = 1 << 16, ahead: int = 4) -> None:
        self._fd = fd
        self._chunk_size = chunk_size
        self._room = threading.Semaphore(ahead)
        self._closed = False

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The chunks in order; the last one is followed by the end of the generator."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | OSError] = asyncio.Queue()
        threading.Thread(
            target=self._read, args=(loop, queue), name="patchworks-input", daemon=True
        ).start()
        try:
            while True:
                chunk = await queue.get()
                self._room.release()
                if isinstance(chunk, OSError):
                    raise chunk
                if not chunk:
                    return
                yield chunk
        finally:
            self._closed = True
            self._room.release()  # wake the thread if it waits for room, so it ends

    def _read(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | OSError]) -> None:
        while True:
            self._room.acquire()
            if self._closed:
                return
            chunk: bytes | OSError
            try:
                chunk = os.read(self._fd, self._chunk_size)
            except OSError as exc:
                chunk = exc
            try:
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except RuntimeError:  # the loop is closed: nobody is reading any more
                return
            if not isinstance(chunk, bytes) or not chunk:
                return


async def _lines(
    chunks: AsyncGenerator[bytes, None], max_line_bytes: int
) -> AsyncGenerator[tuple[bytes | None, int], None]:
    """Each line without its newline (``None`` if longer than ``max_line_bytes``: it is
    skipped, never held) and the bytes it spans, newline included."""
    pending = bytearray()
    size = 0
    overflow = False
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end >= 0 and size == 0:  # the common case: a whole line in this chunk
                    line = chunk[start:end]
                    yield (line if len(line) <= max_line_bytes else None), len(line) + 1
                    start = end + 1
                    continue
                stop = len(chunk) if end < 0 else end
                size += stop - start
                if not overflow:
                    pending += chunk[start:stop]
                    if len(pending) > max_line_bytes:
                        overflow, pending = True, bytearray()
                if end < 0:
                    break
                yield (None if overflow else bytes(pending)), size + 1
                pending, size, overflow = bytearray(), 0, False
                start = end + 1
    if size:
        yield (None if overflow else bytes(pending)), size


async def _json_lines(
    chunks: AsyncGenerator[bytes, None], source: _Input, max_line_bytes: int
) -> AsyncGenerator[str | None, None]:
    """One payload per non-blank line: the line as written, once checked to be JSON.

    A line that is not JSON (or not UTF-8, or longer than any start body may be) is
    yielded as ``None``, which ``start_many`` reports as a failed item without sending
    anything; the reason is kept in ``source.bad`` for the report.
    """
    index = 0
    number = 0
    carried = 0  # the bytes of blank lines, counted with the next item
    lines = _lines(chunks, max_line_bytes)
    async with contextlib.aclosing(lines):
        async for raw, size in lines:
            number += 1
            if raw is not None and not raw.strip():
                carried += size
                continue
            source.line_of[index] = number
            source.size_of[index] = carried + size
            carried = 0
            payload, reason = _check_line(raw, number, max_line_bytes)
            if reason is not None:
                source.bad[index] = reason
            index += 1
            yield payload


def _check_line(
    raw: bytes | None, number: int, max_line_bytes: int
) -> tuple[str | None, str | None]:
    """The payload of one line, or ``None`` and why it cannot be sent."""
    if raw is None:
        return None, f"line {number} is longer than the {max_line_bytes}-byte limit of a start"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"line {number} is not UTF-8 text"
    if number == 1:
        text = text.removeprefix("\ufeff")
    text = text.strip()
    try:
        json.loads(text)
    except ValueError as exc:
        detail = (
            f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
        )
        return None, f"line {number} is not JSON: {detail}"
    return text, None


def _open_input(name: str) -> tuple[int, bool, int | None]:
    """The descriptor to read, whether it is ours to close, and its size if a regular file."""
    if name == "-":
        if sys.stdin is None:
            raise _UsageError("no stdin to read the payload from: give a FILE")
        fd, owned = sys.stdin.fileno(), False
    else:
        try:
            fd, owned = os.open(name, os.O_RDONLY), True
        except OSError as exc:
            raise _UsageError(f"cannot read {name}: {exc.strerror}") from None
    info = os.fstat(fd)
    size = info.st_size if stat.S_ISREG(info.st_mode) else None
    return fd, owned, size


def _read_one_payload(fd: int, name: str, limit: int) -> str:
    """The whole input as one payload; refuses (without reading on) what cannot fit."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    if size > limit:
        raise PayloadTooLargeError(
            None,
            limit,
            message=f"{_shown(name)} is larger than the {limit}-byte limit of one start; "
            "split it into one payload per line and use --jsonl",
        )
    try:
        return b"".join(parts).decode("utf-8")
    except UnicodeDecodeError:
        raise _UsageError(f"{_shown(name)} is not UTF-8 text") from None


def _shown(name: str) -> str:
    return "stdin" if name == "-" else name


_FATAL = (AuthenticationError, PermissionDeniedError, NotFoundError)
"""Errors that say every item would fail the same way: they stop the batch."""


def _fatal(result: StartResult) -> PatchworksError | None:
    error = result.error
    if result.status is not StartStatus.FAILED or error is None:
        return None
    if isinstance(error, _FATAL):
        return error
    if isinstance(error, ValidationError) and {"flow_id", "version_id"} & error.errors.keys():
        return error  # the flow or version is wrong, not this payload
    return None


class _Batch:
    """The running tally of a bulk start and its report."""

    def __init__(self, source: _Input, *, as_json: bool) -> None:
        self.source = source
        self.as_json = as_json
        self.counts: Counter[StartStatus] = Counter()
        self.problems: list[tuple[int, int | None, StartStatus, str]] = []
        self.more_problems = 0
        self.done_bytes = 0
        self.began = time.monotonic()
        self.interrupted = False
        self.stopped = False  # by an error that every item would meet
        self.error: PatchworksError | OSError | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def record(self, result: StartResult) -> PatchworksError | None:
        """Count one result and print it with ``--json``; returns a batch-stopping error."""
        line, size, bad = self.source.settle(result.index)
        self.counts[result.status] += 1
        self.done_bytes += size
        error = bad or (None if result.error is None else _one_line(result.error))
        if self.as_json:
            data: dict[str, Any] = {"index": result.index}
            if line is not None:
                data["line"] = line
            data |= {"status": str(result.status), "run_id": result.run_id, "error": error}
            print(_json_line(data), flush=True)
        fatal = None if bad else _fatal(result)
        if result.status in (StartStatus.FAILED, StartStatus.UNKNOWN) and fatal is None:
            if len(self.problems) < MAX_PROBLEM_LINES:
                self.problems.append((result.index, line, result.status, error or ""))
            else:
                self.more_problems += 1
        return fatal

    def summary(self) -> str:
        counts = " | ".join(f"{_label(status)} {self.counts[status]}" for status in StartStatus)
        elapsed = time.monotonic() - self.began
        items = "item" if self.total == 1 else "items"
        return f"{counts} | {self.total} {items} in {elapsed:.1f} s"

    def report(self, journal: str | None) -> None:
        out = sys.stderr if self.as_json else sys.stdout
        if self.interrupted:
            where = (
                f"Everything is recorded in {journal}: run the same command again to resume"
                if journal
                else "Use --journal to be able to resume safely"
            )
            print(
                "interrupted: nothing was sent after the signal but the requests already on "
                "the wire, which were given time to finish and are counted below; items "
                "that were waiting for a slot are counted as not sent, and the rest of the "
                f"input was not read. {where}.",
                file=sys.stderr,
            )
        print(self.summary(), file=out, flush=True)
        if not self.as_json:
            for index, line, status, error in sorted(self.problems):
                at = f"item {index}" + (f" (line {line})" if line is not None else "")
                print(f"  {at}: {status}: {error}")
            if self.more_problems:
                print(f"  and {self.more_problems} more (--json lists every result)")
        if self.counts[StartStatus.UNKNOWN]:
            resume = (
                f"re-running with --journal {journal} does not resend them"
                if journal
                else "check their flow runs before sending them again"
            )
            print(
                f"{self.counts[StartStatus.UNKNOWN]} item(s) may have started: {resume}",
                file=sys.stderr,
                flush=True,
            )

    def status(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if isinstance(self.error, ConfigurationError | JournalMismatchError):
            return EXIT_USAGE
        if self.error is not None:
            return EXIT_FAILED
        if self.counts[StartStatus.FAILED] or self.counts[StartStatus.UNKNOWN]:
            return EXIT_FAILED
        return EXIT_OK


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _flows_start(args: argparse.Namespace) -> int:
    if args.resend_unknown and not args.journal:
        raise _UsageError("--resend-unknown only means something with --journal")
    client = _client(args)  # before reading any input: a configuration error comes first
    fd, owned, size = _open_input(args.file)
    try:
        source = _Input(args.file, size)
        if args.jsonl:
            payloads: Any = _json_lines(_FdReader(fd).chunks(), source, client.max_body_bytes)
        else:
            payloads = [_read_one_payload(fd, args.file, client.max_body_bytes)]
            source.total_bytes = 1
            source.size_of[0] = 1
        batch = _Batch(source, as_json=args.json)
        asyncio.run(_start_batch(args, client, payloads, batch))
    finally:
        if owned:
            os.close(fd)
    batch.report(args.journal)
    if batch.error is not None:
        message = (
            _describe(batch.error)
            if isinstance(batch.error, PatchworksError)
            else f"cannot read {_shown(args.file)}: {batch.error.strerror or batch.error}"
        )
        if batch.stopped and args.jsonl:
            message += " (the batch was stopped: every item would fail the same way)"
        _fail(message, batch.status())
    return batch.status()


async def _start_batch(
    args: argparse.Namespace, client: PatchworksClient, payloads: Any, batch: _Batch
) -> None:
    """Push the payloads through ``start_many``; a signal stops it, and it still reports.

    SIGINT (Ctrl-C) and SIGTERM (a CI job cancelled, a container stopped) stop the batch
    gracefully: nothing new is sent, the requests on the wire get ``drain_timeout`` to
    finish, and every result, ``not sent`` ones included, is counted in the report.
    """
    console = _stderr_console()
    show = console.is_terminal and not (args.json and sys.stdout.isatty())
    total = batch.source.total_bytes
    async with client as pw:
        results = pw.flows.start_many(
            args.flow,
            args.version,
            payloads,
            concurrency=args.concurrency,
            manual=args.manual,
            journal=args.journal,
            resend_unknown=args.resend_unknown,
            drain_timeout=DRAIN_TIMEOUT,
        )

        def stop(signum: signal.Signals) -> None:
            if not batch.interrupted:
                console.print(
                    f"{signum.name}: stopping; nothing new will be sent, and the requests "
                    f"on the wire get up to {DRAIN_TIMEOUT:g} s to finish",
                    soft_wrap=True,
                    highlight=False,
                    markup=False,
                )
            batch.interrupted = True
            results.stop()

        with _progress(console, show=show) as bar, _on_signals(stop):
            task: TaskID = bar.add_task(
                f"starting flow {args.flow}", total=total, count="0 items", rate="", note=""
            )
            try:
                async with results:
                    async for result in results:
                        fatal = batch.record(result)
                        done = batch.total
                        bar.update(
                            task,
                            completed=batch.done_bytes,
                            count=f"{done} items",
                            rate=_rate(done, time.monotonic() - batch.began),
                            note=_tally(batch.counts),
                        )
                        if fatal is not None:
                            batch.error, batch.stopped = fatal, True
                            break
            except (PatchworksError, OSError) as exc:
                batch.error = exc


@contextlib.contextmanager
def _on_signals(handler: Callable[[signal.Signals], None]) -> Iterator[None]:
    """Call ``handler`` on SIGINT and SIGTERM for the duration of the block.

    Python's own handlers are put back afterwards (a Ctrl-C after the batch is over
    interrupts as usual).
    """
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, Any]] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        try:
            loop.add_signal_handler(signum, handler, signum)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            continue
        installed.append((signum, previous))
    try:
        yield
    finally:
        for signum, previous in installed:
            loop.remove_signal_handler(signum)
            signal.signal(signum, previous)


def _tally(counts: Counter[StartStatus]) -> str:
    return " ".join(f"{_label(s)} {counts[s]}" for s in StartStatus if counts[s])


def _label(status: StartStatus) -> str:
    """``not sent`` rather than ``not_sent`` in the words of a report."""
    return status.value.replace("_", " ")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
