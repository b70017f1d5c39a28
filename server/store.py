"""The durable queue and history: one SQLite file (WAL) under the user directory.

All writes go through one writer thread that commits whatever has piled up in
one transaction (group commit): under load hundreds of prompts share a commit,
and a lone write still commits at once.  Callers get a
``concurrent.futures.Future`` that resolves after the commit, so the event loop
awaits durability without ever blocking on the disk.

``synchronous=NORMAL`` with WAL survives a killed process (what ``kill -9``
tests); an OS crash may lose the last commits, which is the usual trade.

Failures the server must explain rather than turn into a 500 are raised as
:class:`DiskFull` (the disk under the file is full: ``POST /prompt`` answers
507) and :class:`DamagedStore` (the file or a row in it cannot be read: start-up
stops with one line naming the file; ``--recover-queue`` moves it aside).  A
prompt id that is already queued, running or in history fails its enqueue with
``sqlite3.IntegrityError`` (the primary key, or a check in the same
transaction), so duplicate POSTs race safely.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mmap
import os
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson

from .jsonio import dumps
from .records import HistoryEntry, QueueItem
from .store_errors import DamagedStore, DiskFull, DuplicatePromptId, _is_damage, _is_disk_full, _open_error

log = logging.getLogger("loom.server")

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    prompt_id   TEXT PRIMARY KEY,
    number      REAL NOT NULL,
    seq         INTEGER NOT NULL,
    prompt      TEXT NOT NULL,
    extra_data  TEXT NOT NULL,
    outputs     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    queued_at   REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
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
_INSERT_HISTORY = "INSERT INTO history(prompt_id, number, status, entry, completed_at) VALUES (?,?,?,?,?)"
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


def _open(path: Path) -> sqlite3.Connection:
    """The connection the writer uses, with the schema in place (older files
    gain the ``attempts`` column); a file that is not a database raises
    :class:`DamagedStore`."""
    conn = None
    try:
        conn = _connect(path)
        conn.executescript(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(queue)")}
        if "attempts" not in columns:
            conn.execute("ALTER TABLE queue ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
        from .job_index import migrate  # the jobs API's index and the webhook outbox, kept by triggers

        migrate(conn)
        return conn
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise _open_error(path, exc) from None


class RunMarker:
    """``NAME-running``: the id of the prompt this process runs now, rewritten
    in place before each prompt's first node.  A process that dies leaves it
    naming the prompt that killed it; the next start-up adds one to that
    prompt's ``attempts`` in the database (:meth:`Store.count_death`).

    The file has a fixed size and is written through a shared memory map: a
    copy into the page cache, no commit and no system call (a ``pwrite`` per
    prompt made the worker thread give up the GIL, and wait to get it back,
    before every prompt).  What the map holds is the file's content for the
    next process even if this one is killed, so this gives the same
    durability as the database's own commits (``synchronous=NORMAL``: a killed
    process loses nothing, a machine crash may lose the last write) without a
    commit the worker would have to wait for before every prompt — that wait
    halved trivial prompts' throughput.  Where a file cannot be mapped, each
    write is a ``pwrite``."""

    SIZE = 2048  # a 200-character prompt id, JSON-escaped, always fits

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size < self.SIZE:
            os.pwrite(self.fd, b" " * self.SIZE, 0)
        try:
            self._map: mmap.mmap | None = mmap.mmap(self.fd, self.SIZE)
        except (OSError, ValueError):
            self._map = None

    def get(self) -> str | None:
        data = os.pread(self.fd, self.SIZE, 0).strip()
        try:
            value = json.loads(data) if data else None
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, str) else None

    def set(self, prompt_id: str | None) -> None:
        record = (b"" if prompt_id is None else json.dumps(prompt_id).encode())[:self.SIZE].ljust(self.SIZE)
        if self._map is not None:
            self._map[:] = record
        else:
            os.pwrite(self.fd, record, 0)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        os.close(self.fd)


class Store:
    """The SQLite file; see the module docstring."""

    def __init__(self, path: Path, max_history: int = 10000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_history = max_history
        self._conn = _open(self.path)
        #: History rows (by seq) already checked to be JSON objects; rows are
        #: never rewritten in place, so each is parsed once, not per request.
        self._checked_history: set[int] = set()
        #: Set at start-up when the queue must not run until resumed.
        self.start_paused = False
        self._ops: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="loom-store-writer", daemon=True)
        self._writer.start()
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="loom-store-reader")
        self._local = threading.local()
        self._closed = False
        self._completed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        try:
            self._marker: RunMarker | None = RunMarker(self.path.with_name(self.path.name + "-running"))
        except OSError as exc:
            log.warning("cannot create %s-running (%s): a prompt that kills the process will not be given up",
                        self.path, exc)
            self._marker = None

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
            results = self._commit(conn, batch, self.path)
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
    def _commit(conn: sqlite3.Connection, batch: list, path: Path = Path("?")
                ) -> list[tuple[Future, Any, BaseException | None]]:
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
                if _is_disk_full(exc):
                    exc = DiskFull(path, exc)
                results.append((future, None, exc))
        return results

    def enqueue(self, item: QueueItem) -> Future:
        """Queue a prompt; fails with ``sqlite3.IntegrityError`` when its id
        is queued, running or in history (checked in the insert's own
        transaction, so concurrent POSTs of one id admit exactly one)."""
        prompt_id = item.prompt_id
        row = (prompt_id, item.number, item.seq, _dumps(item.prompt),
               _dumps(item.extra_data), _dumps(item.outputs), time.time(), prompt_id)

        def op(c: sqlite3.Connection) -> None:
            # One statement, not a look-up then an insert: the writer gives up
            # the GIL for each one and, under load, waits to get it back.
            inserted = c.execute("INSERT INTO queue(prompt_id, number, seq, prompt, extra_data, outputs, queued_at)"
                                 " SELECT ?,?,?,?,?,?,? WHERE NOT EXISTS"
                                 " (SELECT 1 FROM history WHERE prompt_id=?)", row).rowcount
            if not inserted:
                raise DuplicatePromptId(f"prompt id {prompt_id!r} is in history")

        return self._submit(op)

    def mark_running(self, prompt_id: str) -> None:
        """Note, before its first node runs, which prompt this process is
        running (see :class:`RunMarker`); an ``OSError`` if it cannot."""
        if self._marker is not None:
            self._marker.set(prompt_id)

    def clear_running(self) -> None:
        """Nothing runs any more (a clean shutdown): not a death to count."""
        if self._marker is not None:
            try:
                self._marker.set(None)
            except OSError:
                pass

    def count_death(self, items: list[QueueItem]) -> str | None:
        """At start-up: if the last process died running one of ``items``,
        add one to its ``attempts`` on disk.  Returns the prompt id counted."""
        if self._marker is None:
            return None
        crashed = self._marker.get()
        item = next((i for i in items if i.prompt_id == crashed), None) if crashed is not None else None
        if item is not None:
            def op(c: sqlite3.Connection) -> int:
                row = c.execute("UPDATE queue SET attempts=attempts+1 WHERE prompt_id=? RETURNING attempts",
                                (item.prompt_id,)).fetchone()
                return int(row[0]) if row is not None else item.attempts + 1

            item.attempts = self._submit(op).result()  # may raise DiskFull
        self._marker.set(None)
        return item.prompt_id if item is not None else None

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
            try:
                c.execute(_INSERT_HISTORY, record)
            except sqlite3.IntegrityError:
                # Already in history (a prompt run again after a salvage): the
                # new outcome replaces it.  A failed statement leaves the
                # transaction open; the common case pays for one statement.
                c.execute("DELETE FROM history WHERE prompt_id=?", (item.prompt_id,))
                c.execute(_INSERT_HISTORY, record)
            if files:
                c.executemany("INSERT INTO output_files VALUES (?,?,?,?,?,?)", files)
            if trim:
                # Counting reads the index page by page; stepping OFFSET
                # max_history entries, as this did, cost a tenth of the writer.
                excess = c.execute("SELECT COUNT(*) FROM history").fetchone()[0] - max_history
                if excess > 0:
                    c.execute("DELETE FROM history WHERE seq IN (SELECT seq FROM history ORDER BY seq LIMIT ?)",
                              (excess,))

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
        def run() -> Any:
            try:
                return fn(self._reader())
            except sqlite3.DatabaseError as exc:
                if _is_damage(exc):
                    raise DamagedStore(self.path, str(exc)) from None
                raise

        return self._readers.submit(run)

    def _entry_text(self, seq: int, prompt_id: str, entry: str) -> str:
        """A history row's stored JSON, or — for a row that is not a JSON
        object (damaged on disk) — a well-formed error entry saying so: one
        bad row must not make the whole ``/history`` answer invalid JSON."""
        if seq in self._checked_history:
            return entry
        try:
            ok = isinstance(orjson.loads(entry), dict)
        except (orjson.JSONDecodeError, TypeError):
            ok = False
        if ok:
            self._checked_history.add(seq)
            return entry
        log.error("history row for prompt %r in %s is damaged (not a JSON object)", prompt_id, self.path)
        message = (f"this history entry is damaged in {self.path} (not valid JSON); delete it with"
                   f" POST /history {{\"delete\": [id]}}")
        return dumps({
            "prompt": [0, prompt_id, {}, {}, []], "outputs": {}, "meta": {},
            "status": {"status_str": "error", "completed": False, "messages": [
                ["execution_error", {"prompt_id": prompt_id, "node_id": "", "node_type": "",
                                     "exception_message": message, "exception_type": "DamagedHistoryEntry",
                                     "traceback": [], "executed": [], "current_inputs": {},
                                     "current_outputs": {}}]]},
        })

    def history_json(self, max_items: int | None = None, offset: int = 0) -> Future:
        """The newest ``max_items`` entries (after skipping ``offset`` newest),
        oldest first, as one JSON object text — entries are stored as JSON, so
        they are spliced, not parsed and re-encoded."""

        def fn(c: sqlite3.Connection) -> str:
            limit = -1 if max_items is None else max_items
            rows = c.execute("SELECT seq, prompt_id, entry FROM history ORDER BY seq DESC LIMIT ? OFFSET ?",
                             (limit, offset)).fetchall()
            rows.reverse()
            text = self._entry_text
            return "{" + ",".join(f"{json.dumps(pid)}:{text(seq, pid, entry)}" for seq, pid, entry in rows) + "}"

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
            rows = c.execute("SELECT seq, prompt_id, entry FROM history ORDER BY seq LIMIT ? OFFSET ?",
                             (limit, max(start, 0))).fetchall()
            text = self._entry_text
            return "{" + ",".join(f"{json.dumps(pid)}:{text(seq, pid, entry)}" for seq, pid, entry in rows) + "}"

        return self._read(fn)

    def history_entry_json(self, prompt_id: str) -> Future:
        def fn(c: sqlite3.Connection) -> str:
            row = c.execute("SELECT seq, entry FROM history WHERE prompt_id=?", (prompt_id,)).fetchone()
            if row is None:
                return "{}"
            return "{" + f"{json.dumps(prompt_id)}:{self._entry_text(row[0], prompt_id, row[1])}" + "}"

        return self._read(fn)

    def output_files(self, prompt_id: str) -> Future:
        def fn(c: sqlite3.Connection) -> list[tuple[str, str, str, str, str]]:
            return c.execute("SELECT node_id, kind, filename, subfolder, type FROM output_files"
                             " WHERE prompt_id=? ORDER BY rowid", (prompt_id,)).fetchall()

        return self._read(fn)

    # ------------------------------------------------- start-up (synchronous)
    def _startup(self, what: str, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            return fn(self._conn)
        except sqlite3.DatabaseError as exc:
            raise _open_error(self.path, exc) from None
        except RecursionError:
            raise DamagedStore(self.path, f"{what}: nested too deeply to read") from None

    def load_queue(self) -> list[QueueItem]:
        """Every prompt still queued, in queue order.  A prompt leaves the
        queue table only when its history row is written (same transaction),
        so the one that was running when the process died is still here, in
        its place at the head, and runs again from scratch — with its count
        of starts (``attempts``), so one that keeps killing the process is
        given up.  A row that cannot be read raises :class:`DamagedStore`."""

        def fn(c: sqlite3.Connection) -> list[QueueItem]:
            rows = c.execute(
                "SELECT number, prompt_id, prompt, extra_data, outputs, seq, attempts FROM queue"
                " ORDER BY number, seq").fetchall()
            items = []
            for number, pid, prompt, extra, outputs, seq, attempts in rows:
                item = _queue_row(number, pid, prompt, extra, outputs, seq, attempts)
                if item is None:
                    raise DamagedStore(self.path, f"queued prompt {pid!r} is not valid JSON")
                items.append(item)
            return items

        return self._startup("the queue", fn)

    def counters(self) -> tuple[int, int]:
        """(next queue number, next seq) continuing from what is on disk."""

        def fn(c: sqlite3.Connection) -> tuple[int, int]:
            row = c.execute(
                "SELECT MAX(m) FROM (SELECT MAX(ABS(number)) AS m FROM queue"
                " UNION ALL SELECT MAX(ABS(number)) FROM history)").fetchone()
            seq = c.execute("SELECT MAX(seq) FROM queue").fetchone()[0]
            hseq = c.execute("SELECT MAX(seq) FROM history").fetchone()[0]
            try:
                number = int(row[0]) + 1 if row[0] is not None else 0
                return number, max(int(seq or 0), int(hseq or 0)) + 1
            except (TypeError, ValueError, OverflowError):
                raise DamagedStore(self.path, "a queue number is not a number") from None

        return self._startup("the counters", fn)

    def get_setting(self, key: str, default: Any = None) -> Any:
        def fn(c: sqlite3.Connection) -> Any:
            row = c.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
            if row is None:
                return default
            try:
                return json.loads(row[0])
            except (TypeError, ValueError):
                raise DamagedStore(self.path, f"setting {key!r} is not valid JSON") from None

        return self._startup(f"setting {key!r}", fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ops.put(_STOP)
        self._writer.join(timeout=10)
        self._readers.shutdown(wait=True)
        self._conn.close()
        if self._marker is not None:
            self._marker.close()


def _queue_row(number: Any, prompt_id: Any, prompt: Any, extra: Any, outputs: Any, seq: Any,
               attempts: Any) -> QueueItem | None:
    """A queue row as an item, or None when it is damaged."""
    try:
        item = QueueItem(number=float(number), prompt_id=str(prompt_id), prompt=json.loads(prompt),
                         extra_data=json.loads(extra), outputs=json.loads(outputs), seq=int(seq),
                         recovered=True, attempts=int(attempts or 0))
    except (TypeError, ValueError, RecursionError):
        return None
    if not (isinstance(item.prompt, dict) and isinstance(item.extra_data, dict) and isinstance(item.outputs, list)):
        return None
    return item
