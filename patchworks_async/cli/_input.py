"""Where the payloads of ``flows start`` come from: a file or stdin, whole or line by line.

The input is read as it is needed, never whole, so a file of millions of lines (or a pipe
that never ends) costs the memory of the lines ``start_many`` has read ahead. A line that
cannot be sent (not JSON, not UTF-8, too long) becomes a failed item of its own rather than
stopping the batch, and the report can name the line it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import stat
import sys
import threading
from collections.abc import AsyncGenerator

from .. import PayloadTooLargeError
from ._exit import UsageError

__all__ = [
    "FdReader",
    "PayloadSource",
    "input_label",
    "json_lines",
    "open_input",
    "read_one_payload",
]


class PayloadSource:
    """Where the payloads come from, and what the report needs to know about each item.

    Per item, only while its result is outstanding: the line it came from, the bytes it
    accounts for (for the progress bar), and why a bad line is bad. The dictionaries hold
    no more than the items ``start_many`` has read ahead, whatever the size of the input.
    """

    def __init__(self, name: str, total_bytes: int | None) -> None:
        """Start with no items.

        Args:
            name: The FILE argument (``-`` for stdin).
            total_bytes: The input's size, the progress bar's total; ``None`` for a pipe,
                whose size nobody knows.
        """
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


class FdReader:
    """Chunks of a file descriptor, read by a daemon thread.

    The event loop never blocks on input (a slow pipe stalls no request in flight),
    Ctrl-C is never stuck behind a read, and at most ``ahead`` chunks wait in memory.
    Raw ``os.read`` on the descriptor: no buffered file object whose lock a daemon
    thread could hold while the interpreter shuts down.
    """

    def __init__(self, fd: int, *, chunk_size: int = 1 << 16, ahead: int = 4) -> None:
        """Read nothing yet: the thread starts with ``chunks``.

        Args:
            fd: The descriptor to read; opening and closing it is the caller's business.
            chunk_size: The bytes one ``os.read`` asks for.
            ahead: How many chunks may wait, read but not yet taken.
        """
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
        """The thread: read until the end, an error, or ``chunks`` is closed.

        A read error is handed over as a value, to be raised in the loop by ``chunks``.
        """
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


async def json_lines(
    chunks: AsyncGenerator[bytes, None], source: PayloadSource, max_line_bytes: int
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


def open_input(name: str) -> tuple[int, bool, int | None]:
    """The descriptor to read, whether it is ours to close, and its size if a regular file.

    Raises:
        UsageError: There is no stdin, or the file cannot be opened, or it is a directory
            (which opens, and fails only at the first read).
    """
    if name == "-":
        if sys.stdin is None:
            raise UsageError("no stdin to read the payload from: give a FILE")
        try:
            fd, owned = sys.stdin.fileno(), False
        except (OSError, ValueError):  # closed, or not a real file (an embedding's stdin)
            raise UsageError("no stdin to read the payload from: give a FILE") from None
    else:
        try:
            fd, owned = os.open(name, os.O_RDONLY), True
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        if owned:
            os.close(fd)
        raise UsageError(f"cannot read {input_label(name)}: {os.strerror(errno.EISDIR)}")
    size = info.st_size if stat.S_ISREG(info.st_mode) else None
    return fd, owned, size


def read_one_payload(fd: int, name: str, limit: int) -> str:
    """The whole input as one payload; refuses (without reading on) what cannot fit.

    Raises:
        PayloadTooLargeError: The input is larger than one start may be.
        UsageError: The input cannot be read, or is not UTF-8 text.
    """
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        except OSError as exc:
            raise UsageError(f"cannot read {input_label(name)}: {exc.strerror or exc}") from None
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    if size > limit:
        raise PayloadTooLargeError(
            None,
            limit,
            message=f"{input_label(name)} is larger than the {limit}-byte limit of one start; "
            "split it into one payload per line and use --jsonl",
        )
    try:
        return b"".join(parts).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{input_label(name)} is not UTF-8 text") from None


def input_label(name: str) -> str:
    """How messages name the input: ``stdin`` for ``-``, else the path as given."""
    return "stdin" if name == "-" else name
