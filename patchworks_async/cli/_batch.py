"""``flows start``: payloads through ``start_many``, a running tally, and the report.

A batch can be long and can be stopped at any moment, so everything here is about telling
the truth at the end: each result is counted as it comes; SIGINT or SIGTERM stops the batch
without losing the results on the wire; an error that every item would meet (a wrong key, a
flow that does not exist) stops it at once rather than failing the same way a million
times; and the report says what started, what failed, what may have started, and how to
resume.

A single start (no ``--jsonl``) is a batch of one, reported the same way, with its run id
on a line of its own; if it fails, its error is the command's one ``error:`` line.

The exit status puts ``unknown`` (3) first after an interruption: an item that may have
started must be checked before anything is sent again, whatever else went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import (
    AuthenticationError,
    BulkStart,
    NotFoundError,
    PatchworksClient,
    PatchworksError,
    PermissionDeniedError,
    StartResult,
    StartStatus,
    ValidationError,
)
from ._commands import client_from_options
from ._exit import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNKNOWN,
    UsageError,
    exit_status,
)
from ._input import (
    FdReader,
    PayloadSource,
    input_label,
    json_lines,
    open_input,
    read_one_payload,
)
from ._output import (
    describe,
    fail,
    interactive,
    json_line,
    one_line,
    progress,
    rate,
    stderr_console,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["DRAIN_TIMEOUT", "MAX_PROBLEM_LINES", "flows_start_command"]

DRAIN_TIMEOUT = 5.0
"""Seconds the requests on the wire get to finish once a batch is stopped."""
MAX_PROBLEM_LINES = 20
"""Failed or unknown items listed one per line after a batch; the rest are counted."""

_FATAL = (AuthenticationError, PermissionDeniedError, NotFoundError)
"""Errors that say every item would fail the same way: they stop the batch."""


def _fatal(result: StartResult) -> PatchworksError | None:
    """The error of a failed item if every other item would fail the same way, else None."""
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

    def __init__(self, source: PayloadSource, *, as_json: bool, single: bool = False) -> None:
        """Start the clock with nothing counted.

        Args:
            source: What is known of each item read (its line, its size, why it is bad).
            as_json: ``--json``: print every result as a JSON line, the summary on stderr.
            single: One payload, not ``--jsonl``: its run id is printed, and its error is
                the command's error.
        """
        self.source = source
        self.as_json = as_json
        self.single = single
        self.run_id: int | str | None = None  # of the single start
        self.item_error: str | None = None  # why the single start failed or is unknown
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
        """Results counted so far."""
        return sum(self.counts.values())

    def record(self, result: StartResult) -> PatchworksError | None:
        """Count one result and print it with ``--json``; returns a batch-stopping error."""
        line, size, bad = self.source.settle(result.index)
        self.counts[result.status] += 1
        self.done_bytes += size
        error = bad or (None if result.error is None else one_line(result.error))
        if self.as_json:
            data: dict[str, Any] = {"index": result.index}
            if line is not None:
                data["line"] = line
            data |= {"status": str(result.status), "run_id": result.run_id, "error": error}
            print(json_line(data), flush=True)
        fatal = None if bad else _fatal(result)
        if self.single:
            self.run_id = result.run_id
        if result.status in (StartStatus.FAILED, StartStatus.UNKNOWN) and fatal is None:
            if self.single:
                self.item_error = describe(result.error) if result.error else error or "failed"
            elif len(self.problems) < MAX_PROBLEM_LINES:
                self.problems.append((result.index, line, result.status, error or ""))
            else:
                self.more_problems += 1
        return fatal

    def summary(self) -> str:
        """The summary line: every status with its count (zeros too), items, seconds.

        Every status is always shown, in the same order, so a script can parse the line.
        """
        counts = " | ".join(f"{_label(status)} {self.counts[status]}" for status in StartStatus)
        elapsed = time.monotonic() - self.began
        items = "item" if self.total == 1 else "items"
        return f"{counts} | {self.total} {items} in {elapsed:.1f} s"

    def report(self, journal: str | None) -> None:
        """Print the report: why it stopped early, the summary, the problems, what to do.

        With ``--json`` stdout holds only the result lines, so the summary goes to stderr.

        Args:
            journal: The ``--journal`` path, to say how to resume (or that one would help).
        """
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
        started = self.counts[StartStatus.STARTED] or self.counts[StartStatus.SKIPPED]
        if self.single and started and not self.as_json:
            print(f"run {'-' if self.run_id is None else self.run_id}", flush=True)
        if not self.as_json:
            for index, line, status, error in sorted(self.problems):
                at = f"item {index}" + (f" (line {line})" if line is not None else "")
                print(f"  {at}: {status}: {error}")
            if self.more_problems:
                print(f"  and {self.more_problems} more (--json lists every result)")
        if self.counts[StartStatus.UNKNOWN] and not self.single:
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

    def error_line(self, file: str, journal: str | None) -> str | None:
        """The command's ``error:`` message, if it has one.

        The error that ended the batch, or the single start's own failure (saying, if it
        may have started, what to do about it).

        Args:
            file: The FILE argument, to name the input that could not be read.
            journal: The ``--journal`` path, to say whether a re-run would resend it.
        """
        if self.error is not None:
            if isinstance(self.error, PatchworksError):
                message = describe(self.error)
            else:
                reason = self.error.strerror or self.error
                message = f"cannot read {input_label(file)}: {reason}"
            if self.stopped and not self.single:
                message += " (the batch was stopped: every item would fail the same way)"
            return message
        if self.item_error is None:
            return None
        if not self.counts[StartStatus.UNKNOWN]:
            return self.item_error
        resume = (
            f"re-running with --journal {journal} does not resend it"
            if journal
            else "check its flow runs before sending it again"
        )
        return f"{self.item_error} (it may have started: {resume})"

    def status(self) -> int:
        """The exit status: an interruption, then an item that may have started, then the
        error that ended the batch, then a failed item."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.counts[StartStatus.UNKNOWN]:
            return EXIT_UNKNOWN
        if self.error is not None:
            return exit_status(self.error)
        if self.counts[StartStatus.FAILED]:
            return EXIT_FAILED
        return EXIT_OK


