"""The bulk-start journal: a SQLite file that makes a re-run safe.

An item is written down as ``sending`` at the moment of truth: once its rate-limit slot is
granted, immediately before its bytes leave. Its outcome is written once known, and every
outcome is committed before ``start_many`` hands it to the caller. So after any stop, even
SIGKILL, the file says exactly what may have happened:

* ``started``: the server started it (a re-run skips it);
* ``failed`` or ``not_sent``, or no row at all: it surely did not start (a re-run sends it);
* ``sending`` or ``unknown``: the request may have reached the server (a re-run reports it
  ``unknown`` and does not resend it unless asked to).

SQLite runs in one worker thread owned by the journal, so its fsyncs never block the event
loop. Writes are *group-committed*: every row written while a commit is running rides with
the next one, so a thousand items granted in the same instant cost one fsync, not a thousand.
Rows leave the event loop's hands only by being handed to the worker thread in one
synchronous step, and a handed-over job always runs: no cancellation at any ``await`` can
drop a row that was written.

The file is marked as ours (``PRAGMA application_id``), and a file that is some other
application's database is refused before anything is written to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

from ._cancellation import run_to_completion
from ._errors import ConfigurationError, JournalMismatchError

__all__ = ["ItemState", "Journal", "JournalEntry", "body_digest"]

FORMAT: Final = "2"
"""The journal format this version writes. Format ``1`` (version 0.1) is read and upgraded."""
_READABLE_FORMATS: Final = frozenset({"1", FORMAT})
APPLICATION_ID: Final = 0x50574A4C
"""``PRAGMA application_id`` of our files: ``PWJL``, bytes 68-71 of the SQLite header."""
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_HEADER_BYTES: Final = 100


class ItemState(enum.StrEnum):
    """What the journal knows of one item."""

    SENDING = "sending"
    """Its slot was granted and its bytes were about to leave; no outcome recorded."""
    STARTED = "started"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"
    """It never left (stopped while waiting for a slot, or refused unprocessed)."""


JournalEntry = tuple[ItemState, str, int | str | None]
"""An item's state, body digest and run id."""

_Row = tuple[int, str, str, str | None, str | None, float]
"""A row to write: index, digest, state, run id (JSON), error, time."""


