"""The bulk-start journal file: whose it is, and that nothing written to it is lost."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from patchworks_async import ConfigurationError
from patchworks_async._journal import APPLICATION_ID, ItemState, Journal

TARGET = {"start_url": "http://127.0.0.1/start", "flow_id": "101", "version_id": "9001"}


def rows(path: Path) -> dict[int, str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT idx, state FROM items").fetchall())


class TestWhoseFile:
    async def test_a_new_journal_is_marked_as_ours(self, tmp_path: Path) -> None:
        path = tmp_path / "run.sqlite"
        journal = await Journal.open(path, TARGET)
        await journal.close()
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)

    @pytest.mark.parametrize("application_id", [0, 0x12345678], ids=["unmarked", "marked"])
    async def test_another_applications_database_is_refused_and_left_unchanged(
        self, tmp_path: Path, application_id: int
    ) -> None:
        path = tmp_path / "app.db"
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute(f"PRAGMA application_id={application_id}")
            db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            db.execute("INSERT INTO customers VALUES (1, 'Ada')")
            db.commit()
        before = path.read_bytes()
        with pytest.raises(ConfigurationError, match="another application") as caught:
            await Journal.open(path, TARGET)
        assert str(path) in str(caught.value)
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, no -shm

    async def test_a_file_that_is_not_sqlite_is_refused_and_left_unchanged(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("these are not the rows you are looking for " * 100)
        before = path.read_bytes()
        with pytest.raises(ConfigurationError, match="not a usable journal"):
            await Journal.open(path, TARGET)
        assert path.read_bytes() == before

    async def test_an_empty_file_becomes_a_journal(self, tmp_path: Path) -> None:
        path = tmp_path / "run.sqlite"
        path.touch()
        journal = await Journal.open(path, TARGET)
        journal.write(0, "digest", ItemState.STARTED, 5)
        await journal.close()
        assert rows(path) == {0: "started"}

    async def test_a_journal_of_version_0_1_is_read_and_upgraded(self, tmp_path: Path) -> None:
        """Format 1 had no application id; its rows keep their meaning (sending: unknown)."""
        path = tmp_path / "old.sqlite"
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(
                """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE items (idx INTEGER PRIMARY KEY, digest TEXT NOT NULL,
                    state TEXT NOT NULL, run_id TEXT, error TEXT, updated_at REAL NOT NULL);
                INSERT INTO meta VALUES ('format', '1'), ('start_url', 'http://127.0.0.1/start'),
                    ('flow_id', '101'), ('version_id', '9001');
                INSERT INTO items VALUES (0, 'd0', 'started', '7', NULL, 0), (1, 'd1', 'sending',
                    NULL, NULL, 0);
                """
            )
        journal = await Journal.open(path, TARGET)
        assert journal.entry(0) == (ItemState.STARTED, "d0", 7)
        assert journal.entry(1) == (ItemState.SENDING, "d1", None)
        await journal.close()
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
            assert dict(db.execute("SELECT key, value FROM meta"))["format"] == "2"


class TestNothingWrittenIsLost:
    async def test_a_commit_cancelled_before_it_began_still_lands_at_close(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "run.sqlite"
        journal = await Journal.open(path, TARGET)
        journal.write(0, "d0", ItemState.STARTED, 1)
        commit = asyncio.ensure_future(journal.commit())
        commit.cancel()  # before it ran at all
        with pytest.raises(asyncio.CancelledError):
            await commit
        await journal.close()
        assert rows(path) == {0: "started"}

    async def test_a_commit_cancelled_while_it_runs_still_lands(self, tmp_path: Path) -> None:
        path = tmp_path / "run.sqlite"
        journal = await Journal.open(path, TARGET)
        journal.write(0, "d0", ItemState.STARTED, 1)
        commit = asyncio.ensure_future(journal.commit())
        await asyncio.sleep(0)  # it has handed the row to the worker thread
        commit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await commit
        journal.write(1, "d1", ItemState.FAILED)
        await journal.close()
        assert rows(path) == {0: "started", 1: "failed"}

    async def test_a_close_that_is_cancelled_still_finishes(self, tmp_path: Path) -> None:
        path = tmp_path / "run.sqlite"
        journal = await Journal.open(path, TARGET)
        journal.write(0, "d0", ItemState.NOT_SENT)
        close = asyncio.ensure_future(journal.close())
        await asyncio.sleep(0)
        close.cancel()
        with pytest.raises(asyncio.CancelledError):
            await close
        assert rows(path) == {0: "not_sent"}

    async def test_rows_written_while_a_commit_runs_ride_with_the_next(
        self, tmp_path: Path
    ) -> None:
        """Group commit: however many rows come in meanwhile, each waiter returns durable."""
        path = tmp_path / "run.sqlite"
        journal = await Journal.open(path, TARGET)

        async def write_and_commit(index: int) -> dict[int, str]:
            journal.write(index, f"d{index}", ItemState.SENDING)
            await journal.commit()
            return rows(path)

        seen = await asyncio.gather(*(write_and_commit(i) for i in range(50)))
        for index, durable in enumerate(seen):
            assert durable.get(index) == "sending"
        await journal.close()
