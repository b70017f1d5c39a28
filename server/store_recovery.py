"""Opening the queue database at start-up, and recovering from a damaged one.

``open_store`` reads what start-up needs and counts a crash against the prompt that
was running; a damaged file stops start-up with one line (:class:`DamagedStore`)
unless ``--recover-queue`` asks to move it aside and keep what can still be read.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path

import orjson

from .records import QueueItem
from .store import Store, _open, _queue_row
from .store_errors import DamagedStore, DiskFull

log = logging.getLogger("loom.server")


def move_aside(path: Path) -> Path:
    """Rename a damaged database (and its -wal/-shm files) to
    ``NAME.corrupt-<time>``; returns the new name of the main file."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    if path.exists():
        os.replace(path, target)
    return target


def salvage(damaged: Path, path: Path) -> tuple[int, int]:
    """Copy what can still be read from ``damaged`` (queued prompts, history
    rows and settings that are valid JSON) into a new database at ``path``.
    Returns (queued prompts kept, history entries kept); reading stops at the
    first damaged page of a table."""
    fresh = _open(path)
    queued = kept = 0
    try:
        try:
            old = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
        except sqlite3.Error:
            return 0, 0
        try:
            fresh.execute("BEGIN")
            try:
                for row in old.execute("SELECT prompt_id, number, seq, prompt, extra_data, outputs, queued_at"
                                       " FROM queue"):
                    if _queue_row(row[1], row[0], row[3], row[4], row[5], row[2], 0) is not None:
                        fresh.execute("INSERT OR IGNORE INTO queue(prompt_id, number, seq, prompt, extra_data,"
                                      " outputs, queued_at) VALUES (?,?,?,?,?,?,?)", row)
                        queued += 1
            except sqlite3.Error:
                pass
            try:
                for row in old.execute("SELECT prompt_id, number, status, entry, completed_at FROM history"
                                       " ORDER BY seq"):
                    try:
                        ok = isinstance(orjson.loads(row[3]), dict)
                    except (orjson.JSONDecodeError, TypeError):
                        ok = False
                    if ok:
                        fresh.execute("INSERT OR IGNORE INTO history(prompt_id, number, status, entry,"
                                      " completed_at) VALUES (?,?,?,?,?)", row)
                        kept += 1
            except sqlite3.Error:
                pass
            try:
                for row in old.execute("SELECT key, value FROM settings"):
                    try:
                        json.loads(row[1])
                    except (TypeError, ValueError):
                        continue
                    fresh.execute("INSERT OR IGNORE INTO settings(key, value) VALUES (?,?)", row)
            except sqlite3.Error:
                pass
            fresh.execute("COMMIT")
        finally:
            old.close()
    finally:
        fresh.close()
    return queued, kept


def open_store(path: Path, max_history: int = 10000, *, recover: bool = False
               ) -> tuple["Store", list[QueueItem], str | None]:
    """Open the queue database and read what start-up needs: (store, queued
    items, a note when it was recovered).  A damaged file raises
    :class:`DamagedStore` — unless ``recover``, which moves it aside and
    starts from what could still be read from it."""
    path = Path(path)
    store = None
    try:
        store = Store(path, max_history)
        items = store.load_queue()
        store.counters()
        store.get_setting("paused", False)
        _count_death(store, items)
        return store, items, None
    except DamagedStore as exc:
        if store is not None:
            store.close()
        if not recover:
            raise
        moved = move_aside(path)
        queued, kept = salvage(moved, path)
        note = (f"the queue database {path} was damaged ({exc.reason}); moved it to {moved.name} and kept"
                f" {queued} queued prompt(s) and {kept} history entr{'y' if kept == 1 else 'ies'}")
        log.warning("%s", note)
        store = Store(path, max_history)
        items = store.load_queue()
        _count_death(store, items)
        return store, items, note


def _count_death(store: "Store", items: list[QueueItem]) -> None:
    try:
        crashed = store.count_death(items)
    except DiskFull as exc:
        # Uncounted, the prompt could kill the process forever: hold the queue.
        log.error("%s; the queue starts paused", exc)
        store.start_paused = True
        return
    if crashed is not None:
        log.warning("the last server process died running prompt %s; it runs again (start %d of at most"
                    " --max-prompt-attempts)", crashed, next(i.attempts for i in items if i.prompt_id == crashed) + 1)