def body_digest(body: bytes) -> str:
    """The digest that ties a journal row to one exact request body."""
    return hashlib.sha256(body).hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    idx INTEGER PRIMARY KEY,
    digest TEXT NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT,
    error TEXT,
    updated_at REAL NOT NULL
);
"""

_UPSERT = (
    "INSERT INTO items (idx, digest, state, run_id, error, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(idx) DO UPDATE SET digest=excluded.digest, state=excluded.state, "
    "run_id=excluded.run_id, error=excluded.error, updated_at=excluded.updated_at"
)


class Journal:
    """One journal file, used by one ``start_many`` at a time.

    Use :meth:`open` (a coroutine) to create it. Every method that touches the file runs on
    the journal's own thread; the rest is called from the event loop's thread only.
    """

    def __init__(self, path: str, target: Mapping[str, str]) -> None:
        self.path = path
        self._target = dict(target)
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="patchworks-journal"
        )
        self._db: sqlite3.Connection | None = None
        self._known: dict[int, JournalEntry] = {}
        self._rows: list[_Row] = []
        self._committing = False
        self._next_commit: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike[str], target: Mapping[str, str]) -> Journal:
        """Open (or create) the journal for ``target`` (flow, version, route...).

        Raises:
            JournalMismatchError: the file journals another target.
            ConfigurationError: the file is not a journal of ours (another application's
                SQLite database, or not SQLite at all); it is left untouched.
        """
        journal = cls(os.fspath(path), target)
        try:
            await run_to_completion(asyncio.wrap_future(journal._thread.submit(journal._open)))
        except BaseException:
            await journal.close()  # a connection opened before a cancellation is closed too
            raise
        return journal

    def entry(self, index: int) -> JournalEntry | None:
        """What an earlier run recorded for ``index`` (read at open; no I/O)."""
        return self._known.get(index)

    def write(
        self,
        index: int,
        digest: str,
        state: ItemState,
        run_id: int | str | None = None,
        error: str | None = None,
    ) -> None:
        """Write a row with the next commit; :meth:`commit` waits for it to be durable."""
        stored = None if run_id is None else json.dumps(run_id)
        self._rows.append((index, digest, state.value, stored, error, time.time()))

    async def commit(self) -> None:
        """Return once every row written so far is durable (one group commit for many).

        A cancellation while waiting does not undo the commit: the rows are written anyway.
        """
        if not self._rows and not self._committing:
            return
        if self._next_commit is None:
            self._next_commit = asyncio.get_running_loop().create_future()
        waiter = self._next_commit
        if not self._committing:
            self._start_commit()
        await asyncio.shield(waiter)

    def _start_commit(self) -> None:
        """Hand the pending rows to the worker thread: one synchronous step, nothing lost."""
        rows, self._rows = self._rows, []
        done, self._next_commit = self._next_commit, None
        self._committing = True
        job = asyncio.wrap_future(self._thread.submit(self._write, rows))

        def finished(job: asyncio.Future[None]) -> None:
            self._committing = False
            if done is not None and not done.done():
                error = job.exception()
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
            if self._next_commit is not None:  # rows came in while this one ran
                self._start_commit()

        job.add_done_callback(finished)

    async def close(self) -> None:
        """Commit what is pending and close the file; always finishes, even if cancelled."""
        try:
            await run_to_completion(self._commit_and_close())
        finally:
            self._thread.shutdown(wait=False)

    async def _commit_and_close(self) -> None:
        if self._rows or self._committing:
            await self.commit()
        await asyncio.wrap_future(self._thread.submit(self._close))

    # ------------------------------------------------------------------ worker thread

    def _open(self) -> None:
        legacy = _check_is_ours(self.path)
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"{self.path} is not a usable journal: {exc}") from None
        try:
            self._prepare(db, legacy)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _prepare(self, db: sqlite3.Connection, legacy: bool) -> None:
        try:
            if not legacy:
                # In rollback mode, so that the mark lands in the file's header at once.
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"{self.path} is not a usable journal: {exc}") from None
        stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
        wanted = {"format": FORMAT, **self._target}
        if stored and stored.get("format") not in _READABLE_FORMATS:
            raise ConfigurationError(
                f"{self.path} is a journal of format {stored.get('format')!r}, which this "
                f"version cannot read (it reads {sorted(_READABLE_FORMATS)})"
            )
        differing = sorted(
            key for key in self._target if stored and stored.get(key) != self._target[key]
        )
        if differing:
            raise JournalMismatchError(
                f"{self.path} journals another run ({', '.join(differing)} differ: "
                f"{ {k: stored.get(k) for k in differing} } there, "
                f"{ {k: wanted.get(k) for k in differing} } now); use a new journal file"
            )
        if stored != wanted:  # new, or format 1 upgraded (its rows read the same way)
            db.execute("BEGIN")
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", sorted(wanted.items()))
            db.execute("COMMIT")
        for idx, digest, state, run_id in db.execute(
            "SELECT idx, digest, state, run_id FROM items"
        ):
            # Run ids are kept as JSON so that an int comes back an int.
            self._known[idx] = (
                ItemState(state),
                digest,
                None if run_id is None else json.loads(run_id),
            )

    def _write(self, rows: list[_Row]) -> None:
        db = self._connection()
        db.execute("BEGIN")
        try:
            db.executemany(_UPSERT, rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the journal is closed")
        return self._db

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


def _check_is_ours(path: str) -> bool:
    """Refuse, without writing a byte, a file that is not a journal of ours.

    Returns whether the file is a journal of format 1, which predates the application id.
    An empty or missing file is a new journal.
    """
    try:
        with open(path, "rb") as file:
            header = file.read(_HEADER_BYTES)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigurationError(f"{path} is not a usable journal: {exc.strerror}") from None
    if not header:
        return False
    if len(header) < _HEADER_BYTES or not header.startswith(_SQLITE_MAGIC):
        raise ConfigurationError(
            f"{path} is not a usable journal: it is not an SQLite database; it was left "
            "unchanged"
        )
    application_id = int.from_bytes(header[68:72], "big")
    if application_id == APPLICATION_ID:
        return False
    if application_id == 0:
        tables, journal_format = _peek(path)
        if not tables:
            return False  # an empty database: ours to fill
        if tables == {"meta", "items"} and journal_format in _READABLE_FORMATS:
            return journal_format == "1"
    raise ConfigurationError(
        f"{path} is an SQLite database of another application (application id "
        f"{application_id:#x}), not a patchworks-async journal; it was left unchanged: "
        "give start_many a journal path of its own"
    )


def _peek(path: str) -> tuple[set[str], str | None]:
    """The tables of a database and its ``meta`` format, read without writing to it."""
    try:
        db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ConfigurationError(f"{path} is not a usable journal: {exc}") from None
    try:
        tables = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        journal_format = None
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            journal_format = None if row is None else str(row[0])
    except sqlite3.Error as exc:
        raise ConfigurationError(f"{path} is not a usable journal: {exc}") from None
    finally:
        db.close()
    return tables, journal_format