def flows_start_command(args: argparse.Namespace) -> int:
    """``flows start``: one payload from FILE (or stdin), or one per line with ``--jsonl``.

    An error that ends the batch is reported after the summary, as one ``error:`` line,
    so what did start is never hidden by it.
    """
    if args.resend_unknown and not args.journal:
        raise UsageError("--resend-unknown only means something with --journal")
    # The client before any input is read: a configuration error comes first.
    client = client_from_options(args)
    fd, owned, size = open_input(args.file)
    from_terminal = os.isatty(fd)
    try:
        if from_terminal:  # a person is expected to type the payload: say so, or it looks hung
            what = "JSON Lines, one payload a line," if args.jsonl else "the payload"
            print(
                f"reading {what} from stdin: end with Ctrl-D on a line of its own (or give a FILE)",
                file=sys.stderr,
                flush=True,
            )
        source = PayloadSource(args.file, size)
        if args.jsonl:
            payloads: Any = json_lines(FdReader(fd).chunks(), source, client.max_body_bytes)
        else:
            payloads = [read_one_payload(fd, args.file, client.max_body_bytes)]
            source.total_bytes = 1
            source.size_of[0] = 1
        batch = _Batch(source, as_json=args.json, single=not args.jsonl)
        asyncio.run(_start_batch(args, client, payloads, batch, show=not from_terminal))
    finally:
        if owned:
            os.close(fd)
    batch.report(args.journal)
    message = batch.error_line(args.file, args.journal)
    if message is not None:
        fail(message, batch.status())
    return batch.status()


async def _start_batch(
    args: argparse.Namespace, client: PatchworksClient, payloads: Any, batch: _Batch, *, show: bool
) -> None:
    """Push the payloads through ``start_many``; a signal stops it, and it still reports.

    SIGINT (Ctrl-C) and SIGTERM (a CI job cancelled, a container stopped) stop the batch
    gracefully: nothing new is sent, the requests on the wire get ``DRAIN_TIMEOUT`` to
    finish, and every result, ``not sent`` ones included, is counted in the report.

    Args:
        args: The parsed arguments.
        client: The client, not yet entered.
        payloads: What ``start_many`` reads.
        batch: The tally.
        show: Whether a progress bar may be drawn (not while a person types the input);
            it is drawn only if the output is for people too (a terminal, no ``--json``).
    """
    console = stderr_console()
    show = show and interactive() and not args.json
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
            """Stop sending; say so once, however many signals arrive."""
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

        with progress(console, show=show) as bar, _on_signals(stop):
            task = bar.add_task(
                f"starting flow {args.flow}", total=total, count="0 items", rate="", note=""
            )
            await _record_results(results, batch, bar, task)


async def _record_results(results: BulkStart, batch: _Batch, bar: Progress, task: TaskID) -> None:
    """Record each result as it arrives and move the bar.

    A batch-stopping error ends the loop, which closes ``results`` and so stops the batch;
    an error of the batch itself (the journal, the input) is kept for the report.
    """
    try:
        async with results:
            async for result in results:
                fatal = batch.record(result)
                done = batch.total
                bar.update(
                    task,
                    completed=batch.done_bytes,
                    count=f"{done} items",
                    rate=rate(done, time.monotonic() - batch.began),
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
    """The counts so far for the bar, statuses with none left out to keep it short."""
    return " ".join(f"{_label(s)} {counts[s]}" for s in StartStatus if counts[s])


def _label(status: StartStatus) -> str:
    """``not sent`` rather than ``not_sent`` in the words of a report."""
    return status.value.replace("_", " ")
