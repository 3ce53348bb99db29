"""The commands other than ``flows start``, and the client every API command connects with.

Each command takes the parsed arguments and returns the exit status; errors are raised
and left to ``main``, which turns each into one ``error: ...`` line. ``flows start``, which
needs a reader thread, a running tally and signal handling, has ``_batch.py`` to itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping

from .. import (
    AsyncPaginator,
    ConfigurationError,
    Flow,
    FlowRun,
    FlowRunStatus,
    ListOptions,
    PatchworksClient,
    RateLimits,
)
from .._config import ENV_VARS, settings_from_env
from ..testing import FakePatchworks
from ._demo import run_demo
from ._exit import EXIT_FAILED, EXIT_OK, UsageError
from ._output import (
    FLOW_COLUMNS,
    add_flow_row,
    flow_cells,
    flows_table,
    interactive,
    json_line,
    model_as_dict,
    print_table,
    progress,
    rate,
    status_name,
    status_text,
    stderr_console,
    stdout_is_terminal,
    tsv_line,
    when,
)

__all__ = [
    "client_from_options",
    "demo_command",
    "fake_server_command",
    "flows_list_command",
    "runs_command",
]

_CREDENTIALS = ("api_key", "email", "password")


def client_from_options(args: argparse.Namespace) -> PatchworksClient:
    """A client from the options, falling back on the ``PATCHWORKS_*`` variables.

    Credentials given as options replace the ones in the environment as a whole: an
    ``--api-key`` never clashes with a ``PATCHWORKS_EMAIL`` left in the environment.

    Raises:
        ConfigurationError: No credentials, an API key and a login both, an email without
            a password (or the reverse), or a value the client refuses.
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
    if "api_key" in found and ("email" in found or "password" in found):
        raise ConfigurationError(
            "give an API key or an email and password, not both (--api-key or "
            "PATCHWORKS_API_KEY; --email and --password or PATCHWORKS_EMAIL and "
            "PATCHWORKS_PASSWORD)"
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


# ---------------------------------------------------------------------------- demo


def demo_command(args: argparse.Namespace) -> int:
    """``demo``: a header line, a live bar on a terminal, then the demo's summary line.

    Exits 1 unless every start was accepted without a 429, so the demo doubles as a
    smoke test of the rate limiting.
    """
    limit = args.requests / args.window
    print(
        f"FakePatchworks: {args.requests} requests per {args.window:g} s window "
        f"({limit:.1f}/s); pushing {args.starts} flow starts",
        flush=True,
    )
    with progress(stderr_console(), show=interactive()) as bar:
        task = bar.add_task(
            "flow starts", total=args.starts, count=f"0/{args.starts}", rate="", note="429s 0"
        )
        began = time.monotonic()

        def update(done: int, started: int, refused: int) -> None:
            """Move the bar after each result (``run_demo``'s ``progress`` callback)."""
            bar.update(
                task,
                completed=done,
                count=f"{done}/{args.starts}",
                rate=rate(done, time.monotonic() - began),
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


def fake_server_command(args: argparse.Namespace) -> int:
    """``fake-server``: serve until SIGINT or SIGTERM, then exit 0 (a normal way to stop)."""
    asyncio.run(_serve(args))
    return EXIT_OK


async def _serve(args: argparse.Namespace) -> None:
    """Serve FakePatchworks and print its URLs and key as one JSON line once it listens.

    That line is how another process finds the server (``--port 0`` picks any free port).
    The export lines a person would paste follow it: on stdout when that is a terminal,
    on stderr otherwise, so that a tool reading stdout still reads one JSON line.

    Raises:
        UsageError: The server cannot listen on ``--host``:``--port`` (the port is taken,
            the address is not this machine's).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    fake = FakePatchworks(
        host=args.host,
        port=args.port,
        requests_per_window=args.requests,
        manual_per_window=args.manual,
        window=args.window,
        latency=args.latency,
        queue_delay=args.queue_delay,
        run_duration=args.run_duration,
        run_outcome=args.run_outcome,
    )
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(fake)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {_reason(exc)}") from None
        print(json.dumps({**fake.urls, "api_key": fake.api_key}), flush=True)
        if not args.quiet:
            settings = {"api_key": fake.api_key, **{k: str(v) for k, v in fake.urls.items()}}
            exports = "\n".join(_export_lines(settings))
            print(exports, file=sys.stdout if stdout_is_terminal() else sys.stderr, flush=True)
        await stop.wait()


def _export_lines(settings: Mapping[str, str]) -> list[str]:
    """The shell lines that point ``patchworks`` (or ``from_env()``) at a server.

    A login left in the environment is unset: with an API key too it would be refused as
    two kinds of credentials.

    Args:
        settings: ``api_key``, ``core_url``, ``start_url`` and ``login_url``.
    """
    return [
        "# point patchworks (or PatchworksClient.from_env()) at this server:",
        f"unset {ENV_VARS['email']} {ENV_VARS['password']}",
        *(f"export {ENV_VARS[name]}={shlex.quote(value)}" for name, value in settings.items()),
    ]


def _reason(exc: OSError) -> str:
    """Why a socket call failed, without asyncio's restatement of the address."""
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return exc.strerror or str(exc)
    return os.strerror(exc.errno)


# ---------------------------------------------------------------------------- flows list


def flows_list_command(args: argparse.Namespace) -> int:
    """``flows list``: a table, or with ``--json`` one JSON line per flow."""
    return asyncio.run(_list_flows(args))


async def _list_flows(args: argparse.Namespace) -> int:
    """List the flows: JSON Lines, tab-separated lines when stdout is not a terminal (both
    streamed a page at a time), or a table on a terminal, printed once the client is closed.
    """
    async with client_from_options(args) as pw:
        flows = pw.flows.list(**_list_options(args))
        if args.json:
            await _stream_flows(flows, lambda flow: json_line(model_as_dict(flow)))
            return EXIT_OK
        if not stdout_is_terminal():
            header = tsv_line(FLOW_COLUMNS)
            await _stream_flows(flows, lambda flow: tsv_line(flow_cells(flow)), header)
            return EXIT_OK
        table = flows_table()
        with progress(stderr_console(), show=interactive()) as bar:
            task = bar.add_task("flows", total=None, count="0 flows", rate="", note="")
            count = 0
            async with contextlib.aclosing(flows.pages()) as pages:
                async for page in pages:
                    for flow in page.items:
                        add_flow_row(table, flow)
                    count += len(page.items)
                    bar.update(task, total=page.total, completed=count, count=f"{count} flows")
    print_table(table)
    return EXIT_OK


def _list_options(args: argparse.Namespace) -> ListOptions:
    """``--filter``, ``--sort`` and ``--max`` as ``flows.list`` takes them.

    A key given twice filters on any of its values, as ``KEY=a,b`` does.
    """
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
    return options


async def _stream_flows(
    flows: AsyncPaginator[Flow], line: Callable[[Flow], str], header: str | None = None
) -> None:
    """One line per flow, printed a page at a time, as each page arrives.

    Args:
        flows: The listing.
        line: A flow as one line.
        header: A first line, printed with the first page (so not before the first
            request has succeeded).
    """
    async with contextlib.aclosing(flows.pages()) as pages:
        async for page in pages:
            lines = [line(flow) for flow in page.items]
            if header is not None:
                lines.insert(0, header)
                header = None
            if lines:
                print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------- runs


def runs_command(args: argparse.Namespace) -> int:
    """``runs get`` and ``runs wait``; ``wait`` exits 1 unless the run succeeded (and
    ``main`` exits 5 when it gave up waiting)."""
    return asyncio.run(_show_run(args))


async def _show_run(args: argparse.Namespace) -> int:
    """Fetch the run (or wait for it to finish) and print it, as text or as JSON."""
    async with client_from_options(args) as pw:
        if args.action == "get":
            run = await pw.flow_runs.get(args.run)
        else:
            run = await _wait_for_run(pw, args)
    if args.json:
        data = model_as_dict(run)
        data["status_name"] = status_name(run.status)
        print(json_line(data), flush=True)
    else:
        print(_run_text(run), flush=True)
    if args.action == "wait" and run.status != FlowRunStatus.SUCCESS:
        return EXIT_FAILED
    return EXIT_OK


async def _wait_for_run(pw: PatchworksClient, args: argparse.Namespace) -> FlowRun:
    """Poll until the run finishes; a spinner on a terminal, unless the output is JSON."""
    with progress(stderr_console(), show=interactive() and not args.json) as bar:
        bar.add_task(f"waiting for flow run {args.run}", total=None, count="", rate="", note="")
        return await pw.flow_runs.wait(args.run, timeout=args.wait_timeout, poll_interval=args.poll)


def _run_text(run: FlowRun) -> str:
    """A run as aligned ``name value`` lines, for people (``--json`` is for scripts)."""
    rows = [
        ("run", str(run.id)),
        ("flow", "-" if run.flow_id is None else str(run.flow_id)),
        ("version", "-" if run.flow_version_id is None else str(run.flow_version_id)),
        ("status", status_text(run.status)),
        ("trigger", run.trigger or "-"),
        ("started", when(run.started_at)),
        ("finished", when(run.finished_at)),
    ]
    return "\n".join(f"{name:<9} {value}" for name, value in rows)
