"""The bulk-start journal: a SQLite file that makes a re-run safe.

Every item is written down, by index and a digest of its exact request body, *before* it is
sent, and its outcome after. A re-run with the same journal skips what started, does not
resend what may have started (a crash between "sending" and its outcome leaves exactly that
doubt), resends what surely failed, and refuses input that no longer matches.

SQLite runs in one worker thread owned by the journal, so its fsyncs never block the event
loop; the "sending" rows of a batch are committed (durably, ``synchronous=FULL``) before any
of its requests leaves. Outcomes ride along with the next commit: losing one in a crash
only turns a known outcome into an unknown one, never into a second start.
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
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._errors import ConfigurationError, PatchworksError

__all__ = ["Journal", "JournalEntry", "JournalMismatchError", "body_digest"]

T = TypeVar("T")

FORMAT = "1"


class JournalMismatchError(PatchworksError, ValueError):
    """The input or the target no longer matches the journal of an earlier run.

    Resuming would risk starting something different under an old index (or the same
    thing twice), so nothing is sent. Use a new journal file for new input.
    """


class ItemState(enum.StrEnum):
    """What the journal knows of one item."""

    SENDING = "sending"  # written before the request left; no outcome recorded
    STARTED = "started"
    FAILED = "failed"
    UNKNOWN = "unknown"


JournalEntry = tuple[ItemState, str, int | str | None]
"""An item's state, body digest and run id."""

Outcome = tuple[str, str | None, str | None, float, int]
"""An outcome row: state, run id, error, time, index."""


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


class Journal:
    """One journal file, used by one ``start_many`` at a time.

    Use :meth:`open` (a coroutine) to create it; every method that touches the file runs
    on the journal's own thread.
    """

    def __init__(self, path: str, target: Mapping[str, str]) -> None:
        self.path = path
        self._target = dict(target)
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="patchworks-journal"
        )
        self._db: sqlite3.Connection | None = None
        self._known: dict[int, JournalEntry] = {}
        self._outcomes: list[Outcome] = []

    @classmethod
    async def open(cls, path: str | os.PathLike[str], target: Mapping[str, str]) -> Journal:
        """Open (or create) the journal for ``target`` (flow, version, route...).

        Raises:
            JournalMismatchError: the file journals another target.
            ConfigurationError: the file is not a journal.
        """
        journal = cls(os.fspath(path), target)
        try:
            await journal._run(journal._open)
        except BaseException:
            journal._thread.shutdown(wait=False)
            raise
        return journal

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)

    def _open(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"{self.path} is not a usable journal: {exc}") from None
        self._db = db
        stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
        wanted = {"format": FORMAT, **self._target}
        if not stored:
            db.execute("BEGIN")
            db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(wanted.items()))
            db.execute("COMMIT")
        elif stored != wanted:
            differing = sorted(
                k for k in wanted.keys() | stored.keys() if stored.get(k) != wanted.get(k)
            )
            raise JournalMismatchError(
                f"{self.path} journals another run ({', '.join(differing)} differ: "
                f"{ {k: stored.get(k) for k in differing} } there, "
                f"{ {k: wanted.get(k) for k in differing} } now); use a new journal file"
            )
        for idx, digest, state, run_id in db.execute(
            "SELECT idx, digest, state, run_id FROM items"
        ):
            # Run ids are kept as JSON so that an int comes back an int.
            self._known[idx] = (
                ItemState(state),
                digest,
                None if run_id is None else json.loads(run_id),
            )

    def entry(self, index: int) -> JournalEntry | None:
        """What an earlier run recorded for ``index`` (read at open; no I/O)."""
        return self._known.get(index)

    async def sending(self, items: Iterable[tuple[int, str]]) -> None:
        """Durably mark ``(index, digest)`` items as being sent; returns once committed."""
        rows = [(index, digest, time.time()) for index, digest in items]
        outcomes, self._outcomes = self._outcomes, []  # handed over on the loop's thread
        await self._run(self._write_sending, rows, outcomes)

    def _write_sending(self, rows: list[tuple[int, str, float]], outcomes: list[Outcome]) -> None:
        db = self._connection()
        db.execute("BEGIN")
        _write_outcomes(db, outcomes)
        db.executemany(
            "INSERT INTO items (idx, digest, state, updated_at) VALUES (?, ?, 'sending', ?) "
            "ON CONFLICT(idx) DO UPDATE SET state='sending', run_id=NULL, error=NULL, "
            "updated_at=excluded.updated_at",
            rows,
        )
        db.execute("COMMIT")

    def outcome(
        self, index: int, state: ItemState, run_id: int | str | None, error: str | None
    ) -> None:
        """Record an outcome; written with the next commit (or at :meth:`close`)."""
        stored = None if run_id is None else json.dumps(run_id)
        self._outcomes.append((state.value, stored, error, time.time(), index))

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the journal is closed")
        return self._db

    async def close(self) -> None:
        """Write the outcomes still pending and close the file."""
        outcomes, self._outcomes = self._outcomes, []
        try:
            await self._run(self._close, outcomes)
        finally:
            self._thread.shutdown(wait=False)

    def _close(self, outcomes: list[Outcome]) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        try:
            db.execute("BEGIN")
            _write_outcomes(db, outcomes)
            db.execute("COMMIT")
        finally:
            db.close()


def _write_outcomes(db: sqlite3.Connection, outcomes: list[Outcome]) -> None:
    db.executemany(
        "UPDATE items SET state=?, run_id=?, error=?, updated_at=? WHERE idx=?", outcomes
    )
