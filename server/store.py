"""The durable queue and history: one SQLite file (WAL) under the user directory.

All writes go through one writer thread that commits whatever has piled up in
one transaction (group commit): under load hundreds of prompts share a commit,
and a lone write still commits at once.  Callers get a
``concurrent.futures.Future`` that resolves after the commit, so the event loop
awaits durability without ever blocking on the disk.

``synchronous=NORMAL`` with WAL survives a killed process (what ``kill -9``
tests); an OS crash may lose the last commits, which is the usual trade.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

from .jsonio import dumps
from .records import HistoryEntry, QueueItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    prompt_id   TEXT PRIMARY KEY,
    number      REAL NOT NULL,
    seq         INTEGER NOT NULL,
    prompt      TEXT NOT NULL,
    extra_data  TEXT NOT NULL,
    outputs     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    queued_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id    TEXT NOT NULL UNIQUE,
    number       REAL NOT NULL,
    status       TEXT NOT NULL,
    entry        TEXT NOT NULL,
    completed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS output_files (
    prompt_id TEXT NOT NULL,
    node_id   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    filename  TEXT NOT NULL,
    subfolder TEXT NOT NULL,
    type      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS output_files_prompt ON output_files(prompt_id);
CREATE INDEX IF NOT EXISTS output_files_file ON output_files(type, subfolder, filename);
CREATE TRIGGER IF NOT EXISTS history_forget_files AFTER DELETE ON history BEGIN
    DELETE FROM output_files WHERE prompt_id = OLD.prompt_id;
END;
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_MAX_BATCH = 512
_STOP = object()


#: Queued prompts keep Python's JSON (NaN stays NaN), so a prompt resumed
#: after a restart is exactly the one that was queued.
_PROMPT_ENCODER = json.JSONEncoder(separators=(",", ":"), default=repr)


def _dumps(value: Any) -> str:
    # Prompts may carry values strict JSON can't hold (NaN from a client); store
    # something readable rather than fail the commit.
    return _PROMPT_ENCODER.encode(value)


def _resolve(results: list) -> None:
    for future, value, error in results:
        if future.done():  # the request was cancelled (client went away)
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


class Store:
    """The SQLite file; see the module docstring."""

    def __init__(self, path: Path, max_history: int = 10000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_history = max_history
        self._conn = _connect(self.path)
        self._conn.executescript(SCHEMA)
        self._ops: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="loom-store-writer", daemon=True)
        self._writer.start()
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="loom-store-reader")
        self._local = threading.local()
        self._closed = False
        self._completed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    # ---------------------------------------------------------------- writes
    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Writes submitted from this event loop's thread get asyncio futures,
        resolved with one wake-up per committed batch (not one per write)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def _submit(self, op: Callable[[sqlite3.Connection], Any]) -> Future:
        future: Any
        if self._loop is not None and threading.get_ident() == self._loop_thread:
            future = self._loop.create_future()
        else:
            future = Future()
        if self._closed:
            future.set_exception(RuntimeError("the queue database is closed"))
            return future
        self._ops.put((op, future))
        return future

    def _write_loop(self) -> None:
        conn = self._conn
        while True:
            first = self._ops.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._ops.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            results = self._commit(conn, batch)
            on_loop = []
            for future, value, error in results:
                if isinstance(future, Future):
                    if error is None:
                        future.set_result(value)
                    else:
                        future.set_exception(error)
                else:
                    on_loop.append((future, value, error))
            if on_loop:
                try:
                    self._loop.call_soon_threadsafe(_resolve, on_loop)
                except RuntimeError:  # the loop is gone (shutdown)
                    pass
            if stop:
                return

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list) -> list[tuple[Future, Any, BaseException | None]]:
        """Run a batch in one transaction.  Writes almost never fail, so the
        batch runs optimistically; if one does, the batch is rolled back and
        each write retried in its own transaction, so it fails alone."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            values = [op(conn) for op, _ in batch]
            conn.execute("COMMIT")
            return [(future, value, None) for (_, future), value in zip(batch, values)]
        except Exception:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        results: list[tuple[Future, Any, BaseException | None]] = []
        for op, future in batch:
            try:
                conn.execute("BEGIN IMMEDIATE")
                value = op(conn)
                conn.execute("COMMIT")
                results.append((future, value, None))
            except Exception as exc:  # reported to the caller through its future
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                results.append((future, None, exc))
        return results

    def enqueue(self, item: QueueItem) -> Future:
        row = (item.prompt_id, item.number, item.seq, _dumps(item.prompt),
               _dumps(item.extra_data), _dumps(item.outputs), time.time())
        return self._submit(lambda c: c.execute(
            "INSERT INTO queue(prompt_id, number, seq, prompt, extra_data, outputs, queued_at)"
            " VALUES (?,?,?,?,?,?,?)", row))

    def set_number(self, prompt_id: str, number: float) -> Future:
        return self._submit(lambda c: c.execute(
            "UPDATE queue SET number=? WHERE prompt_id=?", (number, prompt_id)))

    def delete_pending(self, prompt_ids: Iterable[str]) -> Future:
        ids = [(pid,) for pid in prompt_ids]
        return self._submit(lambda c: c.executemany("DELETE FROM queue WHERE prompt_id=?", ids))

    def complete(self, entry: HistoryEntry) -> Future:
        """Move a prompt from the queue to history (one transaction: a prompt
        is either still queued or finished, never both or neither)."""
        item = entry.item
        # History is sent to clients as stored: strict JSON.
        record = (item.prompt_id, item.number, entry.status_str, dumps(entry.wire()), time.time())
        files = [(item.prompt_id, *f) for f in entry.output_files()]
        max_history = self.max_history
        self._completed += 1
        # Trimming scans the history index; doing it on every commit would
        # cost more than the insert itself.
        trim = self._completed % 64 == 0 or max_history < 1000

        def op(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM queue WHERE prompt_id=?", (item.prompt_id,))
            c.execute("DELETE FROM history WHERE prompt_id=?", (item.prompt_id,))
            c.execute("INSERT INTO history(prompt_id, number, status, entry, completed_at)"
                      " VALUES (?,?,?,?,?)", record)
            if files:
                c.executemany("INSERT INTO output_files VALUES (?,?,?,?,?,?)", files)
            if trim:
                c.execute("DELETE FROM history WHERE seq <= (SELECT seq FROM history"
                          " ORDER BY seq DESC LIMIT 1 OFFSET ?)", (max_history,))

        return self._submit(op)

    def delete_history(self, prompt_ids: Iterable[str]) -> Future:
        ids = [(pid,) for pid in prompt_ids]
        return self._submit(lambda c: c.executemany("DELETE FROM history WHERE prompt_id=?", ids))

    def clear_history(self) -> Future:
        return self._submit(lambda c: c.execute("DELETE FROM history"))

    def set_setting(self, key: str, value: Any) -> Future:
        text = _dumps(value)
        return self._submit(lambda c: c.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, text)))

    # ----------------------------------------------------------------- reads
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
        return conn

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Future:
        return self._readers.submit(lambda: fn(self._reader()))

    def history_json(self, max_items: int | None = None, offset: int = 0) -> Future:
        """The newest ``max_items`` entries (after skipping ``offset`` newest),
        oldest first, as one JSON object text — entries are stored as JSON, so
        they are spliced, not parsed and re-encoded."""

        def fn(c: sqlite3.Connection) -> str:
            limit = -1 if max_items is None else max_items
            rows = c.execute("SELECT prompt_id, entry FROM history ORDER BY seq DESC LIMIT ? OFFSET ?",
                             (limit, offset)).fetchall()
            rows.reverse()
            return "{" + ",".join(f"{json.dumps(pid)}:{entry}" for pid, entry in rows) + "}"

        return self._read(fn)

    def history_window_json(self, max_items: int | None = None, offset: int = -1) -> Future:
        """ComfyUI's ``GET /history?max_items=&offset=`` window, oldest first:
        ``offset`` counts from the oldest entry; a negative one (the default)
        with ``max_items`` means the newest ``max_items``; past the end, ``{}``."""

        def fn(c: sqlite3.Connection) -> str:
            start = offset
            if start < 0 and max_items is not None:
                start = c.execute("SELECT COUNT(*) FROM history").fetchone()[0] - max_items
            limit = -1 if max_items is None else max_items
            rows = c.execute("SELECT prompt_id, entry FROM history ORDER BY seq LIMIT ? OFFSET ?",
                             (limit, max(start, 0))).fetchall()
            return "{" + ",".join(f"{json.dumps(pid)}:{entry}" for pid, entry in rows) + "}"

        return self._read(fn)

    def history_entry_json(self, prompt_id: str) -> Future:
        def fn(c: sqlite3.Connection) -> str:
            row = c.execute("SELECT entry FROM history WHERE prompt_id=?", (prompt_id,)).fetchone()
            return "{}" if row is None else "{" + f"{json.dumps(prompt_id)}:{row[0]}" + "}"

        return self._read(fn)

    def output_files(self, prompt_id: str) -> Future:
        def fn(c: sqlite3.Connection) -> list[tuple[str, str, str, str, str]]:
            return c.execute("SELECT node_id, kind, filename, subfolder, type FROM output_files"
                             " WHERE prompt_id=? ORDER BY rowid", (prompt_id,)).fetchall()

        return self._read(fn)

    # ------------------------------------------------- start-up (synchronous)
    def load_queue(self) -> list[QueueItem]:
        """Every prompt still queued, in queue order.  A prompt leaves the
        queue table only when its history row is written (same transaction),
        so the one that was running when the process died is still here, in
        its place at the head, and runs again from scratch."""
        rows = self._conn.execute(
            "SELECT number, prompt_id, prompt, extra_data, outputs, seq, state FROM queue"
            " ORDER BY number, seq").fetchall()
        return [
            QueueItem(number=number, prompt_id=pid, prompt=json.loads(prompt),
                      extra_data=json.loads(extra), outputs=json.loads(outputs), seq=seq,
                      recovered=True)
            for number, pid, prompt, extra, outputs, seq, state in rows
        ]

    def counters(self) -> tuple[int, int]:
        """(next queue number, next seq) continuing from what is on disk."""
        row = self._conn.execute(
            "SELECT MAX(m) FROM (SELECT MAX(ABS(number)) AS m FROM queue"
            " UNION ALL SELECT MAX(ABS(number)) FROM history)").fetchone()
        seq = self._conn.execute("SELECT MAX(seq) FROM queue").fetchone()[0]
        hseq = self._conn.execute("SELECT MAX(seq) FROM history").fetchone()[0]
        number = int(row[0]) + 1 if row[0] is not None else 0
        return number, max(seq or 0, hseq or 0) + 1

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ops.put(_STOP)
        self._writer.join(timeout=10)
        self._readers.shutdown(wait=True)
        self._conn.close()
